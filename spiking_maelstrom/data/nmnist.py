"""N-MNIST (Orchard et al. 2015): saccade recordings of MNIST digits by an ATIS camera, 34 x 34 pixels.

Each sample is one binary file of 5-byte events, big-endian bit order: x (8 bits), y (8 bits),
polarity (1 bit), timestamp (23 bits, microseconds). :class:`NMNISTFiles` finds them in the
official layout, unpacked (``root/Train/<label>/<n>.bin``) or in the official archives
(``root/Train.zip``), read in place.
"""

from __future__ import annotations

import lzma
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..files import atomic_write
from .events import EventFormatError, check_range, nmnist_events, sorted_by_time, split_folder
from .task import Task, recorded_task, training_augmentation
from .transforms import Compose, Downsample, ToFrames, Transform

SENSOR_SIZE = (2, 34, 34)  # (polarity, y, x): the frame layout of ToFrames
BYTES_PER_EVENT = 5
MAX_TIMESTAMP = (1 << 23) - 1
N_CLASSES = 10  # the digits: label folders 0..9
SPLITS = ("Train", "Test")
# What reading a damaged archive raises: a bad header or CRC, a truncated or corrupt compressed stream,
# an unsupported or encrypted member, a member name that is not UTF-8 (UnicodeDecodeError, a ValueError).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)
DEFAULT_ROOT = Path("datasets") / "nmnist"
HELP = (
    "expected {root}/Train/<label>/<n>.bin and {root}/Test/<label>/<n>.bin, or the official archives "
    "{root}/Train.zip and {root}/Test.zip; get them from https://www.garrickorchard.com/datasets/n-mnist "
    "(see datasets/README.md)"
)


def read_nmnist_bin(path_or_bytes: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """Decode one N-MNIST sample (a file path or its bytes) into :data:`~.events.NMNIST_DTYPE` events.

    Vectorised: the bytes are viewed as ``[events, 5]`` and the fields are sliced out at once.
    ``name`` is the file named in errors (defaults to the path). Raises :class:`EventFormatError` for
    a size that is not a whole number of events, an empty sample, or x / y outside 0..33.
    Timestamps that decrease do not raise: the events are stably sorted by time and a warning
    naming the file is emitted. (ATIS timestamp-overflow markers, y = 240, never occur in N-MNIST,
    whose samples last about 0.3 s of the 8.4 s the 23-bit timestamps cover; they are rejected as
    out-of-range y.)
    """
    if isinstance(path_or_bytes, bytes):
        data, name = path_or_bytes, name or "<bytes>"
    else:
        data, name = Path(path_or_bytes).read_bytes(), name or str(path_or_bytes)
    if len(data) % BYTES_PER_EVENT:
        raise EventFormatError(
            f"{name}: size {len(data)} bytes is not a multiple of {BYTES_PER_EVENT} ({BYTES_PER_EVENT} bytes per event)"
        )
    if not data:
        raise EventFormatError(f"{name}: empty sample (0 events)")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, BYTES_PER_EVENT)
    x, y = raw[:, 0], raw[:, 1]
    check_range(x, SENSOR_SIZE[2], "x", name)
    check_range(y, SENSOR_SIZE[1], "y", name)
    t = (raw[:, 2].astype(np.int64) & 0x7F) << 16 | raw[:, 3].astype(np.int64) << 8 | raw[:, 4]
    return sorted_by_time(nmnist_events(x, y, raw[:, 2] >> 7, t), name)


@contextmanager
def readable_zip(name: str) -> Iterator[None]:
    """Re-raise the errors of reading a damaged zip archive as one-line :class:`EventFormatError` naming ``name``."""
    try:
        yield
    except ZIP_ERRORS as err:
        raise EventFormatError(f"{name}: unreadable zip data ({type(err).__name__}: {err})") from err


def encode_nmnist(events: np.ndarray, name: str = "<events>") -> bytes:
    """The 5-byte-per-event encoding of ``events`` (the inverse of :func:`read_nmnist_bin`)."""
    check_range(events["x"], 256, "x", name)
    check_range(events["y"], 256, "y", name)
    check_range(events["p"], 2, "polarity", name)
    check_range(events["t"], MAX_TIMESTAMP + 1, "timestamp (us)", name)
    t = events["t"].astype(np.int64)
    raw = np.empty((len(events), BYTES_PER_EVENT), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = events["x"], events["y"]
    raw[:, 2] = events["p"].astype(np.uint8) << 7 | t >> 16
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return raw.tobytes()


def write_nmnist_bin(path: str | Path, events: np.ndarray) -> None:
    """Write ``events`` as one N-MNIST ``.bin`` file, atomically (temporary file, then rename)."""
    data = encode_nmnist(events, str(path))
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


class NMNISTFiles:
    """The samples of one split (``"train"`` or ``"test"``) of N-MNIST under ``root``.

    Unpacked folders take precedence over the zip archive. Samples are ordered by label, then file
    name; the label is the name of the sample's folder, a digit 0..9 (:data:`N_CLASSES`): any other
    label folder is refused when the split is opened, naming it. ``n_classes`` counts the labels up to
    the largest present. ``files[i]`` returns ``(events, label)``.
    """

    name = "nmnist"
    sensor_size = SENSOR_SIZE

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        self.split = split.lower()
        folder = split_folder(split, SPLITS)
        help_text = HELP.format(root=self.root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"N-MNIST folder {self.root} does not exist: {help_text}")
        pattern = re.compile(rf"{folder}/([0-9]+)/[^/]+\.bin")
        self.archive: Path | None = None
        if (self.root / folder).is_dir():
            names = [p.relative_to(self.root).as_posix() for p in (self.root / folder).glob("*/*.bin")]
        elif (self.root / f"{folder}.zip").is_file():
            self.archive = self.root / f"{folder}.zip"
            with readable_zip(str(self.archive)), zipfile.ZipFile(self.archive) as archive:
                names = archive.namelist()
        else:
            raise FileNotFoundError(f"N-MNIST split {folder!r} not found in {self.root}: {help_text}")
        found = [(m.group(1), n) for n in names if (m := pattern.fullmatch(n))]
        if not found:
            where = self.archive or self.root / folder
            raise FileNotFoundError(f"no N-MNIST samples in {where}: {help_text}")
        self._check_labels(found)
        found = sorted((int(label), n) for label, n in found)
        self.members = [n for _, n in found]
        self.labels = np.array([label for label, _ in found], dtype=np.int64)
        self.n_classes = int(self.labels.max()) + 1
        self.files = [self.archive] if self.archive else [self.root / n for n in self.members]
        self._zip: tuple[int, zipfile.ZipFile] | None = None

    def _check_labels(self, found: list[tuple[str, str]]) -> None:
        """Refuse a label folder that is not a digit (``found``: label text, sample name), naming it."""
        for label, member in found:
            if len(label.lstrip("0")) > 1:  # compared as text: a long name is no integer to convert
                where = f"{self.archive}:{member}" if self.archive else self.root / member.rsplit("/", 1)[0]
                raise EventFormatError(
                    f"{where}: label {label} is outside 0..{N_CLASSES - 1} (N-MNIST has {N_CLASSES} classes)"
                )

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        member = self.members[index]
        if self.archive is None:
            return read_nmnist_bin(self.root / member), int(self.labels[index])
        with readable_zip(f"{self.archive}:{member}"):
            data = self._open_zip().read(member)
        return read_nmnist_bin(data, name=f"{self.archive}:{member}"), int(self.labels[index])

    def _open_zip(self) -> zipfile.ZipFile:
        # One handle per process: a handle inherited across fork (DataLoader workers) is not safe.
        if self._zip is None or self._zip[0] != os.getpid():
            self._zip = (os.getpid(), zipfile.ZipFile(self.archive))
        return self._zip[1]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None}


def nmnist_task(
    data_dir: str | Path | None = None,
    dt_ms: float = 5.0,
    n_steps: int = 64,
    downsample: int = 1,
    shift: int = 0,
    jitter: float = 0.0,
    stretch: float = 0.0,
    cache_dir: str | Path | None = None,
) -> Task:
    """N-MNIST as a task: frames of ``dt_ms`` ms (one channel per polarity), ``n_steps`` of them
    (64 x 5 ms covers the ~310 ms of a recording), optionally down-sampled; read from ``data_dir``
    (default ``datasets/nmnist``) through the HDF5 cache. Training samples are augmented by random
    shifts of up to ``shift`` pixels in x and y, a time stretch by a factor of up to ``1 + stretch``
    (``TimeStretch``) and ``jitter`` steps of time jitter."""
    root = Path(data_dir) if data_dir is not None else DEFAULT_ROOT
    steps: list[Transform] = [ToFrames(dt_ms * 1e3, n_steps, SENSOR_SIZE)]
    if downsample > 1:
        steps.append(Downsample(downsample))
    sources = {split: NMNISTFiles(root, split) for split in ("train", "test")}
    augment = training_augmentation(shift, jitter, stretch=stretch)
    options = dict(
        shift=shift,
        jitter=jitter,
        stretch=stretch,
        data_dir=str(root.resolve()),
        dt_ms=dt_ms,
        n_steps=n_steps,
        downsample=downsample,
        cache_dir=cache_dir,
    )
    return recorded_task(
        "nmnist",
        sources,
        Compose(tuple(steps)),
        dt_ms * 1e-3,
        N_CLASSES,
        options,
        {"encoder": "conv"},
        cache_dir,
        augment,
    )
