"""Property-based fuzzing of the data readers: N-MNIST ``.bin`` and zip, SHD ``.h5`` and the frame cache.

Every input gives a valid result or a clear error (a ``ValueError``, e.g. ``EventFormatError``, or a
``FileNotFoundError``, with a one-line message naming the file), never another exception or a hang
(each example has a deadline). A damaged cache is never an error: it is rebuilt and reads back the
true frames. CI runs ``MAELSTROM_FUZZ_EXAMPLES`` (default 30) examples per fuzzer; a long run::

    MAELSTROM_FUZZ_EXAMPLES=10000 pytest tests/test_fuzz_readers.py --hypothesis-seed=N
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.extra.numpy import arrays, from_dtype

from spiking_maelstrom.data.cache import CachedFrames, checksum
from spiking_maelstrom.data.events import NMNIST_DTYPE
from spiking_maelstrom.data.nmnist import MAX_TIMESTAMP, NMNISTFiles, read_nmnist_bin, write_nmnist_bin
from spiking_maelstrom.data.shd import N_CHANNELS, REQUIRED_KEYS, SHDFile, write_shd_h5
from spiking_maelstrom.data.transforms import ToFrames

from .test_nmnist import random_nmnist
from .test_shd import random_shd

FUZZ = settings(
    max_examples=int(os.environ.get("MAELSTROM_FUZZ_EXAMPLES", "30")),
    deadline=timedelta(seconds=60),  # generous: a loaded CI machine stalls for seconds; a hang still fails
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FRAMES = ToFrames(dt=20_000, n_steps=8, sensor_size=(2, 34, 34))


def valid_or_clear_error(read: Callable[[], Any], name: str) -> Any:
    """``read()``'s result, or None when it raised a clear error: one line, naming ``name``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sorted timestamps, duplicate zip members, rebuilds
            result = read()
    except (ValueError, FileNotFoundError) as err:
        assert "\n" not in str(err) and name in str(err), str(err)
        tally(f"clear error: {str(err).replace(name, '<file>').split('(')[0][:40]}")
        return None
    tally("valid result")
    return result


def tally(outcome: str) -> None:
    """Count ``outcome`` in hypothesis's statistics (``--hypothesis-show-statistics``), inside a fuzzer."""
    if currently_in_test_context():
        event(outcome)


def damaged(data: bytes, draw: st.DrawFn) -> bytes:
    """``data`` with a few bytes overwritten and perhaps truncated (as a disk or a download does)."""
    out = bytearray(data)
    for position, value in draw(st.lists(st.tuples(st.integers(0, len(out) - 1), st.integers(0, 255)), max_size=8)):
        out[position] = value
    return bytes(out[: draw(st.integers(0, len(out)))] if draw(st.booleans()) else out)


# N-MNIST .bin: raw bytes, or events that are mostly on the sensor (x, y up to 40 of 0..33).
EVENT = st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
ON_SENSOR = st.lists(st.tuples(*[st.integers(0, 33)] * 2, *[st.integers(0, 255)] * 3), min_size=1, max_size=30).map(
    lambda events: bytes(b for e in events for b in e)
)
BIN_DATA = st.one_of(
    st.binary(max_size=120),
    st.builds(
        lambda events, cut: bytes(b for e in events for b in e)[cut:], st.lists(EVENT, max_size=40), st.integers(0, 4)
    ),
)


def decoded_reference(data: bytes) -> np.ndarray:
    """The events of ``data`` decoded one by one, in stable time order: what the vectorised decoder must give."""
    rows = [data[i : i + 5] for i in range(0, len(data), 5)]
    events = np.array([(r[0], r[1], r[2] >> 7, (r[2] & 0x7F) << 16 | r[3] << 8 | r[4]) for r in rows], NMNIST_DTYPE)
    return events[np.argsort(events["t"], kind="stable")]


@FUZZ
@given(BIN_DATA)
def test_fuzz_nmnist_bin_decoder(data):
    events = valid_or_clear_error(lambda: read_nmnist_bin(data, name="fuzz/00001.bin"), "fuzz/00001.bin")
    if events is not None:
        assert np.array_equal(events, decoded_reference(data))
        assert events["x"].max() < 34 and events["y"].max() < 34 and events["t"].max() <= MAX_TIMESTAMP


@st.composite
def nmnist_zips(draw: st.DrawFn) -> bytes:
    """A ``Train.zip``: members in and out of the layout (labels beyond the digits too), any compression, damaged."""
    label = st.one_of(
        st.sampled_from(["0", "3", "9", "07", "10", "11", "0012", "x"]), st.text("0123456789", max_size=3)
    )
    member = st.tuples(
        st.sampled_from(["Train/", "Train/", "Test/"]), label, st.sampled_from(["/0.bin", "/1.bin", "/b"])
    )
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
    buffer = tempfile.SpooledTemporaryFile()
    with zipfile.ZipFile(buffer, "w", method) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are part of the fuzz
        for parts, data in draw(st.lists(st.tuples(member, st.one_of(ON_SENSOR, BIN_DATA)), max_size=4)):
            archive.writestr("".join(parts), data)
    buffer.seek(0)
    return damaged(buffer.read(), draw) if draw(st.booleans()) else buffer.read()


def read_split(files: NMNISTFiles | SHDFile) -> list[tuple[np.ndarray, int]]:
    """Every sample of ``files``."""
    return [files[i] for i in range(len(files))]


@FUZZ
@given(nmnist_zips())
def test_fuzz_nmnist_zip_reading(data):
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "Train.zip").write_bytes(data)
        samples = valid_or_clear_error(lambda: read_split(NMNISTFiles(root, "train")), str(Path(root) / "Train.zip"))
    for events, label in samples or []:
        assert 0 <= label < 10 and len(events) and events["x"].max() < 34 and events["y"].max() < 34


# Column dtypes with the values drawn for them (None: any value of the dtype, NaN and infinities too):
# times in 0..2 s (or, per sample, anything), units around the 0..699 channels, labels around 0..3 classes.
TIMES = [
    (np.float16, st.floats(0, 2, width=16)),
    (np.float32, st.floats(0, 2, width=32)),
    (np.int32, st.integers(0, 2)),
]
UNITS = [(np.uint16, st.integers(0, N_CHANNELS + 1)), (np.int16, st.integers(-2, N_CHANNELS + 1)), (np.float32, None)]
LABELS = [(np.uint16, st.integers(0, 4)), (np.int8, st.integers(-1, 4)), (np.float32, st.integers(0, 4))]


@st.composite
def shd_files(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """The columns of an SHD file of any length, dtype and value (NaN, negative, beyond 700), perhaps one missing."""
    n = draw(st.integers(0, 4))
    time_dtype, clean_time = draw(st.sampled_from(TIMES))
    unit_dtype, unit = draw(st.sampled_from(UNITS))
    label_dtype, label = draw(st.sampled_from(LABELS))
    counts = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    unit_counts = counts if draw(st.booleans()) else draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    columns = {
        "spikes/times": [
            draw(arrays(time_dtype, k, elements=draw(st.sampled_from([clean_time, None])))) for k in counts
        ],
        "spikes/units": [draw(arrays(unit_dtype, k, elements=unit)) for k in unit_counts],
        "labels": draw(arrays(label_dtype, n + draw(st.integers(0, 1)), elements=label)),
        "extra/speaker": draw(arrays(np.uint16, n)),
        "extra/keys": np.array([b"w%d" % i for i in range(draw(st.integers(0, 4)))]),
    }
    columns.pop(draw(st.sampled_from([None, *REQUIRED_KEYS])), None)
    return columns


def write_columns(path: Path, columns: dict[str, Any]) -> None:
    with h5py.File(path, "w") as handle:
        for key, values in columns.items():
            if key.startswith("spikes/"):
                base = values[0].dtype if values else np.float32
                dataset = handle.create_dataset(key, (len(values),), dtype=h5py.vlen_dtype(base))
                for i, v in enumerate(values):
                    dataset[i] = v
            else:
                handle[key] = values


def _valid_shd_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "shd.h5"
        rng = np.random.default_rng(0)
        write_shd_h5(path, [random_shd(rng, 12 + i) for i in range(4)], [0, 1, 2, 1], [0, 0, 1, 1], ["a", "b", "c"])
        return path.read_bytes()


VALID_SHD = _valid_shd_bytes()


@FUZZ
@given(st.booleans(), st.data())
def test_fuzz_shd_h5_reader(structured, data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "shd_train.h5"
        if structured:
            write_columns(path, data.draw(shd_files()))
        else:
            path.write_bytes(damaged(VALID_SHD, data.draw))
        shd = valid_or_clear_error(lambda: SHDFile(path), str(path))
        samples = read_split(shd) if shd is not None else []
    for events, label in samples:
        assert 0 <= label < shd.n_classes and len(events)
        assert np.all(np.isfinite(events["t"]) & (events["t"] >= 0)) and events["unit"].max() < N_CHANNELS


@dataclass
class CacheCase:
    """A small N-MNIST split, where its cache goes, the bytes of its good cache file and its true frames."""

    source: NMNISTFiles
    folder: Path
    path: Path
    good: bytes
    frames: list[torch.Tensor]

    def __repr__(self) -> str:  # short, in hypothesis's reports
        return f"CacheCase({self.path})"


@pytest.fixture(scope="module")
def cache_case(tmp_path_factory) -> CacheCase:
    root = tmp_path_factory.mktemp("fuzz-cache")
    rng = np.random.default_rng(0)
    for i in range(4):
        write_nmnist_bin(root / "data" / "Train" / str(i % 3) / f"{i:05d}.bin", random_nmnist(rng, 30 + i))
    source = NMNISTFiles(root / "data", "train")
    good = CachedFrames(source, FRAMES, root / "cache")
    good.close()
    frames = [torch.from_numpy(FRAMES(source[i][0])) for i in range(len(source))]
    return CacheCase(source, root / "cache", good.path, good.path.read_bytes(), frames)


def tampered(path: Path, draw: st.DrawFn) -> bool:
    """Change one value of a dataset or attribute of the cache at ``path``; returns whether the checksum
    was then recomputed (a deliberate forgery, which no checksum can tell from a real cache)."""
    with h5py.File(path, "r+") as handle:
        key = draw(
            st.sampled_from(["frames/index", "frames/count", "frames/offset", "labels", "sample_shape", "sha256"])
        )
        if key in handle:
            dataset = handle[key]
            dataset[draw(st.integers(0, dataset.shape[0] - 1))] = draw(from_dtype(dataset.dtype))
        else:
            handle.attrs[key] = draw(st.one_of(st.text(max_size=4), st.lists(st.integers(-1, 70_000), max_size=5)))
        forged = draw(st.booleans())
        if forged:
            handle.attrs["sha256"] = checksum(handle)
    return forged


@FUZZ
@given(st.data())
def test_fuzz_frame_cache_is_rebuilt_or_read_back(cache_case, data):
    """A damaged cache reads back the true frames (rebuilt); a forged one at least reads frames of the
    right shape holding counts, never an out-of-range crash."""
    case = cache_case
    case.path.write_bytes(case.good)
    forged = data.draw(st.booleans()) and tampered(case.path, data.draw)
    if not forged:
        case.path.write_bytes(damaged(case.path.read_bytes(), data.draw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rebuild warning
        cached = CachedFrames(case.source, FRAMES, case.folder)
    tally("rebuilt" if cached.built else ("forged, used" if forged else "used as is"))
    try:
        assert len(cached) == len(case.frames) and cached.labels.tolist() == case.source.labels.tolist()
        for i, expected in enumerate(case.frames):
            read = cached[i][0]
            assert torch.equal(read, expected) if not forged else read.shape == expected.shape and read.min() >= 0
    finally:
        cached.close()


def test_zeroing_any_header_byte_of_an_shd_file_gives_a_valid_result_or_a_clear_error(tmp_path):
    """Deterministic: each of the first 1,024 bytes (superblock, object headers, group tables) zeroed in turn."""
    path = tmp_path / "shd_train.h5"
    for position in range(1024):
        path.write_bytes(VALID_SHD[:position] + b"\0" + VALID_SHD[position + 1 :])
        valid_or_clear_error(lambda: read_split(SHDFile(path)), str(path))
