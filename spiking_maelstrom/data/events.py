"""Event containers shared by the recorded data sets, the error they raise, and atomic file writes.

Events are numpy structured arrays, one row per event, so that transforms stay vectorised:

- N-MNIST (:data:`NMNIST_DTYPE`): ``x``, ``y`` (pixel, int16), ``p`` (polarity 0/1, uint8),
  ``t`` (int64 microseconds);
- SHD (:data:`SHD_DTYPE`): ``t`` (float64 seconds), ``unit`` (uint16 cochlea channel).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

NMNIST_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", np.uint8), ("t", np.int64)])
SHD_DTYPE = np.dtype([("t", np.float64), ("unit", np.uint16)])


class EventFormatError(ValueError):
    """A data file is malformed; the message names the file (and sample) and says what is wrong."""


class EventSource(Protocol):
    """A split of a recorded data set: ``source[i] -> (events, label)``, plus what a cache key needs."""

    name: str  # data set name, e.g. "nmnist"
    split: str
    root: Path  # the folder the ``files`` are named relative to
    files: list[Path]  # the files the samples are read from (their sizes and mtimes key the cache)
    labels: np.ndarray
    # Optional ``groups``: name -> one value per sample (e.g. SHD's ``speaker``), for grouped folds.

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]: ...


def nmnist_events(x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """N-MNIST events from equally long columns (pixel x, pixel y, polarity, microseconds)."""
    events = np.empty(len(t), dtype=NMNIST_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = x, y, p, t
    return events


def shd_events(t: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """SHD events from equally long columns (seconds, channel); times are upcast to float64."""
    events = np.empty(len(t), dtype=SHD_DTYPE)
    events["t"] = np.asarray(t, dtype=np.float64)
    events["unit"] = unit
    return events


def check_range(values: np.ndarray, size: int, what: str, name: str, item: str = "event") -> None:
    """Raise :class:`EventFormatError` naming ``name`` if any of ``values`` is outside ``0..size-1``;
    ``item`` is what one value belongs to (an event, a sample)."""
    bad = np.flatnonzero((values < 0) | (values >= size))
    if bad.size:
        raise EventFormatError(
            f"{name}: {what} {values[bad[0]]} at {item} {bad[0]} is outside 0..{size - 1} ({bad.size} such {item}s)"
        )


def sorted_by_time(events: np.ndarray, name: str) -> np.ndarray:
    """``events`` in time order: returned as is when sorted, else stably sorted with a warning naming ``name``."""
    if events.size < 2 or np.all(events["t"][1:] >= events["t"][:-1]):
        return events
    warnings.warn(f"{name}: timestamps decrease; events were sorted by time (stable)", stacklevel=3)
    return events[np.argsort(events["t"], kind="stable")]


def split_folder(split: str, choices: Sequence[str]) -> str:
    """Normalise a split name (any case) to one of ``choices``."""
    for choice in choices:
        if split.lower() == choice.lower():
            return choice
    raise ValueError(f"unknown split {split!r}: use one of {', '.join(c.lower() for c in choices)}")
