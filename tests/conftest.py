"""Shared fixtures: tiny tasks and networks that train in seconds on a laptop CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spiking_maelstrom import MaelstromConfig, NetworkConfig, build_network, load_task

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY_RANDMAN = dict(n_channels=40, noise_channels=20, n_steps=30, train_per_class=6, test_per_class=3)


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture
def tiny_task():
    return load_task("randman", **TINY_RANDMAN)


def tiny_network(task, rule_feedback: bool = True, n_neurons: int = 60, seed: int = 0, **kwargs):
    config = NetworkConfig(
        input_shape=task.input_shape,
        n_classes=task.n_classes,
        maelstrom=MaelstromConfig(n_neurons=n_neurons, seed=seed),
        feedback=rule_feedback,
        seed=seed,
        **kwargs,
    )
    return build_network(config)
