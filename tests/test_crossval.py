"""Cross-validation folds (plain and grouped), the input-alone baselines, training augmentation,
the current penalty, and their command-line use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spiking_maelstrom import TrainConfig, Trainer
from spiking_maelstrom.baselines import InputBaselineConfig, input_baseline_accuracy, input_trace, stretched_bins
from spiking_maelstrom.cli import main
from spiking_maelstrom.crossval import cross_validate, dataset_groups, fold_indices
from spiking_maelstrom.data import load_task
from spiking_maelstrom.learning import make_rule, train_batch

from .conftest import tiny_network
from .test_cli import TINY
from .test_shd import write_fixture


def test_folds_partition_the_samples():
    splits = fold_indices(23, 5, seed=1)
    held = [i for _, h in splits for i in h]
    assert sorted(held) == list(range(23)) and {len(h) for _, h in splits} == {4, 5}
    for train, held_out in splits:
        assert sorted(train + held_out) == list(range(23))
    assert splits == fold_indices(23, 5, seed=1) and splits != fold_indices(23, 5, seed=2)


def test_grouped_folds_never_train_on_a_held_out_group():
    groups = np.repeat(np.arange(6), 4)
    splits = fold_indices(len(groups), 3, seed=0, groups=groups)
    assert sorted(i for _, h in splits for i in h) == list(range(24))
    for train, held_out in splits:
        assert not set(groups[train]) & set(groups[held_out]) and len(set(groups[held_out])) == 2


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: fold_indices(10, 1), "at least 2 folds"),
        (lambda: fold_indices(3, 5), "at least 5 samples"),
        (lambda: fold_indices(8, 5, groups=np.arange(8) % 2), "at least 5 groups to hold out, got 2"),
    ],
)
def test_impossible_folds_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_speakers_are_the_groups_of_an_shd_task(tmp_path, capsys):
    write_fixture(tmp_path / "shd_train.h5", n_samples=10)
    write_fixture(tmp_path / "shd_test.h5", n_samples=4)
    task = load_task("shd", tmp_path, cache_dir=tmp_path / "cache", n_steps=20)
    assert dataset_groups(task.train, "speaker").tolist() == [i // 2 for i in range(10)]
    result = cross_validate(task, lambda fold: len(fold.test) / len(fold.train), folds=5, group_by="speaker")
    assert sorted(h[0] for h in result["held_out"]) == ["0", "1", "2", "3", "4"]
    assert result["accuracy"] == [2 / 8] * 5
    lines = capsys.readouterr().out.splitlines()  # each fold's result as it ends
    assert [line.split(" (")[0] for line in lines] == [f"fold {k}/5" for k in range(1, 6)]
    assert all("(held out: speaker " in line and line.endswith("accuracy 0.2500") for line in lines)
    with pytest.raises(ValueError, match="no 'speaker' groups to hold out \\(it has: none\\)"):
        dataset_groups(load_task("randman", train_per_class=2, test_per_class=1).train, "speaker")


def test_input_trace_is_a_leaky_sum():
    x = torch.zeros(1, 4, 2)
    x[0, 0, 0] = 1.0
    x[0, 2, 1] = 2.0
    trace = input_trace(x, 0.5)
    assert trace[0, :, 0].tolist() == [1.0, 0.5, 0.25, 0.125] and trace[0, :, 1].tolist() == [0.0, 0.0, 2.0, 1.0]


def test_stretched_bins_follow_each_sample_span():
    x = torch.zeros(2, 8, 1)
    x[0, [2, 3, 4, 5], 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # span 2..5: two bins of two steps
    x[1, [0, 7], 0] = 1.0  # span 0..7
    assert stretched_bins(x, 2).tolist() == [[3.0, 7.0], [1.0, 1.0]]


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_input_baselines_learn_an_easy_task(mode):
    task = load_task("randman", n_channels=30, noise_channels=0, train_per_class=10, test_per_class=4)
    assert input_baseline_accuracy(task, InputBaselineConfig(mode=mode, tau=0.02)) > 0.5


def test_augmentation_touches_training_samples_only():
    task = load_task("randman", n_channels=20, noise_channels=0, train_per_class=4, test_per_class=1)
    task.augment = lambda frames: frames + 100.0
    trainer = Trainer(tiny_network(task), task, TrainConfig(epochs=0, val_fraction=0.25))
    assert trainer.train_set[0][0].min() >= 100.0
    assert trainer.val_set[0][0].max() <= 1.0


def test_current_penalty_keeps_a_trained_encoder_quiet(tiny_task):
    sizes = []
    for penalty in (0.0, 10.0):
        network = tiny_network(tiny_task, rule_feedback=False)
        rule = make_rule("local", tiny_task.n_classes, network.maelstrom.n_neurons)
        optimizer = torch.optim.Adam(network.encoder.parameters(), lr=1e-2)
        x = torch.stack([tiny_task.train[i][0] for i in range(16)])
        y = torch.tensor([tiny_task.train[i][1] for i in range(16)])
        for _ in range(10):
            train_batch(network, rule, optimizer, x, y, tiny_task.mask, current_penalty=penalty)
        with torch.no_grad():
            sizes.append(float(network.encoder(x.flatten(0, 1)).pow(2).mean()))
    assert sizes[1] < 0.5 * sizes[0]


def test_cli_cross_validates_a_training_run_and_a_baseline(tmp_path):
    run = tmp_path / "run"
    common = [*TINY, "--folds", "2", "--quiet"]
    assert main(["train", *common, "--epochs", "1", "--neurons", "40", "--out", str(run), "--device", "cpu"]) == 0
    cv = json.loads((run / "metrics.json").read_text())["cv"]
    assert cv["folds"] == 2 and len(cv["accuracy"]) == 2 and cv["held_out"] == [25, 25]
    assert main(["baseline", "--dataset", "randman", *common, "--mode", "offline", "--out", str(tmp_path / "b")]) == 0
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["baseline"] == "input alone (offline)" and len(metrics["cv"]["accuracy"]) == 2
    assert main(["baseline", "--dataset", "randman", *TINY, "--group-by", "speaker", "--out", str(tmp_path)]) == 2
