"""A run directory: train a ``RunConfig`` (or resume one), score it, cross-validate it, and write
``config.toml`` (the resolved config), ``checkpoint.pt``, ``metrics.json`` and the plots.

The folder is consistent at every instant: each file is written atomically, ``metrics.json`` last
(a run without it is unfinished); a new run first removes the files of the run it replaces, and a
resumed one its outputs, ``metrics.json`` first, so a folder never holds files of two runs (or a
finished run's metrics beside a checkpoint trained further)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_checkpoint
from .config import CVConfig, RunConfig, TaskConfig, run_of_checkpoint
from .crossval import CV_SCORES, cross_validate, save_fold_scores
from .data import Task
from .device import resolve_device
from .files import atomic_write, write_json
from .network import build_network
from .plots import plot_accuracy, plot_raster, plot_test
from .trainer import Trainer, train_and_score

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.toml"
METRICS = "metrics.json"
# What a run writes after training, metrics.json (the mark of a finished run) first; then the whole run.
OUTPUTS = (METRICS, CV_SCORES, "raster.png", "accuracy.png", "test.png")
RUN_FILES = (*OUTPUTS, CHECKPOINT, CONFIG)
# What --resume may change: how long it trains, the folds after it, where the data and the device are.
RESUMABLE = ("train.epochs", "cv.", "task.data_dir", "task.cache_dir", "device")


def start(run: RunConfig, task: Task) -> Trainer:
    """A fresh trainer for ``run`` on ``task``."""
    device = resolve_device(run.device)
    torch.manual_seed(run.seed)
    return Trainer(build_network(run.network, device=device), task, run.train)


def resume(out: Path, given: dict[str, Any]) -> tuple[RunConfig, Task, Trainer]:
    """The run in ``out`` continued: its own settings, with only ``RESUMABLE`` ones ``given`` (flat keys)."""
    checkpoint = out / CHECKPOINT
    if not checkpoint.is_file():
        stopped = held_run(out) == "unstarted"
        hint = "; the run stopped before its first checkpoint: --force starts it again" if stopped else ""
        raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint}{hint}")
    if refused := sorted(k for k in given if not k.startswith(RESUMABLE)):
        raise ValueError(f"--resume continues {out} with its own settings: it takes no {', '.join(refused)}")
    payload = load_checkpoint(checkpoint)
    cv = CVConfig(**{k.removeprefix("cv."): v for k, v in given.items() if k.startswith("cv.")})
    run = run_of_checkpoint(payload, cv, given.get("device", "auto"), checkpoint)
    options = {**run.task.options, **{k.removeprefix("task."): v for k, v in given.items() if k.startswith("task.")}}
    run = replace(run, task=TaskConfig(run.task.name, options))
    run = replace(run, train=replace(run.train, epochs=given.get("train.epochs", run.train.epochs)))
    task = run.task.load()
    device = resolve_device(run.device)
    trainer = Trainer.resume(checkpoint, task, device=device, epochs=run.train.epochs)
    return run, task, trainer


def held_run(out: Path) -> str | None:
    """The run that folder ``out`` holds: ``finished`` (its metrics), ``unfinished`` (a checkpoint),
    ``unstarted`` (a config alone, stopped before its first checkpoint), or None."""
    for name, state in ((METRICS, "finished"), (CHECKPOINT, "unfinished"), (CONFIG, "unstarted")):
        if (out / name).is_file():
            return state
    return None


def clear_run(out: Path, names: tuple[str, ...] = RUN_FILES) -> None:
    """Remove the run files ``names`` from ``out``, in that order (``metrics.json`` first)."""
    for name in names:
        (out / name).unlink(missing_ok=True)


def write_config(path: Path, run: RunConfig) -> Path:
    """Write the resolved run config, atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(run.to_toml())
    return path


def train_run(run: RunConfig, task: Task, trainer: Trainer, out: Path, resumed: bool = False) -> dict[str, Any]:
    """Train ``trainer`` to its epochs (checkpointing each), score it on ``task.test``, cross-validate
    ``run``'s settings if it asks, and write the run directory ``out`` (replacing the run it holds, or,
    ``resumed``, that run's outputs); returns the metrics."""
    clear_run(out, OUTPUTS if resumed else RUN_FILES)
    write_config(out / CONFIG, run)
    checkpoint = out / CHECKPOINT
    trainer.fit(checkpoint)
    if not checkpoint.is_file():
        trainer.save(checkpoint)
    test = trainer.evaluate(task.test)
    rate = _plots(trainer, task, test, out)
    metrics = _metrics(trainer, task, test, rate)
    metrics["cv"] = _cross_validate(run, trainer, task, out)
    if run.cv.members > 1:
        metrics["cv_members"] = run.cv.members
    write_json(out / METRICS, metrics)
    return metrics


def _plots(trainer: Trainer, task: Task, test: dict[str, Any], out: Path) -> float:
    """The raster of test sample 0, the learning curves and the test plot; returns sample 0's rate (Hz)."""
    device = trainer.device
    x, _ = task.test[0]
    with trainer.averaged() as network:
        sample = network(x[None].to(device), record=True)
    maelstrom = trainer.network.maelstrom
    title = f"maelstrom spikes, {task.name} test sample 0"
    plot_raster(sample.spikes[0], maelstrom.excitatory, maelstrom.dt, out / "raster.png", title=title)
    if trainer.history:
        plot_accuracy(trainer.history, out / "accuracy.png", title=f"{task.name}, encoder rule {trainer.rule.name}")
    plot_test(test["confusion"], test["accuracy_over_time"], task.dt, out / "test.png", title=f"{task.name} test")
    return float(sample.spikes.mean()) / maelstrom.dt


def _metrics(trainer: Trainer, task: Task, test: dict[str, Any], rate: float) -> dict[str, Any]:
    last = trainer.history[-1] if trainer.history else {}
    maelstrom = trainer.network.maelstrom
    return {
        "dataset": task.name,
        "test_accuracy": test["accuracy"],
        "test_samples": test["samples"],
        "test_loss": test["loss"],
        "val_accuracy": last.get("val_accuracy"),
        "train_accuracy": last.get("train_accuracy"),
        "train_seconds": trainer.train_seconds,
        "epochs": trainer.epoch,
        "neurons": maelstrom.n_neurons,
        "encoder_rule": trainer.rule.name,
        "readout": trainer.network.config.readout,
        "feedback": trainer.network.feedback,
        "recurrent": maelstrom.config.recurrent,
        "device": str(trainer.device),
        "seed": trainer.config.seed,
        "spike_rate_hz": rate,
        "test_confusion": test["confusion"],
        "test_accuracy_over_time": test["accuracy_over_time"],
        "history": trainer.history,
    }


def _cross_validate(run: RunConfig, trainer: Trainer, task: Task, out: Path) -> dict[str, Any] | None:
    """K-fold CV of the run's settings on the folds its own seed draws; each fold's scores saved."""
    if not run.cv.folds:
        return None
    folds: list[dict[str, Any]] = []

    def score_fold(fold: Task) -> float:
        folds.append(train_and_score(trainer.network.config, trainer.config, fold, trainer.device, run.cv.members))
        folds[-1]["indices"] = list(fold.test.indices)
        return folds[-1]["accuracy"]

    result = cross_validate(task, score_fold, run.cv.folds, run.seed, run.cv.group_by)
    save_fold_scores(out / CV_SCORES, folds)
    print(f"{run.cv.folds}-fold cross-validation: {100 * result['mean']:.1f} +- {100 * result['std']:.1f} %")
    return result
