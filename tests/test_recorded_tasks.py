"""N-MNIST and SHD as tasks: fixture files in the native formats through the CLI, and the real
recordings beside the project (skipped when ../shared/data is absent)."""

from __future__ import annotations

import json

import h5py
import nir
import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from spiking_maelstrom import load_task, network_config_for
from spiking_maelstrom.checkpoint import load_checkpoint
from spiking_maelstrom.cli import main
from spiking_maelstrom.data.events import EventFormatError, nmnist_events, shd_events
from spiking_maelstrom.data.nmnist import write_nmnist_bin
from spiking_maelstrom.data.shd import write_shd_h5
from spiking_maelstrom.data.task import augmented
from spiking_maelstrom.data.transforms import BandBalance, Blend, ChannelShift

from .conftest import SHARED_DATA


def _nmnist_fixture(root, per_class=2):
    rng = np.random.default_rng(0)
    for folder in ("Train", "Test"):
        for label in range(10):
            for n in range(per_class):
                count = 200
                t = np.sort(rng.integers(0, 40_000, count))
                events = nmnist_events(
                    rng.integers(0, 34, count), rng.integers(0, 34, count), rng.integers(0, 2, count), t
                )
                write_nmnist_bin(root / folder / str(label) / f"{n:05d}.bin", events)
    return root


def _shd_fixture(root, n_classes=4, per_class=3, speakers=1):
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        samples = [
            shd_events(np.sort(rng.uniform(0, 0.2, 300)), rng.integers(0, 700, 300))
            for _ in range(n_classes * per_class)
        ]
        labels = [i % n_classes for i in range(len(samples))]
        voices = [(i // n_classes) % speakers for i in range(len(samples))]
        write_shd_h5(root / f"shd_{split}.h5", samples, labels, voices, [f"w{i}" for i in range(n_classes)])
    return root


@pytest.mark.parametrize("folder", ["Test/11", "Train/12"])
def test_nmnist_label_folder_beyond_the_digits_is_refused_when_the_task_loads(tmp_path, folder):
    data = _nmnist_fixture(tmp_path / "nmnist", per_class=1)
    (data / folder).mkdir()
    (data / "Test" / "3" / "00000.bin").rename(data / folder / "00000.bin")
    with pytest.raises(EventFormatError, match=rf"{folder}: label \d+ is outside 0\.\.9"):
        load_task("nmnist", data, n_steps=8, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # refused before any frame was binned


def test_shd_splits_with_different_class_counts_are_refused_when_the_task_loads(tmp_path):
    data = _shd_fixture(tmp_path / "shd")
    samples = [shd_events(np.array([0.1]), np.array([3]))]
    write_shd_h5(data / "shd_test.h5", samples, [4], [0], [f"w{i}" for i in range(5)])  # a label train lacks
    with pytest.raises(EventFormatError, match=r"shd_test\.h5: 5 classes \(extra/keys\) but .*shd_train\.h5 has 4"):
        load_task("shd", data, n_steps=20, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def _train_nmnist(data, run, cache, *extra):
    args = ["train", "--dataset", "nmnist", "--data-dir", str(data), "--task-option", f'cache_dir="{cache}"']
    args += [*extra, "--epochs", "1", "--neurons", "40", "--out", str(run), "--quiet", "--device", "cpu"]
    return main(args)


def test_nmnist_fixture_trains_through_the_cli(tmp_path):
    data = _nmnist_fixture(tmp_path / "nmnist")
    run = tmp_path / "run"
    assert _train_nmnist(data, run, tmp_path / "cache", "--task-option", "n_steps=8", "--encoder-rule", "local") == 0
    config = load_checkpoint(run / "checkpoint.pt")["network_config"]
    assert config["encoder"] == "conv" and tuple(config["input_shape"]) == (2, 34, 34)
    assert config["maelstrom"]["dt"] == pytest.approx(5e-3)
    assert json.loads((run / "metrics.json").read_text())["test_samples"] == 20
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0

    # An ensemble needs the same test inputs; training-only augmentation may differ.
    shifted, longer = tmp_path / "shifted", tmp_path / "longer"
    shift = ("--task-option", "n_steps=8", "--task-option", "shift=1")
    assert _train_nmnist(data, shifted, tmp_path / "cache", *shift) == 0
    assert main(["evaluate", str(run), str(shifted), "--device", "cpu"]) == 0
    assert _train_nmnist(data, longer, tmp_path / "cache", "--task-option", "n_steps=9") == 0
    assert main(["evaluate", str(run), str(longer), "--device", "cpu"]) == 2


def test_shd_class_count_comes_from_the_file_and_time_constants_scale_with_dt(tmp_path):
    data = _shd_fixture(tmp_path / "shd")
    task = load_task("shd", data, n_steps=20, dt_ms=10.0, cache_dir=tmp_path / "cache")
    assert task.n_classes == 4 and task.input_shape == (700,) and task.mask.shape == (20,)
    config = network_config_for(task)
    assert config.maelstrom.dt == pytest.approx(0.01)
    assert config.maelstrom.tau_syn[0] == pytest.approx(0.03) and config.trace_tau == pytest.approx(0.5)
    assert config.encoder_hidden == (128,)


def test_shd_spectral_tilt_option_augments_training_frames_only(tmp_path):
    data = _shd_fixture(tmp_path / "shd")
    task = load_task("shd", data, n_steps=20, tilt=2.0, cache_dir=tmp_path / "cache")
    assert task.options["tilt"] == 2.0 and "SpectralTilt" in repr(task.augment)
    frames, _ = task.train[0]
    assert float(task.augment(frames).sum()) < float(frames.sum())
    assert load_task("shd", data, n_steps=20, cache_dir=tmp_path / "cache").augment is None
    with pytest.raises(ValueError, match="tilt=-1"):
        load_task("shd", data, n_steps=20, tilt=-1, cache_dir=tmp_path / "cache")


def test_shd_mask_option_silences_a_band_of_training_frames_only(tmp_path):
    data = _shd_fixture(tmp_path / "shd")
    task = load_task("shd", data, n_steps=20, mask=700, cache_dir=tmp_path / "cache")
    assert task.options["mask"] == 700 and "ChannelMask" in repr(task.augment)
    frames, _ = task.train[0]
    assert any(float(task.augment(frames).sum()) < float(frames.sum()) for _ in range(5))
    with pytest.raises(ValueError, match="mask=-3"):
        load_task("shd", data, n_steps=20, mask=-3, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("name", ["shd", "nmnist"])
def test_stretch_option_stretches_training_frames_in_time(tmp_path, name):
    data = _shd_fixture(tmp_path / "shd") if name == "shd" else _nmnist_fixture(tmp_path / "nmnist")
    task = load_task(name, data, n_steps=20, stretch=0.5, cache_dir=tmp_path / "cache")
    assert task.options["stretch"] == 0.5 and "TimeStretch" in repr(task.augment)
    frames, _ = task.train[0]
    assert any(not torch.equal(task.augment(frames), frames) for _ in range(5))
    with pytest.raises(ValueError, match="stretch=-1"):
        load_task(name, data, n_steps=20, stretch=-1, cache_dir=tmp_path / "cache")


def test_shd_blend_option_blends_training_samples_with_partners_from_the_training_part_only(tmp_path):
    data = _shd_fixture(tmp_path / "shd", speakers=3)  # 4 classes x 3 speakers
    task = load_task("shd", data, n_steps=20, blend=1.0, balance=2, cache_dir=tmp_path / "cache")
    assert task.options["blend"] == 1.0 and task.blend == Blend(1.0, seed=5) and "blend" in task.training_only
    assert task.augment is None and task.random_transforms() == [task.blend]
    part = [0, 1, 2, 3, 4, 5, 8]  # class 0: samples 0, 4, 8; class 1: 1, 5; classes 2 and 3: 2 and 3 alone
    train = augmented(Subset(task.train, part), task.augment, task.blend)
    blender = train.dataset.dataset  # Subset -> Normalized (the balance, after the blend) -> Augmented
    assert blender.pool.tolist() == part and blender.partner_groups.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    nested = augmented(Subset(Subset(task.train, part), [1, 4, 6]), task.augment, task.blend)
    assert nested.dataset.dataset.dataset.pool.tolist() == [1, 4, 8]
    for k, index in enumerate(part):
        frames, label = train[k]
        recorded, recorded_label = task.train[index]
        assert label == recorded_label
        # classes 2 and 3 have no partner in this part: kept as recorded (then balanced, like test data)
        assert torch.equal(frames, recorded) == (label in (2, 3)), index
    assert load_task("shd", data, n_steps=20, cache_dir=tmp_path / "cache").blend is None
    with pytest.raises(ValueError, match=r"Blend needs a probability in \[0, 1\], got 2"):
        load_task("shd", data, n_steps=20, blend=2, cache_dir=tmp_path / "cache")


def test_shd_balance_option_is_a_front_end_on_every_split_after_augmentation(tmp_path):
    data = _shd_fixture(tmp_path / "shd")
    plain = load_task("shd", data, n_steps=20, cache_dir=tmp_path / "cache")
    options = dict(n_steps=20, balance=4, balance_ms=50, shift=2, cache_dir=tmp_path / "cache")
    task = load_task("shd", data, **options)
    assert task.options["balance"] == 4 and task.options["balance_ms"] == 50
    front_end = BandBalance(4, tau=5.0)  # 50 ms at 10 ms steps
    for split in ("train", "test"):
        frames, label = getattr(task, split)[1]
        expected, same_label = getattr(plain, split)[1]
        assert label == same_label and torch.allclose(frames, torch.as_tensor(front_end(expected)))
    assert task.train.groups["speaker"].tolist() == plain.train.groups["speaker"].tolist()
    # The trainer's augmented training part shifts the counts first, then balances them.
    shifted = augmented(Subset(task.train, [1]), ChannelShift(2, seed=5))[0][0]
    expected = front_end(ChannelShift(2, seed=5)(plain.train[1][0]))
    assert torch.allclose(shifted, torch.as_tensor(expected))
    with pytest.raises(ValueError, match="balance >= 0 bands and balance_ms > 0"):
        load_task("shd", data, n_steps=20, balance=-1, cache_dir=tmp_path / "cache")


def test_a_run_with_a_front_end_exports_what_its_input_must_go_through(tmp_path, capsys):
    data, run = _shd_fixture(tmp_path / "shd"), tmp_path / "run"
    args = ["train", "--dataset", "shd", "--data-dir", str(data), "--task-option", "n_steps=20"]
    args += ["--task-option", "balance=4", "--task-option", f'cache_dir="{tmp_path / "cache"}"', "--neurons", "30"]
    args += ["--encoder", "linear", "--no-feedback", "--readout", "ridge", "--encoder-rule", "frozen"]
    args += ["--tau-mem", "0.2", "0.2", "--tau-syn", "0.05", "0.05"]  # one decay each, as Loihi 2 needs
    assert main([*args, "--features", "trace", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--format", "nir", "-o", str(tmp_path / "f.nir")]) == 0
    expected = {"name": "BandBalance", "bands": 4, "tau": 20.0, "floor": 0.1}  # 200 ms at 10 ms steps
    assert json.loads(capsys.readouterr().out)["host_front_end"] == expected
    assert json.loads(str(nir.read(tmp_path / "f.nir").metadata["host_front_end"])) == expected
    assert main(["export", str(run), "--format", "netx", "--target", "loihi2", "-o", str(tmp_path / "f.h5")]) == 0
    assert json.loads(capsys.readouterr().out)["host_front_end"] == expected
    with h5py.File(tmp_path / "f.h5") as f:
        assert json.loads(f.attrs["host_front_end"]) == expected


def test_missing_recorded_data_says_where_it_should_be(tmp_path, capsys):
    assert (
        main(["train", "--dataset", "shd", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    )
    err = capsys.readouterr().err
    assert "shd_train.h5" in err and str(tmp_path) in err and err.count("\n") == 1


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real recordings not found at {SHARED_DATA}")
def test_real_recordings_load_as_tasks(tmp_path):
    nmnist = load_task("nmnist", SHARED_DATA / "nmnist-small", cache_dir=tmp_path)
    assert (len(nmnist.train), len(nmnist.test)) == (1000, 100) and nmnist.input_shape == (2, 34, 34)
    frames, label = nmnist.test[0]
    assert frames.shape == (64, 2, 34, 34) and frames.sum() > 500 and 0 <= label < 10
    shd = load_task("shd", SHARED_DATA / "fsdd-shd", cache_dir=tmp_path)
    assert (len(shd.train), len(shd.test), shd.n_classes) == (2250, 250, 10)
