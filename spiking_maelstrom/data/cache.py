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
  sample count), ``sha256`` (of the datasets above: :func:`checksum`) and ``complete = True``,
  written last.

``key16`` starts the sha256 of the data set name, the split, the transform's configuration and the
source files' names, sizes and modification times, so a changed transform or changed data makes a
new file. A file is trusted only after it is checked when opened: one that cannot be read, lacks
``complete``, does not match (shapes, labels, configuration), fails its checksum, or holds a bin
position outside the sample, a count below 1 or offsets that do not index the samples is reported
with a warning and rebuilt. Files are written to a temporary ``.<name>.<random>.tmp`` beside the
target and renamed into place, so an interrupted build leaves no half-written cache. A killed build
leaves its temporary file behind: the next use of a cache of the same data set and split deletes
those not modified for :data:`STALE_SECONDS`, while a live build touches its own at least every
:data:`HEARTBEAT_SECONDS`, so a concurrent builder's file is never taken for a stale one.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterator
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
BLOCK = 1 << 22  # elements read at a time when a cache file is checked
DATASETS = ("frames/index", "frames/count", "frames/offset", "labels")  # what the checksum covers
HEARTBEAT_SECONDS = 60.0  # a build touches its temporary file at least this often
STALE_SECONDS = 600.0  # a temporary file untouched this long was left by a killed build


def cache_config(source: EventSource, transform: Transform) -> tuple[str, dict[str, Any]]:
    """The cache key (sha256 hex digest) of ``transform`` applied to ``source``, and the configuration
    stored with the cache (everything in the key but the per-file fingerprints)."""
    config = {"dataset": source.name, "split": source.split, "samples": len(source), "transform": transform.key()}
    stats = [(f.relative_to(source.root).as_posix(), os.stat(f)) for f in source.files]
    fingerprint = [[name, st.st_size, st.st_mtime_ns] for name, st in stats]
    blob = json.dumps({**config, "files": fingerprint}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest(), config


def _blocks(dataset: h5py.Dataset) -> Iterator[np.ndarray]:
    """The one-dimensional ``dataset`` read :data:`BLOCK` elements at a time."""
    return (dataset[start : start + BLOCK] for start in range(0, dataset.shape[0], BLOCK))


def checksum(handle: h5py.File) -> str:
    """The sha256 hex digest of the cache datasets (:data:`DATASETS`): their names, dtypes, shapes and values."""
    digest = hashlib.sha256()
    for key in DATASETS:
        dataset = handle[key]
        digest.update(f"{key} {dataset.dtype.str} {dataset.shape};".encode())
        for block in _blocks(dataset):
            digest.update(np.ascontiguousarray(block).tobytes())
    return digest.hexdigest()


def _out_of_bounds(handle: h5py.File, size: int) -> str | None:
    """Why the bins of the cache do not fit samples of ``size`` bins (a position or count out of range), or None."""
    if handle["frames/index"].dtype.kind != "u" or handle["frames/count"].dtype != np.uint16:
        return "frames/index and frames/count do not hold unsigned bin positions and uint16 counts"
    for block in _blocks(handle["frames/index"]):
        if block.size and int(block.max()) >= size:
            return f"frames/index holds bin {int(block.max())}, beyond the {size} bins of a sample"
    for block in _blocks(handle["frames/count"]):
        if block.size and int(block.min()) < 1:
            return "frames/count holds a count of 0 (only nonzero bins are stored)"
    return None


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
            if handle.attrs.get("sha256") != checksum(handle):
                return "its checksum does not match its contents (damaged, or built by an older version)"
            return _out_of_bounds(handle, int(np.prod(shape)))
    except (OSError, KeyError, ValueError, IndexError, TypeError, RuntimeError, AttributeError) as err:
        return f"unreadable ({type(err).__name__}: {err})"  # AttributeError: a name that is no dataset


def remove_stale_builds(path: Path, source: EventSource) -> None:
    """Delete the temporary files that killed builds of ``source``'s caches left beside ``path``: those
    not modified for :data:`STALE_SECONDS` (a live build's is never that old, see :data:`HEARTBEAT_SECONDS`)."""
    pattern = glob.escape(str(path.parent / f".{source.name}-{source.split}-")) + "*.h5.*.tmp"
    for tmp in glob.glob(pattern):
        try:
            if time.time() - os.stat(tmp).st_mtime > STALE_SECONDS:
                os.unlink(tmp)
        except FileNotFoundError:
            pass  # removed by another process meanwhile (its build ended, or another cleaner)


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
    beat = time.monotonic()
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
            if time.monotonic() - beat > HEARTBEAT_SECONDS:
                os.utime(tmp)  # alive: see remove_stale_builds
                beat = time.monotonic()
        handle["frames/offset"] = offset
        handle["labels"] = np.asarray(source.labels, dtype=np.int64)
        handle.attrs["sample_shape"] = first.shape
        handle.attrs["config"] = json.dumps(config, sort_keys=True)
        handle.attrs["sha256"] = checksum(handle)
        handle.attrs["complete"] = True


def ensure_cache(cache_dir: str | Path, source: EventSource, transform: Transform) -> tuple[Path, bool]:
    """The cache file of ``transform`` applied to ``source``, built (or rebuilt, with a warning, when it
    is unusable) if needed; returns ``(path, built)``. Stale temporary files of killed builds are
    removed first (:func:`remove_stale_builds`). Random transforms are refused."""
    if transform.random:
        raise ValueError(f"{transform} is random: augment the cached frames with data.task.Augmented")
    key, config = cache_config(source, transform)
    path = Path(cache_dir) / f"{source.name}-{source.split}-{key[:16]}.h5"
    remove_stale_builds(path, source)
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
