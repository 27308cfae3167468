"""End-to-end claims, at reduced size (seconds each on 2 CPU cores): the encoder rules beat a
frozen encoder where the encoder matters, and the memory task needs the maelstrom's recurrence."""

from __future__ import annotations

import pytest

from spiking_maelstrom import MaelstromConfig, NetworkConfig, TrainConfig, Trainer, build_network, load_task

SMALL_RANDMAN = dict(train_per_class=60, test_per_class=20, n_steps=60)


def _accuracy(task, rule, seed=0, epochs=3, n_neurons=200, **network):
    maelstrom = MaelstromConfig(n_neurons=n_neurons, seed=seed, recurrent=network.pop("recurrent", True))
    config = NetworkConfig(
        input_shape=task.input_shape, n_classes=task.n_classes, maelstrom=maelstrom, seed=seed, **network
    )
    trainer = Trainer(build_network(config), task, TrainConfig(epochs=epochs, encoder_rule=rule, seed=seed))
    trainer.fit()
    return trainer.evaluate(task.test)["accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_dfa_and_local_beat_a_frozen_encoder_on_the_default_task(seed):
    task = load_task("randman", **SMALL_RANDMAN)
    frozen = _accuracy(task, "frozen", seed)
    dfa = _accuracy(task, "dfa", seed)
    local = _accuracy(task, "local", seed)
    assert dfa > frozen + 0.08, (frozen, dfa)
    assert local > frozen + 0.3, (frozen, local)


@pytest.mark.slow
def test_memory_task_needs_recurrence():
    task = load_task("randman-memory", train_per_class=40, test_per_class=20)
    kwargs = dict(readout="ridge", feedback=False, n_neurons=500)
    with_recurrence = _accuracy(task, "frozen", **kwargs)
    without = _accuracy(task, "frozen", recurrent=False, **kwargs)
    assert with_recurrence > without + 0.15, (with_recurrence, without)
    assert with_recurrence > 0.35
