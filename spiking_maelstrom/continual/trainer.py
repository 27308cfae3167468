"""The continual trainer: a run's network learns a scenario's experiences one after another, and
after each the run directory gets ``continual.json`` (the accuracy matrix and its metrics),
``continual.png`` and ``checkpoint.pt``, from which ``resume`` continues at the next experience."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import CVConfig, RunConfig, run_of_checkpoint
from ..device import resolve_device
from ..evaluation import load_network
from ..files import write_json
from ..network import MaelstromNetwork, build_network
from ..plots import plot_continual
from ..progress import bar, note
from ..readouts import readout_classes
from .metrics import summary
from .scenarios import Scenario
from .strategies import ContinualConfig, make_learner

CONTINUAL = "continual.json"
PLOT = "continual.png"
CHECKPOINT = "checkpoint.pt"


def _bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's trained weights (its parameters and readout buffers)."""
    return sum(t.nbytes for t in module.state_dict().values())


class ContinualTrainer:
    """Learns ``scenario`` with the strategy ``config`` names, on the network ``run`` describes.

    The accuracy matrix grows a row per experience learned (``joint``: one row, all at once);
    ``initial`` holds each experience's accuracy before any learning (for forward transfer)."""

    def __init__(
        self, run: RunConfig, config: ContinualConfig, scenario: Scenario, network: MaelstromNetwork | None = None
    ) -> None:
        self.run = run
        self.config = config
        self.scenario = scenario
        if network is None:
            torch.manual_seed(run.seed)
            network = build_network(run.network, resolve_device(run.device))
        self.network = network
        self.learner = make_learner(network, scenario, run.train, config)
        self.initial: list[float] | None = None
        self.matrix: list[list[float]] = []
        self.seconds: list[float] = []
        self.learner_bytes: list[int] = []

    @property
    def steps(self) -> int:
        """Learning steps in all: one per experience, one for ``joint``."""
        return 1 if self.config.strategy == "joint" else len(self.scenario)

    def evaluate_all(self) -> list[float]:
        """The test accuracy on every experience, as the network is now."""
        return [self.learner.evaluate(j) for j in range(len(self.scenario))]

    def fit(self, out: Path | None = None, until: int | None = None) -> dict[str, Any]:
        """Learn the remaining experiences (up to ``until`` learning steps in all), writing the run
        directory ``out`` after each; the results."""
        if self.initial is None:
            self.initial = self.evaluate_all()
        stop = self.steps if until is None else min(until, self.steps)
        for index in bar(range(len(self.matrix), stop), desc=self.config.strategy, leave=False):
            start = time.perf_counter()
            self.learner.learn(index)
            self.seconds.append(time.perf_counter() - start)
            self.matrix.append(self.evaluate_all())
            self.learner_bytes.append(self.learner.memory_bytes())
            row = " ".join(f"{100 * a:.1f}" for a in self.matrix[-1])
            note(f"after experience {index} ({self.seconds[-1]:.1f} s): test accuracy per experience {row}")
            if out is not None:
                self.write(out)
        return self.results()

    def results(self) -> dict[str, Any]:
        """What ``continual.json`` holds."""
        joint = self.config.strategy == "joint"
        metrics = summary(self.matrix, self.initial, joint) if self.matrix else {}
        network = self.network
        return {
            "strategy": self.config.strategy,
            "scenario": self.config.scenario,
            "dataset": self.scenario.task.name,
            "experiences": len(self.scenario),
            "learned": len(self.matrix),
            "finished": len(self.matrix) == self.steps,
            "matrix": self.matrix,
            "initial": self.initial,
            **metrics,
            "seconds": self.seconds,
            "train_seconds": sum(self.seconds),
            "learner_bytes": self.learner_bytes,
            "model_bytes": _bytes(network) - _bytes(network.maelstrom),
            "neurons": network.maelstrom.n_neurons,
            "readout": network.config.readout,
            "encoder_rule": self.run.train.encoder_rule,
            "recurrent": network.maelstrom.config.recurrent,
            "seed": self.run.seed,
            "config": asdict(self.config),
            "split": self.scenario.record(),
        }

    def write(self, out: Path) -> None:
        """The checkpoint, then the plot, then ``continual.json`` (each atomically)."""
        self.save(out / CHECKPOINT)
        results = self.results()
        title = f"{self.scenario.task.name} {self.config.scenario}, {self.config.strategy}"
        plot_continual(self.matrix, results["acc_curve"], out / PLOT, title=title)
        write_json(out / CONTINUAL, results)

    def state(self) -> dict[str, Any]:
        """A checkpoint: the run's config and weights (heads included), the learner's own state and
        the matrix so far; tensors and plain data only."""
        return {
            "network_config": self.run.network.to_dict(),
            "train_config": asdict(self.run.train),
            "task": self.scenario.task.record(),
            "model": self.network.state_dict(),
            "epoch": len(self.matrix),
            "history": self.matrix,
            "train_seconds": sum(self.seconds),
            "continual": {
                "config": asdict(self.config),
                "heads": {name: readout_classes(h) for name, h in self.network.heads.items()},
                "learner": self.learner.state_dict(),
                "initial": self.initial,
                "seconds": self.seconds,
                "learner_bytes": self.learner_bytes,
            },
        }

    def save(self, path: Path) -> Path:
        return save_checkpoint(path, self.state())

    @classmethod
    def resume(
        cls, payload: dict[str, Any], scenario: Scenario, device: str = "auto", path: Path | str = "checkpoint"
    ) -> ContinualTrainer:
        """The run a continual checkpoint ``payload`` (``continual_of_checkpoint``'s, read from
        ``path``) holds, to continue at its next experience on ``scenario``, made again from its
        own settings."""
        continual = payload["continual"]
        run = run_of_checkpoint(payload, CVConfig(), device, path)
        network = load_network(payload, resolve_device(device), path)
        trainer = cls(run, ContinualConfig(**continual["config"]), scenario, network)
        trainer.learner.load_state_dict(continual["learner"])
        trainer.initial = continual["initial"]
        trainer.matrix = [list(row) for row in payload["history"]]
        trainer.seconds = list(continual["seconds"])
        trainer.learner_bytes = list(continual["learner_bytes"])
        return trainer


def continual_of_checkpoint(path: Path) -> tuple[dict[str, Any], ContinualConfig]:
    """A continual checkpoint, read once, and its continual settings (to make its scenario again)."""
    payload = load_checkpoint(path)
    return payload, continual_config(payload, path)


def continual_config(payload: dict[str, Any], path: Path | str = "checkpoint") -> ContinualConfig:
    """The continual settings a checkpoint ``payload`` (read from ``path``) holds."""
    continual = payload.get("continual")
    if not isinstance(continual, dict) or not isinstance(continual.get("config"), dict):
        raise ValueError(f"{path} is not the checkpoint of a continual run")
    try:
        return ContinualConfig(**continual["config"])
    except TypeError as err:
        raise ValueError(f"{path}: its continual config is not one this version reads ({err})") from None
