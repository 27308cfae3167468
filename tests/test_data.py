"""The embedded synthetic tasks: deterministic, balanced, shaped as documented."""

from __future__ import annotations

import pytest
import torch

from spiking_maelstrom import load_task
from spiking_maelstrom.data import validation_split
from spiking_maelstrom.data.synthetic import memory_mask


def test_randman_is_deterministic_and_splits_differ():
    a = load_task("randman", n_channels=30, noise_channels=0, train_per_class=4, test_per_class=2)
    b = load_task("randman", n_channels=30, noise_channels=0, train_per_class=4, test_per_class=2)
    assert torch.equal(a.train.spikes, b.train.spikes) and torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.train.spikes[:20], a.test.spikes)
    other = load_task("randman", n_channels=30, noise_channels=0, train_per_class=4, test_per_class=2, seed=1)
    assert not torch.equal(a.train.spikes, other.train.spikes)


def test_randman_pattern_channels_fire_once_and_labels_are_balanced():
    task = load_task("randman", n_channels=30, noise_channels=10, noise_rate=0.2, train_per_class=5)
    spikes = task.train.spikes
    assert spikes.shape == (50, 100, 40)
    assert (spikes[:, :, :30].sum(1) == 1).all()
    assert spikes[:, :, 30:].float().mean().item() == pytest.approx(0.2, abs=0.03)
    assert torch.bincount(task.train.labels).tolist() == [5] * 10
    assert task.input_shape == (40,) and task.mask.all()


def test_memory_task_layout():
    task = load_task(
        "randman-memory",
        n_channels=20,
        pattern_steps=10,
        delay_steps=15,
        noise_rate=0.0,
        train_per_class=3,
        test_per_class=1,
    )
    spikes = task.train.spikes
    assert spikes.shape == (30, 35, 20)
    assert not spikes[:, 10:25].any()  # silent delay without noise
    assert (spikes[:, :10].sum(1) == 1).all() and (spikes[:, 25:].sum(1) == 1).all()
    assert torch.equal(task.mask, memory_mask(10, 15)) and task.mask[25:].all() and not task.mask[:25].any()


def test_bad_task_options_are_named():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_task("mnist")
    with pytest.raises(ValueError, match="unknown option.*colour"):
        load_task("randman", colour=3)


def test_validation_split_is_disjoint_and_seeded():
    task = load_task("randman", n_channels=10, noise_channels=0, train_per_class=10, test_per_class=1)
    train, val = validation_split(task.train, 0.2, seed=0)
    assert len(val) == 20 and len(train) == 80
    assert not set(train.indices) & set(val.indices)
    assert validation_split(task.train, 0.2, seed=0)[1].indices == val.indices
