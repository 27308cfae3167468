"""Trainer: determinism, checkpoints (atomic, complete), resume, ridge baseline."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from spiking_maelstrom import TrainConfig, Trainer, load_network
from spiking_maelstrom import trainer as trainer_module
from spiking_maelstrom.checkpoint import load_checkpoint, save_checkpoint
from spiking_maelstrom.data.transforms import Blend, ChannelShift, Compose, TimeJitter
from spiking_maelstrom.evaluation import evaluate_network
from spiking_maelstrom.files import atomic_write

from .conftest import tiny_network


def _trainer(task, epochs=2, rule="dfa", seed=0, **net_kwargs):
    net = tiny_network(task, seed=seed, **net_kwargs)
    return Trainer(net, task, TrainConfig(epochs=epochs, batch_size=16, encoder_rule=rule, window=10, seed=seed))


def test_same_seed_same_metrics_on_cpu(tiny_task):
    a, b = _trainer(tiny_task), _trainer(tiny_task)
    a.fit(), b.fit()
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert a.evaluate(tiny_task.test) == b.evaluate(tiny_task.test)


def test_checkpoint_restores_the_whole_network_and_resume_continues(tiny_task, tmp_path):
    trainer = _trainer(tiny_task, epochs=1)
    trainer.fit(tmp_path / "ckpt.pt")
    restored = load_network(tmp_path / "ckpt.pt")
    for name, value in trainer.network.state_dict().items():
        assert torch.equal(value, restored.state_dict()[name]), name
    x = torch.stack([tiny_task.test[i][0] for i in range(4)])
    assert torch.equal(trainer.network(x).logits, restored(x).logits)

    resumed = Trainer.resume(tmp_path / "ckpt.pt", tiny_task, epochs=3)
    assert resumed.epoch == 1
    resumed.fit(tmp_path / "ckpt.pt")
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert torch.equal(resumed.network.maelstrom.weight, trainer.network.maelstrom.weight)
    assert not list(tmp_path.glob("*.tmp"))


def test_resumed_training_matches_uninterrupted_training(tiny_task, tmp_path):
    straight = _trainer(tiny_task, epochs=2)
    straight.fit()
    first = _trainer(tiny_task, epochs=1)
    first.fit(tmp_path / "c.pt")
    second = Trainer.resume(tmp_path / "c.pt", tiny_task, epochs=2)
    second.fit()
    for name, value in straight.network.state_dict().items():
        assert torch.allclose(value.float(), second.network.state_dict()[name].float(), atol=1e-6), name


def test_resumed_training_draws_the_augmentations_of_uninterrupted_training(tiny_task, tmp_path):
    """The augmentations' random streams (a blend's among them) are checkpointed: resumed with
    freshly made transforms (as in a new process), a run draws the augmentations, and so makes the
    updates, of the uninterrupted run; each stream goes on from where the checkpoint left it."""

    def augmented_task():
        augment = Compose((ChannelShift(2, seed=0), TimeJitter(1.0, seed=1)))
        return replace(tiny_task, augment=augment, blend=Blend(0.5, seed=4))

    straight = _trainer(augmented_task(), epochs=2)
    straight.fit()
    first = _trainer(augmented_task(), epochs=1)
    first.fit(tmp_path / "c.pt")
    task = augmented_task()
    second = Trainer.resume(tmp_path / "c.pt", task, epochs=2)
    saved = load_checkpoint(tmp_path / "c.pt")["augmentation"]
    assert len(saved) == 3 and [t.rng_state() for t in task.random_transforms()] == saved
    second.fit()
    assert second.history[-1]["train_loss"] == straight.history[-1]["train_loss"]
    for name, value in straight.network.state_dict().items():
        assert torch.equal(value, second.network.state_dict()[name]), name

    other = replace(tiny_task, augment=Compose((ChannelShift(2, seed=0),)))
    with pytest.raises(ValueError, match=r"c\.pt: the run was trained with 3 random augmentation\(s\), this task has"):
        Trainer.resume(tmp_path / "c.pt", other)


def test_cosine_schedule_runs_both_learning_rates_down_and_resumes_on_course(tiny_task, tmp_path, monkeypatch):
    seen = []
    real = trainer_module.train_batch

    def spy(network, rule, optimizer, *args):
        seen.extend(g["lr"] for g in optimizer.param_groups)
        return real(network, rule, optimizer, *args)

    monkeypatch.setattr(trainer_module, "train_batch", spy)
    config = TrainConfig(epochs=2, batch_size=16, lr=1e-2, encoder_lr=2e-3, window=10, lr_schedule="cosine")
    straight = Trainer(tiny_network(tiny_task), tiny_task, config)
    straight.fit()
    steps = len(seen) // 2
    factors = [0.5 * (1 + math.cos(math.pi * s / steps)) for s in range(steps)]
    assert seen == pytest.approx([base * f for f in factors for base in (1e-2, 2e-3)])

    seen.clear()
    first = Trainer(tiny_network(tiny_task), tiny_task, config)
    first.train_epoch()
    first.save(tmp_path / "c.pt")
    second = Trainer.resume(tmp_path / "c.pt", tiny_task)
    second.fit()
    assert seen == pytest.approx([base * f for f in factors for base in (1e-2, 2e-3)])
    for name, value in straight.network.state_dict().items():
        assert torch.allclose(value.float(), second.network.state_dict()[name].float(), atol=1e-6), name
    with pytest.raises(ValueError, match="unknown lr_schedule 'step'"):
        TrainConfig(lr_schedule="step")


def test_checkpoint_keeps_each_part_under_its_name_and_resumes_the_earlier_layout(tiny_task, tmp_path):
    config = TrainConfig(epochs=1, batch_size=16, window=10, encoder_rule="local", current_penalty=0.1)
    full = Trainer(tiny_network(tiny_task), tiny_task, replace(config, current_target=1.0, weight_average=0.9))
    assert list(full.parts) == ["rule", "augmentation", "optimizer", "homeostasis", "weight_average"]
    assert set(full.parts) <= set(full.state())
    plain = Trainer(tiny_network(tiny_task), tiny_task, config)
    plain.train_epoch()
    assert list(plain.parts) == ["rule", "augmentation", "optimizer"]
    # Checkpoints from before the parts held None for an absent homeostasis and weight average.
    save_checkpoint(tmp_path / "c.pt", {**plain.state(), "homeostasis": None, "weight_average": None})
    resumed = Trainer.resume(tmp_path / "c.pt", tiny_task)
    assert resumed.epoch == 1
    assert resumed.optimizer.state_dict()["state"][0]["step"] == plain.optimizer.state_dict()["state"][0]["step"]


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="broken.pt is not readable"):
        load_checkpoint(broken)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(ValueError, match="not a spiking-maelstrom checkpoint"):
        load_checkpoint(foreign)


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    with pytest.raises(OSError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise OSError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_ridge_readout_is_fitted_in_closed_form(tiny_task):
    trainer = _trainer(tiny_task, rule="frozen", rule_feedback=False, readout="ridge")
    trainer.fit()
    assert len(trainer.history) == 1 and bool(trainer.network.readout.fitted)
    assert trainer.history[0]["train_accuracy"] > 0.5
    with pytest.raises(ValueError, match="ridge"):
        _trainer(tiny_task, rule="dfa", rule_feedback=False, readout="ridge")


def test_ridge_initialised_linear_readout_reproduces_the_ridge_fit(tiny_task):
    ridge = _trainer(tiny_task, rule="frozen", rule_feedback=False, readout="ridge")
    ridge.fit()
    linear = _trainer(tiny_task, epochs=0, rule="frozen", rule_feedback=False)
    linear.config.readout_init = "ridge"
    linear.fit()
    x = torch.stack([tiny_task.test[i][0] for i in range(6)])
    assert torch.allclose(linear.network(x).logits, ridge.network(x).logits, atol=1e-4)
    with pytest.raises(ValueError, match="readout_init"):
        TrainConfig(readout_init="zeros")


def test_evaluation_gives_the_confusion_and_the_decision_at_every_step(tiny_task):
    trainer = _trainer(tiny_task, epochs=1)
    trainer.fit()
    result = trainer.evaluate(tiny_task.test)
    confusion = torch.tensor(result["confusion"])
    assert confusion.shape == (tiny_task.n_classes, tiny_task.n_classes)
    assert int(confusion.sum()) == result["samples"] == len(tiny_task.test)
    assert int(confusion.trace()) == round(result["accuracy"] * result["samples"])
    labels = torch.tensor([tiny_task.test[i][1] for i in range(len(tiny_task.test))])
    assert confusion.sum(1).tolist() == torch.bincount(labels, minlength=tiny_task.n_classes).tolist()
    over_time = result["accuracy_over_time"]
    assert len(over_time) == tiny_task.mask.shape[0] and over_time[-1] == result["accuracy"]

    late = torch.zeros_like(tiny_task.mask)
    late[5:] = True  # a readout window that opens at step 5: no decision before it
    masked = evaluate_network(trainer.network, tiny_task.test, late)
    assert masked["accuracy_over_time"][:5] == [None] * 5
    assert all(0.0 <= a <= 1.0 for a in masked["accuracy_over_time"][5:])


def test_current_homeostasis_is_checkpointed_and_resumes_on_course(tiny_task, tmp_path):
    config = TrainConfig(
        epochs=2, batch_size=16, window=10, encoder_rule="local", current_penalty=0.5, current_target=2.0
    )
    straight = Trainer(tiny_network(tiny_task), tiny_task, config)
    straight.fit()
    assert straight.homeostasis.weight(1.0) != 0.0  # it has seen the batches
    assert straight.history[-1]["current_energy"] == straight.homeostasis.ratio()
    first = Trainer(tiny_network(tiny_task), tiny_task, config)
    first.train_epoch()
    first.save(tmp_path / "c.pt")
    second = Trainer.resume(tmp_path / "c.pt", tiny_task)
    assert torch.equal(second.homeostasis.energy, first.homeostasis.energy)
    second.fit()
    assert torch.allclose(second.homeostasis.energy, straight.homeostasis.energy)
    for name, value in straight.network.state_dict().items():
        assert torch.allclose(value.float(), second.network.state_dict()[name].float(), atol=1e-6), name
    for rule, target, penalty in (("dfa", 0.0, 0.1), ("dfa", 1.0, 0.0), ("frozen", 1.0, 0.1)):
        with pytest.raises(ValueError, match="current_target"):
            TrainConfig(encoder_rule=rule, current_target=target, current_penalty=penalty)


def test_weight_average_follows_its_warm_up_formula(tiny_task):
    network = tiny_network(tiny_task)
    average = trainer_module.WeightAverage(network, decay=0.5)
    weight = network.readout[1].weight
    expected = weight.detach().clone()
    for n in range(12):
        with torch.no_grad():
            weight.add_(1.0)
        average.after_batch(network)
        expected += (1 - min(0.5, (1 + n) / (10 + n)) if n else 1.0) * (weight.detach() - expected)
        assert torch.allclose(average.averages()["readout.1.weight"], expected), n
    assert "readout.0.mean" in average.names and "readout.0.initialised" not in average.names
    assert any(n.startswith("encoder.") for n in average.names), "the dfa-trained encoder is averaged"
    with pytest.raises(ValueError, match="decay"):
        trainer_module.WeightAverage(network, decay=1.0)


def test_weight_average_is_evaluated_and_saved_but_never_trained_on(tiny_task, tmp_path):
    config = dict(epochs=2, batch_size=16, encoder_rule="dfa", window=10)
    plain = Trainer(tiny_network(tiny_task), tiny_task, TrainConfig(**config))
    plain.fit()
    averaged = Trainer(tiny_network(tiny_task), tiny_task, TrainConfig(**config, weight_average=0.9))
    averaged.fit(tmp_path / "c.pt")
    for name, value in plain.network.state_dict().items():  # the same updates: training never sees it
        assert torch.equal(value, averaged.network.state_dict()[name]), name
    result = averaged.evaluate(tiny_task.test)
    live = evaluate_network(averaged.network, tiny_task.test, tiny_task.mask, 16)
    assert result["loss"] != live["loss"]
    restored = load_network(tmp_path / "c.pt")  # what evaluate and export load
    assert evaluate_network(restored, tiny_task.test, tiny_task.mask, 16) == result
    with pytest.raises(ValueError, match="weight_average"):
        TrainConfig(weight_average=0.0)


def test_weight_average_resumes_on_course(tiny_task, tmp_path):
    config = TrainConfig(epochs=2, batch_size=16, encoder_rule="local", window=10, weight_average=0.9)
    straight = Trainer(tiny_network(tiny_task), tiny_task, config)
    straight.fit()
    first = Trainer(tiny_network(tiny_task), tiny_task, replace(config, epochs=1))
    first.fit(tmp_path / "c.pt")
    second = Trainer.resume(tmp_path / "c.pt", tiny_task, epochs=2)
    assert torch.equal(second.average.updates, first.average.updates)
    second.fit()
    for name, value in straight.network.state_dict().items():
        assert torch.allclose(value.float(), second.network.state_dict()[name].float(), atol=1e-6), name
    for name, value in straight.average.averages().items():
        assert torch.allclose(value, second.average.averages()[name], atol=1e-6), name


def test_one_verbosity_switch_silences_the_epoch_lines(tiny_task, capsys):
    from spiking_maelstrom.progress import verbosity

    _trainer(tiny_task, epochs=1).fit()
    assert "epoch 1" in capsys.readouterr().out
    with verbosity(False):
        _trainer(tiny_task, epochs=1).fit()
    assert capsys.readouterr().out == ""
