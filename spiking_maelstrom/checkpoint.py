"""Checkpoints: one file with everything needed to rebuild and resume a run, written atomically."""

from __future__ import annotations

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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise ValueError(f"checkpoint {path} is not readable ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a spiking-maelstrom checkpoint (expected format {CHECKPOINT_FORMAT})")
    return payload
