"""HDF5 cache of transformed event data: decode and bin a split once, then read frames back.

The cache file ``<cache_dir>/<name>-<split>-<key16>.h5`` holds

- ``frames``, each sample's ``[T, *shape]`` frames of event counts, stored sparse: the group's
  ``index`` (uint32, or uint64 for frames beyond 2**32 bins) holds the flat positions of the nonzero
  bins and ``count`` (uint16) their counts, concatenated over samples; sample ``i`` is
  ``offset[i]:offset[i + 1]``. Event frames are mostly empty (an N-MNIST sample in 1 ms bins fills
  about 0.6 % of its 300 x 2 x 34 x 34 bins), and reading a dense lzf-compressed frame back
  (3 ms a sample) was slower than decoding and binning it again (0.8 ms); the sparse read is not.
  Counts, not spikes: a bin can hold several events (coarse bins, Downsample, ChannelBin,
  ToFramesByCount), more than 255 is possible (e.g. a 10 ms bin of a 10 x 10 pooled N-MNIST pixel),
  so uint8 would need clipping; uint16 is exact up to 65,535, and building stops with an error
  beyond that or on frames that are not counts.
- ``labels`` ``int64 [samples]``;
- attributes ``sample_shape`` (``[T, *shape]``), ``config`` (JSON: data set, split, transform,
  sample count) and ``complete = True``, written last.

``key16`` starts the sha256 of the data set name, the split, the transform's configuration and the
source files' names, sizes and modification times, so a changed transform or changed data makes a
new file. A file that cannot be read, lacks ``complete``, or does not match (shapes, labels,
configuration) is reported with a warning and rebuilt. Files are written to a temporary ``*.tmp``
beside the target and renamed into place, so an interrupted build leaves no half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..files import atomic_write
from ..progress import bar
from .events import EventSource
from .transforms import Transform

MAX_COUNT = np.iinfo(np.uint16).max
CHUNK = 1 << 16  # elements per HDF5 chunk of frames/index and frames/count


def cache_config(source: EventSource, transform: Transform) -> tuple[str, dict[str, Any]]:
    """The cache key (sha256 hex digest) of ``transform`` applied to ``source``, and the configuration
    stored with the cache (everything in the key but the per-file fingerprints)."""
    config = {"dataset": source.name, "split": source.split, "samples": len(source), "transform": transform.key()}
    stats = [(f.relative_to(source.root).as_posix(), os.stat(f)) for f in source.files]
    fingerprint = [[name, st.st_size, st.st_mtime_ns] for name, st in stats]
    blob = json.dumps({**config, "files": fingerprint}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest(), config


def _problem(path: Path, config: dict[str, Any], shape: tuple[int, ...], labels: np.ndarray) -> str | None:
    """Why the cache file at ``path`` cannot be used, or None when it can."""
    try:
        with h5py.File(path, "r") as handle:
            if not handle.attrs.get("complete", False):
                return "incomplete (no complete flag)"
            if handle.attrs["config"] != json.dumps(config, sort_keys=True):
                return "its configuration differs"
            stored = tuple(int(n) for n in handle.attrs["sample_shape"])
            if stored != shape:
                return f"samples have shape {stored}, expected {shape}"
            offset, n = handle["frames/offset"][()], len(labels)
            sizes = {handle["frames/index"].shape, handle["frames/count"].shape, (offset[-1],)}
            if offset.shape != (n + 1,) or offset[0] != 0 or np.any(np.diff(offset) < 0) or len(sizes) > 1:
                return f"frames/offset does not index {n} samples of frames/index and frames/count"
            if not np.array_equal(handle["labels"][()], labels):
                return "labels differ from the data set"
    except (OSError, KeyError, ValueError, IndexError) as err:
        return f"unreadable ({err})"
    return None


def _sparse_counts(frames: np.ndarray, index: int, source: EventSource) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions and uint16 counts of the nonzero bins of ``frames`` (checked to be counts)."""
    flat = frames.reshape(-1)
    position = np.flatnonzero(flat != 0)  # on a bool mask: ~10x faster than on float32
    counts = flat[position]
    if np.any(np.round(counts) != counts) or np.any(counts < 0) or np.any(counts > MAX_COUNT):
        raise ValueError(
            f"{source.name} {source.split} sample {index}: the cache stores event counts 0..{MAX_COUNT} (uint16); "
            f"the transform gave values in {frames.min()}..{frames.max()}"
        )
    return position, counts.astype(np.uint16)


def _append(dataset: h5py.Dataset, values: np.ndarray) -> None:
    end = dataset.shape[0]
    dataset.resize((end + len(values),))
    dataset[end:] = values


def _build_cache(path: Path, source: EventSource, transform: Transform, config: dict[str, Any]) -> None:
    """Decode and transform every sample of ``source`` into the cache file ``path``, atomically."""
    first = np.asarray(transform(source[0][0]))
    index_dtype = np.uint32 if first.size < 2**32 else np.uint64
    offset = np.zeros(len(source) + 1, dtype=np.int64)
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as handle:
        index = handle.create_dataset("frames/index", (0,), index_dtype, maxshape=(None,), chunks=(CHUNK,))
        count = handle.create_dataset("frames/count", (0,), np.uint16, maxshape=(None,), chunks=(CHUNK,))
        for i in bar(range(len(source)), desc=f"caching {path.name}"):
            frames = first if i == 0 else np.asarray(transform(source[i][0]))
            if frames.shape != first.shape:
                raise ValueError(f"{source.name} {source.split} sample {i}: frames {frames.shape}, not {first.shape}")
            position, counts = _sparse_counts(frames, i, source)
            _append(index, position.astype(index_dtype))
            _append(count, counts)
            offset[i + 1] = offset[i] + len(counts)
        handle["frames/offset"] = offset
        handle["labels"] = np.asarray(source.labels, dtype=np.int64)
        handle.attrs["sample_shape"] = first.shape
        handle.attrs["config"] = json.dumps(config, sort_keys=True)
        handle.attrs["complete"] = True


def ensure_cache(cache_dir: str | Path, source: EventSource, transform: Transform) -> tuple[Path, bool]:
    """The cache file of ``transform`` applied to ``source``, built (or rebuilt, with a warning, when it
    is unusable) if needed; returns ``(path, built)``. Random transforms are refused."""
    if transform.random:
        raise ValueError(f"{transform} is random: augment the cached frames with data.task.Augmented")
    key, config = cache_config(source, transform)
    path = Path(cache_dir) / f"{source.name}-{source.split}-{key[:16]}.h5"
    if path.exists():
        shape = np.shape(transform(source[0][0]))
        problem = _problem(path, config, shape, np.asarray(source.labels, dtype=np.int64))
        if problem is None:
            return path, False
        warnings.warn(f"{path}: cache is unusable, {problem}; rebuilding it", stacklevel=2)
    _build_cache(path, source, transform, config)
    return path, True


class CachedFrames(Dataset):
    """``(float32 frames [T, *shape], label)`` of ``transform`` applied to ``source``, read from the
    HDF5 cache in ``cache_dir`` (built on first use). Augment with ``task.Augmented`` on top.
    ``groups`` are the source's sample groups (e.g. ``{"speaker": ...}``; empty when it has none),
    for grouped cross-validation."""

    def __init__(self, source: EventSource, transform: Transform, cache_dir: str | Path) -> None:
        self.path, self.built = ensure_cache(cache_dir, source, transform)
        self.groups = {name: np.asarray(values) for name, values in getattr(source, "groups", {}).items()}
        with h5py.File(self.path, "r") as handle:
            self.labels = torch.from_numpy(handle["labels"][()])
            self.sample_shape = tuple(int(n) for n in handle.attrs["sample_shape"])
            self._offset = handle["frames/offset"][()]
        self._handle: tuple[int, h5py.File, h5py.Dataset, h5py.Dataset] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        # One handle per process: HDF5 handles must not cross a fork (DataLoader workers).
        if self._handle is None or self._handle[0] != os.getpid():
            handle = h5py.File(self.path, "r")
            self._handle = (os.getpid(), handle, handle["frames/index"], handle["frames/count"])
        _, _, positions, counts = self._handle
        start, stop = int(self._offset[index]), int(self._offset[index + 1])
        frames = np.zeros(self.sample_shape, dtype=np.float32)  # calloc: much cheaper than torch.zeros here
        frames.reshape(-1)[positions[start:stop]] = counts[start:stop]
        return torch.from_numpy(frames), int(self.labels[index])

    def close(self) -> None:
        """Close this process's handle on the cache file (reopened on the next read)."""
        if self._handle is not None:
            self._handle[1].close()
            self._handle = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None}
