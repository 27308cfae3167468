"""SHD: the HDF5 reader and writer (.h5 and .h5.gz), float16 times, errors that name file and sample."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from spiking_maelstrom.data.events import EventFormatError, shd_events
from spiking_maelstrom.data.shd import SHDFile, write_shd_h5

from .conftest import SHARED_DATA

FSDD_SHD = SHARED_DATA / "fsdd-shd"
KEYS = ["zero", "one", "two"]


def random_shd(rng: np.random.Generator, n: int = 40) -> np.ndarray:
    """``n`` random SHD spikes in time order over 1.4 s."""
    return shd_events(np.sort(rng.uniform(0.0, 1.4, n)), rng.integers(0, 700, n))


def write_fixture(path: Path, n_samples: int = 6) -> list[np.ndarray]:
    """A tiny SHD file of ``n_samples`` samples with labels ``i % 3``; returns the events written."""
    rng = np.random.default_rng(0)
    samples = [random_shd(rng, 20 + i) for i in range(n_samples)]
    write_shd_h5(path, samples, [i % 3 for i in range(n_samples)], [i // 2 for i in range(n_samples)], KEYS)
    return samples


@pytest.mark.parametrize("name", ["shd_train.h5", "shd_train.h5.gz"])
def test_write_read_round_trip(tmp_path, name):
    samples = write_fixture(tmp_path / name)
    assert [p.name for p in tmp_path.iterdir()] == [name]
    shd = SHDFile(tmp_path / name)
    assert len(shd) == 6 and shd.split == "train" and shd.n_classes == 3 and shd.keys == KEYS
    assert shd.labels.tolist() == [0, 1, 2, 0, 1, 2] and shd.speakers.tolist() == [0, 0, 1, 1, 2, 2]
    assert shd.sensor_size == (700,)
    for index, written in enumerate(samples):
        events, label = shd[index]
        assert events["t"].dtype == np.float64 and label == index % 3
        assert np.array_equal(events["t"], written["t"].astype(np.float16).astype(np.float64))
        assert np.array_equal(events["unit"], written["unit"])


def test_gzip_file_is_really_compressed(tmp_path):
    write_fixture(tmp_path / "shd_test.h5.gz")
    with gzip.open(tmp_path / "shd_test.h5.gz") as packed:
        assert packed.read(8) == b"\x89HDF\r\n\x1a\n"


def test_float16_times_are_upcast_before_scaling(tmp_path):
    write_shd_h5(tmp_path / "s.h5", [shd_events(np.array([0.5, 1.3]), np.array([1, 2]))], [0], [0], ["zero"])
    events, _ = SHDFile(tmp_path / "s.h5")[0]
    with np.errstate(over="raise"):
        microseconds = events["t"] * 1e6
    assert np.allclose(microseconds, [5e5, 1.3e6], rtol=1e-3)


def test_not_an_hdf5_file(tmp_path):
    (tmp_path / "shd_train.h5").write_text("not hdf5")
    with pytest.raises(EventFormatError, match=r"shd_train\.h5: not an HDF5 file"):
        SHDFile(tmp_path / "shd_train.h5")
    (tmp_path / "shd_test.h5.gz").write_text("not gzip")
    with pytest.raises(EventFormatError, match=r"shd_test\.h5\.gz: not a readable gzip file"):
        SHDFile(tmp_path / "shd_test.h5.gz")


def test_missing_keys_are_listed(tmp_path):
    write_fixture(tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5", "r+") as handle:
        del handle["spikes/times"], handle["extra/keys"]
    with pytest.raises(EventFormatError, match=r"s\.h5: missing HDF5 keys spikes/times, extra/keys$"):
        SHDFile(tmp_path / "s.h5")


def test_times_and_units_of_different_length(tmp_path):
    write_fixture(tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5", "r+") as handle:
        handle["spikes/units"][4] = np.array([1, 2], dtype=np.uint16)
    with pytest.raises(EventFormatError, match=r"s\.h5: sample 4 has 24 spike times but 2 units"):
        SHDFile(tmp_path / "s.h5")


def test_unit_outside_the_700_channels(tmp_path):
    samples = [random_shd(np.random.default_rng(i)) for i in range(3)]
    samples[2]["unit"][7] = 700
    write_shd_h5(tmp_path / "s.h5", samples, [0, 1, 2], [0, 0, 0], KEYS)
    with pytest.raises(EventFormatError, match=r"s\.h5: sample 2: unit 700 at spike 7 is outside 0\.\.699"):
        SHDFile(tmp_path / "s.h5")


def test_empty_sample(tmp_path):
    samples = [random_shd(np.random.default_rng(0)), random_shd(np.random.default_rng(1), 0)]
    write_shd_h5(tmp_path / "s.h5", samples, [0, 1], [0, 0], KEYS)
    with pytest.raises(EventFormatError, match=r"s\.h5: sample 1 is empty"):
        SHDFile(tmp_path / "s.h5")


def test_label_beyond_the_keys(tmp_path):
    write_shd_h5(tmp_path / "s.h5", [random_shd(np.random.default_rng(0))], [3], [0], KEYS)
    with pytest.raises(EventFormatError, match=r"s\.h5: label \(extra/keys has 3 classes\) 3"):
        SHDFile(tmp_path / "s.h5")


def test_unsorted_spikes_are_sorted_with_a_warning_naming_the_sample(tmp_path):
    write_shd_h5(tmp_path / "s.h5", [shd_events(np.array([0.2, 0.1]), np.array([5, 6]))], [0], [0], KEYS)
    with pytest.warns(UserWarning, match=r"s\.h5: sample 0: timestamps decrease"):
        events, _ = SHDFile(tmp_path / "s.h5")[0]
    assert events["unit"].tolist() == [6, 5]


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"shd_train\.h5 does not exist.*zenkelab\.org"):
        SHDFile(tmp_path / "shd_train.h5")


@pytest.mark.skipif(not FSDD_SHD.is_dir(), reason=f"SHD-layout spoken digits not found at {FSDD_SHD}")
def test_real_shd_layout_files_load_with_ten_classes():
    start = time.perf_counter()
    for split, n in (("train", 2250), ("test", 250)):
        shd = SHDFile(FSDD_SHD / f"shd_{split}.h5")
        assert len(shd) == n and shd.split == split and shd.n_classes == 10
        assert shd.keys[:2] == ["zero", "one"] and np.bincount(shd.labels).tolist() == [n // 10] * 10
        events, label = shd[n - 1]
        assert events["t"].max() < 1.4 and 0 <= label < 10
    assert time.perf_counter() - start < 20.0


def rewrite(path: Path, key: str, values) -> None:
    """Replace the dataset ``key`` of the SHD file at ``path`` by ``values``."""
    with h5py.File(path, "r+") as handle:
        del handle[key]
        handle[key] = values


def test_float_labels_are_refused_not_truncated(tmp_path):
    write_fixture(tmp_path / "s.h5")
    rewrite(tmp_path / "s.h5", "labels", np.array([0, 1, 2, 0, 1.5, 2]))
    with pytest.raises(EventFormatError, match=r"s\.h5: labels holds float64 values, expected integers"):
        SHDFile(tmp_path / "s.h5")


def test_negative_label_names_the_sample(tmp_path):
    write_fixture(tmp_path / "s.h5")
    rewrite(tmp_path / "s.h5", "labels", np.array([0, 1, 2, 0, -1, 2], dtype=np.int16))
    with pytest.raises(EventFormatError, match=r"s\.h5: label \(extra/keys has 3 classes\) -1 at sample 4 is outside"):
        SHDFile(tmp_path / "s.h5")


@pytest.mark.parametrize("bad", [np.nan, -0.25, np.inf])
def test_times_that_are_not_finite_and_non_negative_name_the_sample_and_spike(tmp_path, bad):
    samples = [random_shd(np.random.default_rng(i)) for i in range(3)]
    samples[1]["t"][5] = bad
    write_shd_h5(tmp_path / "s.h5", samples, [0, 1, 2], [0, 0, 0], KEYS)
    with pytest.raises(EventFormatError, match=r"s\.h5: sample 1: time \S+ at spike 5 is not finite and >= 0 s"):
        SHDFile(tmp_path / "s.h5")


def test_negative_units_are_refused(tmp_path):
    write_fixture(tmp_path / "s.h5", 1)
    with h5py.File(tmp_path / "s.h5", "r+") as handle:
        del handle["spikes/units"]
        units = handle.create_dataset("spikes/units", (1,), dtype=h5py.vlen_dtype(np.int16))
        units[0] = -np.arange(20, dtype=np.int16)
    with pytest.raises(EventFormatError, match=r"s\.h5: sample 0: unit -1 at spike 1 is outside 0\.\.699"):
        SHDFile(tmp_path / "s.h5")


@pytest.mark.parametrize(
    "key, values, problem",
    [
        ("spikes/times", np.zeros(6), r"spikes/times has dtype float64, expected variable-length arrays"),
        ("extra/speaker", np.zeros((6, 2), dtype=np.uint16), r"extra/speaker is not a one-dimensional dataset"),
        ("labels", np.array([b"a"] * 6), r"labels holds \|S1 values, expected integers"),
    ],
)
def test_columns_of_the_wrong_kind_are_refused(tmp_path, key, values, problem):
    write_fixture(tmp_path / "s.h5")
    rewrite(tmp_path / "s.h5", key, values)
    with pytest.raises(EventFormatError, match=rf"s\.h5: {problem}"):
        SHDFile(tmp_path / "s.h5")
