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
# What every checkpoint the trainer writes holds (``Trainer.state``) and what its readers index:
# ``load_network``, ``maelstrom evaluate`` and ``export``, ``train --resume``.
Kinds = dict[str, type | tuple[type, ...]]
REQUIRED: Kinds = {
    "network_config": dict,
    "train_config": dict,
    "task": dict,
    "model": dict,
    "epoch": int,
    "history": list,
    "train_seconds": (int, float),
}
INNER: dict[str, Kinds] = {
    "network_config": {"maelstrom": dict},
    "train_config": {"batch_size": int},
    "task": {"name": str, "options": dict},
}


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
    return check_checkpoint(load_plain(path, map_location), path)


def check_checkpoint(payload: Any, source: str | Path) -> dict[str, Any]:
    """``payload`` if it has the checkpoint's format key and the keys and types its readers use
    (``REQUIRED``, ``INNER``, tensors under ``model``); else a one-line ``ValueError`` naming ``source``
    and the key."""
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{source} is not a spiking-maelstrom checkpoint (expected format {CHECKPOINT_FORMAT})")
    _check_keys(payload, REQUIRED, source, "")
    for name, keys in INNER.items():
        _check_keys(payload[name], keys, source, f"{name}.")
    for name in ("model", "live_model"):
        state = payload.get(name)
        tensors = isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
        if state is not None and not tensors:
            raise ValueError(f"{source}: checkpoint key {name!r} must map parameter names to tensors")
    return payload


def _check_keys(table: dict[str, Any], kinds: Kinds, source: str | Path, prefix: str) -> None:
    for key, kind in kinds.items():
        if key not in table:
            raise ValueError(f"{source}: checkpoint lacks the key '{prefix}{key}'")
        value = table[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ValueError(f"{source}: checkpoint key '{prefix}{key}' has the wrong type {type(value).__name__}")
