"""The HDF5 frame cache: miss, hit, new key on a new configuration, rebuild of broken files, atomic writes."""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from spiking_maelstrom.data import cache
from spiking_maelstrom.data.cache import CachedFrames, checksum, ensure_cache
from spiking_maelstrom.data.nmnist import NMNISTFiles, write_nmnist_bin
from spiking_maelstrom.data.shd import SHDFile
from spiking_maelstrom.data.task import Augmented
from spiking_maelstrom.data.transforms import ChannelShift, Compose, Downsample, TimeJitter, ToFrames, Transform

from .test_nmnist import NMNIST_SMALL, random_nmnist, write_tree, zip_tree
from .test_shd import write_fixture

FRAMES = ToFrames(dt=10_000, n_steps=30, sensor_size=(2, 34, 34))


@dataclass(frozen=True)
class Exploding(Transform):
    """Fails on the sample whose first event is at ``t0``, as an interrupted build would."""

    t0: int

    def __call__(self, events: np.ndarray) -> np.ndarray:
        if events["t"][0] == self.t0:
            raise RuntimeError("interrupted")
        return FRAMES(events)


@dataclass(frozen=True)
class Constant(Transform):
    value: float

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return np.full((2, 3), self.value, dtype=np.float32)


@pytest.fixture
def source(tmp_path):
    write_tree(tmp_path / "data")
    return NMNISTFiles(tmp_path / "data", "train")


def cache_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_miss_builds_then_hit_reads(tmp_path, source):
    first = CachedFrames(source, FRAMES, tmp_path / "cache")
    assert first.built and first.path.parent == tmp_path / "cache"
    assert cache_files(tmp_path / "cache") == [first.path.name]
    assert first.path.name.startswith("nmnist-train-") and len(first.path.stem.split("-")[-1]) == 16
    assert len(first) == 6 and first.sample_shape == (30, 2, 34, 34)
    for index in range(len(source)):
        frames, label = first[index]
        events, expected_label = source[index]
        assert frames.dtype == torch.float32 and label == expected_label
        assert np.array_equal(frames.numpy(), FRAMES(events))
    mtime = first.path.stat().st_mtime_ns
    second = CachedFrames(source, FRAMES, tmp_path / "cache")
    assert not second.built and second.path == first.path and first.path.stat().st_mtime_ns == mtime
    assert torch.equal(second[3][0], first[3][0])


def test_new_configuration_or_changed_data_makes_a_new_file(tmp_path, source):
    cache = tmp_path / "cache"
    a, _ = ensure_cache(cache, source, FRAMES)
    b, built = ensure_cache(cache, source, Compose([Downsample(2), ToFrames(10_000, 30, (2, 17, 17))]))
    assert built and b != a
    write_nmnist_bin(source.files[0], random_nmnist(np.random.default_rng(9), 61))
    c, built = ensure_cache(cache, NMNISTFiles(source.root, "train"), FRAMES)
    assert built and c not in (a, b)
    assert len(cache_files(cache)) == 3


def test_zip_and_shd_sources_are_cached(tmp_path):
    samples = write_tree(tmp_path / "folder")
    (tmp_path / "packed").mkdir()
    zip_tree(tmp_path / "packed", samples)
    folder = CachedFrames(NMNISTFiles(tmp_path / "folder", "train"), FRAMES, tmp_path / "cache")
    packed = CachedFrames(NMNISTFiles(tmp_path / "packed", "train"), FRAMES, tmp_path / "cache")
    assert packed.path != folder.path and torch.equal(packed[5][0], folder[5][0])
    write_fixture(tmp_path / "shd_test.h5.gz")
    shd = CachedFrames(SHDFile(tmp_path / "shd_test.h5.gz"), ToFrames(0.01, 140, (700,)), tmp_path)
    assert shd.path.name.startswith("shd-test-") and shd[0][0].shape == (140, 700) and shd[0][0].sum() == 20


def break_truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def break_flag(path):
    with h5py.File(path, "r+") as handle:
        del handle.attrs["complete"]


def break_shape(path):
    with h5py.File(path, "r+") as handle:
        handle.attrs["sample_shape"] = (29, 2, 34, 34)


def break_offsets(path):
    with h5py.File(path, "r+") as handle:
        del handle["frames/offset"]
        handle["frames/offset"] = np.zeros(6, dtype=np.int64)


def break_count(path):
    with h5py.File(path, "r+") as handle:
        handle["frames/count"][7] += 1


def break_index_and_checksum(path, value=30 * 2 * 34 * 34, key="frames/index"):
    """An out-of-range bin (or, with ``key``, a zero count) whose tamperer also fixed the checksum."""
    with h5py.File(path, "r+") as handle:
        handle[key][3] = value
        handle.attrs["sha256"] = checksum(handle)


def break_count_and_checksum(path):
    break_index_and_checksum(path, 0, "frames/count")


def break_kind(path):  # a name that is no dataset
    with h5py.File(path, "r+") as handle:
        del handle["frames/index"]
        handle["frames/index"] = np.dtype("f4")


def drop_checksum(path):  # as a cache built before checksums were stored
    with h5py.File(path, "r+") as handle:
        del handle.attrs["sha256"]


@pytest.mark.parametrize(
    "damage, reason",
    [
        (break_truncate, "unreadable"),
        (break_flag, "incomplete"),
        (break_kind, r"unreadable \(AttributeError: "),
        (break_shape, r"samples have shape \(29, 2, 34, 34\), expected \(30, 2, 34, 34\)"),
        (break_offsets, "frames/offset does not index 6 samples"),
        (break_count, "its checksum does not match its contents"),
        (drop_checksum, r"its checksum does not match its contents \(damaged, or built by an older version\)"),
        (break_index_and_checksum, "frames/index holds bin 69360, beyond the 69360 bins of a sample"),
        (break_count_and_checksum, r"frames/count holds a count of 0"),
    ],
)
def test_broken_cache_is_reported_and_rebuilt(tmp_path, source, damage, reason):
    good = CachedFrames(source, FRAMES, tmp_path / "cache")
    expected = good[2][0]
    good.close()
    damage(good.path)
    with pytest.warns(UserWarning, match=rf"{good.path.name}: cache is unusable, {reason}.*rebuilding"):
        rebuilt = CachedFrames(source, FRAMES, tmp_path / "cache")
    assert rebuilt.built and rebuilt.path == good.path and torch.equal(rebuilt[2][0], expected)
    assert cache_files(tmp_path / "cache") == [good.path.name]


def test_interrupted_build_leaves_nothing_behind(tmp_path, source):
    (tmp_path / "cache").mkdir()
    with pytest.raises(RuntimeError, match="interrupted"):
        CachedFrames(source, Exploding(t0=int(source[3][0]["t"][0])), tmp_path / "cache")
    assert cache_files(tmp_path / "cache") == []


def test_stale_temporary_files_of_killed_builds_are_removed_and_live_ones_kept(tmp_path, source):
    folder = tmp_path / "cache"
    folder.mkdir()
    stale, live = folder / ".nmnist-train-0123456789abcdef.h5.k1ll3d.tmp", folder / ".nmnist-train-x.h5.l1ve.tmp"
    other = folder / ".shd-train-0123456789abcdef.h5.k1ll3d.tmp"  # another data set's: not this build's to judge
    for path in (stale, live, other):
        path.write_bytes(b"half a cache")
    old = time.time() - cache.STALE_SECONDS - 5
    for path in (stale, other):
        os.utime(path, (old, old))
    built = CachedFrames(source, FRAMES, folder)
    assert cache_files(folder) == sorted([built.path.name, live.name, other.name])


SEEN_MTIMES: list[float] = []


@dataclass(frozen=True)
class Aging(Transform):
    """Frames, after noting the modification times of the temporary files in ``folder`` (into
    ``SEEN_MTIMES``) and making them look stale, as a slow build's would."""

    folder: str

    def __call__(self, events: np.ndarray) -> np.ndarray:
        for path in Path(self.folder).glob(".*.tmp"):
            SEEN_MTIMES.append(path.stat().st_mtime)
            os.utime(path, (0, 0))
        return FRAMES(events)


def test_a_live_build_keeps_its_temporary_file_fresh(tmp_path, source, monkeypatch):
    monkeypatch.setattr(cache, "HEARTBEAT_SECONDS", 0.0)
    SEEN_MTIMES.clear()
    CachedFrames(source, Aging(str(tmp_path)), tmp_path)
    assert len(SEEN_MTIMES) == len(source) - 1 and min(SEEN_MTIMES[1:]) > time.time() - 60


def test_counts_beyond_uint16_are_refused(tmp_path, source):
    with pytest.raises(ValueError, match=r"nmnist train sample 0: the cache stores event counts 0\.\.65535"):
        ensure_cache(tmp_path, source, Constant(70_000.0))
    assert CachedFrames(source, Constant(65_535.0), tmp_path)[0][0].max() == 65_535


def test_augmentation_runs_after_the_cache_and_is_never_cached(tmp_path, source):
    plain = CachedFrames(source, FRAMES, tmp_path)
    augmented = Augmented(CachedFrames(source, FRAMES, tmp_path), TimeJitter(std=1.0, seed=0))
    assert not augmented.dataset.built
    frames, _ = augmented[0]
    assert isinstance(frames, torch.Tensor) and plain[0][0].sum() - 3 <= frames.sum() <= plain[0][0].sum()
    assert not torch.equal(frames, plain[0][0])
    copy = pickle.loads(pickle.dumps(plain))  # as DataLoader workers receive it
    assert copy._handle is None and torch.equal(copy[1][0], plain[1][0])
    with pytest.raises(ValueError, match="is random"):
        CachedFrames(source, Compose([FRAMES, ChannelShift(2)]), tmp_path)


@pytest.mark.skipif(not NMNIST_SMALL.is_dir(), reason=f"real N-MNIST subset not found at {NMNIST_SMALL}")
def test_real_nmnist_test_split_round_trips_through_the_cache(tmp_path):
    files = NMNISTFiles(NMNIST_SMALL, "test")
    cached = CachedFrames(files, FRAMES, tmp_path)
    again = CachedFrames(files, FRAMES, tmp_path)
    assert cached.built and not again.built and len(again) == 100
    assert torch.equal(again[99][0], torch.from_numpy(FRAMES(files[99][0])))
    assert os.listdir(tmp_path) == [cached.path.name]
