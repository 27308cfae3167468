"""Spiking Heidelberg Digits (Cramer et al. 2020): spoken digits as spikes of 700 cochlea channels.

One HDF5 file per split (``shd_train.h5``, ``shd_test.h5``, or the published ``.h5.gz``) holding
``spikes/times`` (variable-length float16 seconds per sample), ``spikes/units`` (variable-length
uint16 channel), ``labels``, ``extra/speaker`` and ``extra/keys`` (the word of each label).
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import h5py
import numpy as np

from ..files import atomic_write
from .events import EventFormatError, check_range, shd_events, sorted_by_time
from .task import Task, recorded_task, training_augmentation
from .transforms import BandBalance, Blend, ChannelBin, Compose, ToFrames, Transform

N_CHANNELS = 700
DEFAULT_ROOT = Path("datasets") / "shd"
SENSOR_SIZE = (N_CHANNELS,)
REQUIRED_KEYS = ("spikes/times", "spikes/units", "labels", "extra/speaker", "extra/keys")
# The dtype kinds each column may hold (numpy kinds: f float, i signed, u unsigned integer); labels and
# speakers must be integers (a float label is refused, not truncated).
KINDS = {"spikes/times": "fiu", "spikes/units": "iu", "labels": "iu", "extra/speaker": "iu"}
VLEN = ("spikes/times", "spikes/units")  # one variable-length array per sample
# What h5py raises on a damaged file whose structure opened: unreadable blocks, wrong object types.
H5_ERRORS = (OSError, RuntimeError, KeyError, TypeError, ValueError)


class SHDFile:
    """All samples of one SHD file, read and checked when opened; ``shd[i]`` returns ``(events, label)``.

    Times are upcast from float16 to float64 before anything else (``float16 * 1e6`` overflows).
    The class count is ``len(extra/keys)``, the file's own list of class names, so a file holding
    a subset of labels (a small test split) still reports every class; labels must be integers
    below it. Spike times must be finite and non-negative, units in 0..699.
    A ``.gz`` file is decompressed to a temporary file that is deleted once read.
    """

    name = "shd"
    sensor_size = SENSOR_SIZE

    def __init__(self, path: str | Path, split: str | None = None) -> None:
        self.path = Path(path)
        self.root = self.path.parent
        self.files = [self.path]
        stem = self.path.name.split(".")[0]
        self.split = split or stem.removeprefix("shd_")
        if not self.path.is_file():
            raise FileNotFoundError(
                f"SHD file {self.path} does not exist: expected shd_train.h5 / shd_test.h5 (or .h5.gz) from "
                "https://zenkelab.org/datasets (see datasets/README.md and spiking_maelstrom.data.download)"
            )
        if self.path.suffix == ".gz":
            with tempfile.TemporaryFile() as plain:
                try:
                    with gzip.open(self.path) as packed:
                        shutil.copyfileobj(packed, plain)
                except (OSError, EOFError) as err:
                    raise EventFormatError(f"{self.path}: not a readable gzip file ({err})") from err
                plain.seek(0)
                self._read(plain)
        else:
            self._read(self.path)

    def _read(self, source: Path | IO[bytes]) -> None:
        try:
            handle = h5py.File(source, "r")
        except OSError as err:
            raise EventFormatError(f"{self.path}: not an HDF5 file ({err})") from err
        try:
            with handle:
                self.times, self.units, labels, speakers, keys = self._columns(handle)
        except EventFormatError:
            raise
        except H5_ERRORS as err:
            raise EventFormatError(f"{self.path}: unreadable HDF5 data ({type(err).__name__}: {err})") from err
        self.keys = [k.decode(errors="replace") if isinstance(k, bytes) else str(k) for k in keys]
        self.n_classes = len(self.keys)
        what = f"label (extra/keys has {self.n_classes} classes)"
        check_range(labels, self.n_classes, what, str(self.path), "sample")
        self.labels, self.speakers = labels.astype(np.int64), speakers.astype(np.int64)
        self._check()
        self.groups = {"speaker": self.speakers}

    def _columns(self, handle: h5py.File) -> list[np.ndarray]:
        """The columns :data:`REQUIRED_KEYS` names, each checked by :meth:`_column`."""
        missing = [k for k in REQUIRED_KEYS if k not in handle]
        if missing:
            raise EventFormatError(f"{self.path}: missing HDF5 keys {', '.join(missing)}")
        return [self._column(handle, key) for key in REQUIRED_KEYS]

    def _column(self, handle: h5py.File, key: str) -> np.ndarray:
        """The one-dimensional dataset ``key``, checked to hold what :data:`KINDS` and :data:`VLEN` allow."""
        item = handle[key]
        if not isinstance(item, h5py.Dataset) or item.ndim != 1:
            raise EventFormatError(f"{self.path}: {key} is not a one-dimensional dataset")
        vlen = h5py.check_vlen_dtype(item.dtype)
        if (vlen is not None) != (key in VLEN):
            kind = "variable-length arrays" if key in VLEN else "one value per sample"
            raise EventFormatError(f"{self.path}: {key} has dtype {item.dtype}, expected {kind}")
        dtype = np.dtype(vlen or item.dtype)
        if key in KINDS and dtype.kind not in KINDS[key]:
            expected = "numbers" if "f" in KINDS[key] else "integers"
            raise EventFormatError(f"{self.path}: {key} holds {dtype} values, expected {expected}")
        return item[()]

    def _check(self) -> None:
        n = len(self.labels)
        if n == 0:
            raise EventFormatError(f"{self.path}: no samples")
        for what, column in (
            ("spikes/times", self.times),
            ("spikes/units", self.units),
            ("extra/speaker", self.speakers),
        ):
            if len(column) != n:
                raise EventFormatError(f"{self.path}: {len(column)} entries in {what} but {n} labels")
        n_times = np.array([len(t) for t in self.times])
        n_units = np.array([len(u) for u in self.units])
        if np.any(n_times != n_units):
            index = np.flatnonzero(n_times != n_units)[0]
            raise EventFormatError(
                f"{self.path}: sample {index} has {n_times[index]} spike times but {n_units[index]} units"
            )
        if np.any(n_times == 0):
            raise EventFormatError(f"{self.path}: sample {np.flatnonzero(n_times == 0)[0]} is empty (0 spikes)")
        units, times = np.concatenate(self.units), np.concatenate(self.times)
        outside = (units < 0) | (units >= N_CHANNELS)
        self._refuse_spikes(units, outside, n_units, "unit", f"is outside 0..{N_CHANNELS - 1}")
        self._refuse_spikes(times, ~np.isfinite(times) | (times < 0), n_times, "time", "is not finite and >= 0 s")

    def _refuse_spikes(self, values: np.ndarray, bad: np.ndarray, lengths: np.ndarray, what: str, problem: str) -> None:
        """Raise naming the sample and spike of the first ``bad`` one of the concatenated spike ``values``."""
        where = np.flatnonzero(bad)
        if where.size:
            ends = np.cumsum(lengths)
            index = int(np.searchsorted(ends, where[0], side="right"))
            spike = where[0] - (ends[index] - lengths[index])
            raise EventFormatError(f"{self.path}: sample {index}: {what} {values[where[0]]} at spike {spike} {problem}")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        events = shd_events(self.times[index], self.units[index])
        return sorted_by_time(events, f"{self.path}: sample {index}"), int(self.labels[index])


def write_shd_h5(
    path: str | Path,
    samples: Sequence[np.ndarray],
    labels: Sequence[int],
    speakers: Sequence[int],
    keys: Sequence[str],
) -> None:
    """Write SHD events (``t`` seconds, ``unit``) in the SHD file layout, atomically; gzipped if ``path`` ends in .gz.

    Times are stored as float16 like the published files, so they come back rounded to float16.
    """
    path = Path(path)
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            times = handle.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float16))
            units = handle.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
            for index, events in enumerate(samples):
                times[index] = events["t"].astype(np.float16)
                units[index] = events["unit"].astype(np.uint16)
            handle["labels"] = np.asarray(labels, dtype=np.uint16)
            handle["extra/speaker"] = np.asarray(speakers, dtype=np.uint16)
            handle["extra/keys"] = np.array([k.encode() for k in keys])
        if path.suffix == ".gz":
            data = tmp.read_bytes()
            with gzip.open(tmp, "wb") as packed:
                packed.write(data)


def find_shd_file(root: str | Path, split: str) -> Path:
    """``root/shd_<split>.h5``, or its ``.h5.gz``; a clear error naming both when neither exists."""
    root = Path(root)
    for name in (f"shd_{split}.h5", f"shd_{split}.h5.gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"SHD {split} split not found: expected {root / f'shd_{split}.h5'} or {root / f'shd_{split}.h5.gz'} "
        "(get them from https://zenkelab.org/datasets with spiking_maelstrom.data.download.download_shd; "
        "see datasets/README.md)"
    )


def shd_task(
    data_dir: str | Path | None = None,
    dt_ms: float = 10.0,
    n_steps: int = 100,
    channel_bin: int = 1,
    shift: int = 0,
    jitter: float = 0.0,
    tilt: float = 0.0,
    mask: int = 0,
    stretch: float = 0.0,
    blend: float = 0.0,
    balance: int = 0,
    balance_ms: float = 200.0,
    cache_dir: str | Path | None = None,
) -> Task:
    """SHD (or a file in its layout) as a task: ``n_steps`` frames of ``dt_ms`` ms over 700 channels
    (100 x 10 ms covers 1 s), optionally binned by ``channel_bin``; the class count is that of the
    files' ``extra/keys``, which must agree between train and test. Read from ``data_dir`` (default
    ``datasets/shd``) through the HDF5 cache.
    Training samples are augmented by random shifts of up to ``shift`` channels, ``jitter`` steps
    of time jitter, a random spectral tilt of up to ``tilt`` (``SpectralTilt``) and a silenced band
    of up to ``mask`` channels (``ChannelMask``) and a time stretch by a factor of up to
    ``1 + stretch`` (``TimeStretch``); with probability ``blend`` a training sample is first
    blended with one of its class spoken by another speaker (``Blend``). ``balance=K`` puts an online spectral balance
    over K bands with a ``balance_ms`` time constant (``BandBalance``) in front of the network, on
    every split after the augmentation."""
    root = Path(data_dir) if data_dir is not None else DEFAULT_ROOT
    steps: list[Transform] = [ToFrames(dt_ms * 1e-3, n_steps, SENSOR_SIZE)]
    if channel_bin > 1:
        steps.append(ChannelBin(channel_bin))
    sources = {split: SHDFile(find_shd_file(root, split), split) for split in ("train", "test")}
    augment = training_augmentation(shift, jitter, tilt, mask, stretch)
    blender = Blend(blend, seed=5) if blend else None
    if balance < 0 or balance_ms <= 0:
        raise ValueError(f"balance needs balance >= 0 bands and balance_ms > 0, got {balance} and {balance_ms}")
    front_end = BandBalance(balance, balance_ms / dt_ms) if balance else None
    options = dict(
        shift=shift,
        jitter=jitter,
        tilt=tilt,
        mask=mask,
        stretch=stretch,
        blend=blend,
        balance=balance,
        balance_ms=balance_ms,
        data_dir=str(root.resolve()),
        dt_ms=dt_ms,
        n_steps=n_steps,
        channel_bin=channel_bin,
        cache_dir=cache_dir,
    )
    defaults = {"encoder": "mlp", "encoder_hidden": (128,)}
    n_classes = sources["train"].n_classes
    if sources["test"].n_classes != n_classes:
        raise EventFormatError(
            f"{sources['test'].path}: {sources['test'].n_classes} classes (extra/keys) but the training file "
            f"{sources['train'].path} has {n_classes}: the splits must have the same classes"
        )
    return recorded_task(
        "shd",
        sources,
        Compose(tuple(steps)),
        dt_ms * 1e-3,
        n_classes,
        options,
        defaults,
        cache_dir,
        augment,
        front_end,
        blender,
    )
