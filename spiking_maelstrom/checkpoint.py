"""Checkpoints: one file with everything needed to rebuild and resume a run, written atomically.

Checkpoints hold tensors and plain data only (dicts, lists, tuples, strings, numbers), so they
load with torch's restricted unpickler (``weights_only=True``): loading one runs no code from it."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from .files import atomic_write

CHECKPOINT_FORMAT = "spiking-maelstrom-checkpoint/1"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Save a checkpoint dictionary (tagged with the format version), atomically."""
    payload = {"format": CHECKPOINT_FORMAT, **payload}
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_plain(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """What ``torch.save`` wrote to ``path``, if it is tensors and plain data: read with
    ``weights_only=True``, so no code in the file runs. Any failure is a one-line ``ValueError``."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # refused by the restricted unpickler; torch's advice spans many lines
        raise ValueError(
            f"{path} is not readable: it holds objects other than tensors and plain data, or is no torch file, "
            "and was not loaded"
        ) from err
    except Exception as err:  # torch raises several types for truncated or foreign files
        reason = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(f"{path} is not readable ({type(err).__name__}: {reason})") from err


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (no code in the file runs), with a
    clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    payload = load_plain(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a spiking-maelstrom checkpoint (expected format {CHECKPOINT_FORMAT})")
    return payload
