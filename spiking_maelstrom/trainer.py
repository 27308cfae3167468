"""Trainer: epochs of online training, their metrics, checkpoints and resume; one cross-validation fold."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import torch
from torch.utils.data import DataLoader, Dataset

from .checkpoint import load_checkpoint, save_checkpoint
from .data import Task, validation_split
from .data.task import augmented
from .ensemble import Ensemble
from .evaluation import evaluate_network, load_network
from .learning import RULES, CurrentHomeostasis, WeightAverage, make_rule, predict, train_batch
from .network import MaelstromNetwork, NetworkConfig, build_network
from .parts import AugmentationStreams, Part, ScheduledAdam
from .progress import bar, note, verbosity
from .readouts import LinearReadout, RidgeReadout

LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """How to train (see each field's help); ``window`` steps per backward pass (see ``learning``)."""

    epochs: Annotated[int, "training epochs"] = 4
    batch_size: Annotated[int, "samples per update"] = 32
    lr: Annotated[float, "readout learning rate"] = 3e-3
    encoder_lr: Annotated[float, "encoder learning rate"] = 3e-3
    weight_decay: Annotated[float, "L2 penalty on the readout's and the encoder's weights (Adam's weight_decay)"] = 0.0
    window: Annotated[int, "steps per backward pass"] = 25
    current_penalty: Annotated[
        float, "L2 penalty on a trained encoder's currents; keeps the maelstrom out of saturation"
    ] = 0.0
    current_target: Annotated[
        float | None,
        "hold a trained encoder's current energy at R times its initial level: the penalty's weight becomes "
        "P (E / E0 - R) with P the current_penalty (learning.CurrentHomeostasis)",
    ] = None
    encoder_rule: Annotated[str, f"credit for the encoder: {', '.join(RULES)}"] = "dfa"
    readout_init: Annotated[
        str, "random, or ridge: start a linear readout from the closed-form ridge fit on the untrained network"
    ] = "random"
    val_fraction: Annotated[float, "share of the training files held out for validation"] = 0.1
    seed: Annotated[int, "seed of the batch order and the credit rule"] = 0
    lr_schedule: Annotated[
        str, "both learning rates over the run: constant, or a half cosine down to 0 after the last epoch"
    ] = "constant"
    weight_average: Annotated[
        float | None,
        "evaluate and save an exponential moving average of the trained weights, decay min(D, (1 + n) / (10 + n)) "
        "at the n-th batch (learning.WeightAverage)",
    ] = None

    def __post_init__(self) -> None:
        for name, allowed in (
            ("lr_schedule", LR_SCHEDULES),
            ("readout_init", ("random", "ridge")),
            ("encoder_rule", RULES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}: choose one of {', '.join(allowed)}")
        for name, low in (("epochs", 0), ("batch_size", 1), ("window", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        for name in ("lr", "encoder_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "current_penalty"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.weight_average is not None and not 0 < self.weight_average < 1:
            raise ValueError(f"weight_average is a decay per batch in (0, 1), got {self.weight_average}")
        if self.current_target is not None:
            if not self.current_target > 0:
                raise ValueError(f"current_target must be > 0, got {self.current_target}")
            if not self.current_penalty > 0 or self.encoder_rule == "frozen":
                raise ValueError(
                    "current_target holds a trained encoder's currents: it needs current_penalty > 0 (the gain) "
                    f"and encoder_rule dfa or local, got current_penalty={self.current_penalty}, "
                    f"encoder_rule={self.encoder_rule!r}"
                )

    def check_readout(self, readout: str) -> None:
        """Refuse a readout this training cannot train: the ridge readout is fitted once, in closed form."""
        if readout == "ridge" and self.encoder_rule != "frozen":
            raise ValueError("the ridge readout is closed-form and gives no error signal: use encoder_rule frozen")
        if readout == "ridge" and self.weight_average is not None:
            raise ValueError("the ridge readout is fitted once: there are no batches' weights to average")


class Trainer:
    """Trains a :class:`MaelstromNetwork` on a :class:`Task`; the maelstrom itself is never touched.

    What the run holds beside the network are its ``parts`` (``parts.Part``), by the names under
    which a checkpoint keeps them."""

    def __init__(
        self,
        network: MaelstromNetwork,
        task: Task,
        config: TrainConfig,
    ) -> None:
        self.network = network
        self.task = task
        self.config = config
        self.device = network.maelstrom.weight.device
        self.ridge = isinstance(network.readout, RidgeReadout)
        config.check_readout("ridge" if self.ridge else "trained")
        n_classes, n_neurons = network.n_classes, network.maelstrom.n_neurons
        self.rule = make_rule(config.encoder_rule, n_classes, n_neurons, seed=config.seed + 1).to(self.device)
        self.rule.check(network)
        target = config.current_target
        self.homeostasis = None if target is None else CurrentHomeostasis(target).to(self.device)
        groups = [{"params": list(network.readout.parameters()), "lr": config.lr}]
        if self.rule.trains_encoder:
            groups.append({"params": list(network.encoder.parameters()), "lr": config.encoder_lr})
        else:
            network.encoder.requires_grad_(False)
        groups = [g for g in groups if g["params"]]
        average = config.weight_average
        self.average = None if average is None else WeightAverage(network, average).to(self.device)
        self.optimizer = ScheduledAdam(groups, config.weight_decay, config.lr_schedule) if groups else None
        parts: dict[str, Part | None] = {
            "rule": self.rule,
            "augmentation": AugmentationStreams(task.random_transforms()),
            "optimizer": self.optimizer,
            "homeostasis": self.homeostasis,
            "weight_average": self.average,
        }
        self.parts = {name: part for name, part in parts.items() if part is not None}
        self.train_set, self.val_set = validation_split(task.train, config.val_fraction, config.seed)
        if task.augment is not None or task.blend is not None:
            self.train_set = augmented(self.train_set, task.augment, task.blend)
        self.mask = task.mask.to(self.device)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.train_seconds = 0.0

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed * 1000 + self.epoch)
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=shuffle, generator=generator)

    def _bar(self, loader: DataLoader, desc: str) -> Any:
        return bar(loader, desc=desc, leave=False)

    def train_epoch(self) -> dict[str, Any]:
        """One epoch over the training split (one ridge fit for a ridge readout).

        ``train_accuracy`` is measured on each batch as it is trained (no extra pass), except for
        the ridge readout, which is scored after its fit.
        """
        start = time.perf_counter()
        self.network.train()
        if self.ridge:
            self._fit_ridge(self.network.readout)
            loss, accuracy = float("nan"), None
        else:
            loss, accuracy = self._train_batches()
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        self.epoch += 1
        if accuracy is None:
            accuracy = self.evaluate(self.train_set)["accuracy"]
        record = {"epoch": self.epoch, "train_loss": loss, "train_accuracy": accuracy, "seconds": seconds}
        if len(self.val_set):
            record["val_accuracy"] = self.evaluate(self.val_set)["accuracy"]
        for part in self.parts.values():
            record.update(part.record())
        self.history.append(record)
        return record

    def _train_batches(self) -> tuple[float, float]:
        """One pass of online training over the shuffled training split: its mean loss and accuracy."""
        total, correct, samples = 0.0, 0, 0
        loader = self._loader(self.train_set, shuffle=True)
        bar = self._bar(loader, f"epoch {self.epoch + 1}")
        for batch, (x, y) in enumerate(bar):
            for part in self.parts.values():
                part.before_batch(self.epoch * len(loader) + batch, self.config.epochs * len(loader))
            x, y = x.to(self.device), y.to(self.device)
            batch_loss, logits = train_batch(
                self.network,
                self.rule,
                self.optimizer,
                x,
                y,
                self.mask,
                self.config.window,
                self.config.current_penalty,
                self.homeostasis,
            )
            for part in self.parts.values():
                part.after_batch(self.network)
            total += batch_loss * len(y)
            correct += int((predict(logits, self.mask) == y).sum())
            samples += len(y)
            bar.set_postfix(loss=f"{batch_loss:.3f}")
        return total / max(samples, 1), correct / max(samples, 1)

    def _fit_ridge(self, readout: RidgeReadout) -> None:
        readout.reset_statistics()
        accumulate_ridge(self.network, readout, self.train_set, self.mask, self.config.batch_size)
        readout.solve()

    def _init_readout_by_ridge(self) -> None:
        readout = self.network.readout
        if not isinstance(readout, LinearReadout):
            raise ValueError("readout_init='ridge' needs the linear readout")
        ridge = RidgeReadout(self.network.n_features, self.network.n_classes, self.network.config.ridge_alpha)
        self._fit_ridge(ridge.to(self.device))
        readout.load_ridge(ridge)

    def fit(self, checkpoint: str | Path | None = None) -> list[dict[str, Any]]:
        """Train up to ``config.epochs`` (continuing a resumed run), checkpointing every epoch."""
        epochs = 1 if self.ridge else self.config.epochs
        if self.epoch == 0 and self.config.readout_init == "ridge" and not self.ridge:
            self._init_readout_by_ridge()
        while self.epoch < epochs:
            record = self.train_epoch()
            note(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
            if checkpoint is not None:
                self.save(checkpoint)
        return self.history

    def evaluate(self, dataset: Dataset) -> dict[str, Any]:
        """Accuracy, mean loss and sample count over ``dataset`` (with the averaged weights, if any)."""
        with self.averaged() as network:
            return evaluate_network(network, dataset, self.task.mask, self.config.batch_size)

    def averaged(self) -> AbstractContextManager[MaelstromNetwork]:
        """The network as it is evaluated and saved for inference: with ``weight_average``, its
        averaged weights in place, and the live ones restored afterwards."""
        return nullcontext(self.network) if self.average is None else self.average.applied(self.network)

    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild and resume this run: each part's state under its name."""
        return {
            "network_config": self.network.config.to_dict(),
            "train_config": asdict(self.config),
            "task": self.task.record(),
            # What inference loads (``load_network``); with an average, training resumes from "live_model".
            "model": self.network.state_dict() if self.average is None else self.average.state_of(self.network),
            "live_model": None if self.average is None else self.network.state_dict(),
            **{name: part.state_dict() for name, part in self.parts.items()},
            "epoch": self.epoch,
            "history": self.history,
            "train_seconds": self.train_seconds,
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically."""
        return save_checkpoint(path, self.state())

    @classmethod
    def resume(cls, path: str | Path, task: Task, device: str | torch.device = "cpu", **overrides: Any) -> Trainer:
        """Rebuild network, parts and history from a checkpoint; ``overrides`` change the
        training config (e.g. more ``epochs``). A part the checkpoint lacks (one from before the
        part was kept, e.g. augmentation streams before 2026-12-02) starts afresh."""
        payload = load_checkpoint(path)
        network = load_network(payload, device)
        if payload.get("live_model") is not None:
            network.load_state_dict(payload["live_model"])
        config = TrainConfig(**{**payload["train_config"], **overrides})
        trainer = cls(network, task, config)
        for name, part in trainer.parts.items():
            if payload.get(name) is not None:
                try:
                    part.load_state_dict(payload[name])
                except ValueError as err:
                    raise ValueError(f"{path}: {err}") from err
        trainer.epoch = payload["epoch"]
        trainer.history = list(payload["history"])
        trainer.train_seconds = payload["train_seconds"]
        return trainer


@torch.no_grad()
def accumulate_ridge(
    network: MaelstromNetwork, readout: RidgeReadout, dataset: Dataset, mask: torch.Tensor, batch_size: int
) -> None:
    """Add the features ``network`` gives on ``dataset`` (in order, the steps ``mask`` scores) to
    ``readout``'s sufficient statistics; the solve is the caller's."""
    device = network.maelstrom.weight.device
    mask = mask.to(device)
    for x, y in bar(DataLoader(dataset, batch_size=batch_size, shuffle=False), desc="ridge fit", leave=False):
        x, y = x.to(device), y.to(device)
        out = network.run_window(x, network.init_state(x.shape[0]), keep_features=True)
        readout.accumulate(out.features, y[:, None], mask.expand(x.shape[:2]))


def train_and_score(
    network_config: NetworkConfig,
    train_config: TrainConfig,
    task: Task,
    device: str | torch.device = "cpu",
    members: int = 1,
) -> dict[str, Any]:
    """Build a fresh network, train it on all of ``task.train`` (no validation part) and score it on
    ``task.test`` (``evaluate_network`` with the scores kept): one cross-validation fold (see
    ``crossval.cross_validate``). With ``members`` K > 1, K networks are trained, member k with
    every seed (maelstrom, initialisation, batch order) moved on by k, as ``maelstrom train
    --seed S+k`` would, and scored as an ``Ensemble``."""
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    trainers = []
    for k in range(members):
        config = replace(
            network_config,
            seed=network_config.seed + k,
            maelstrom=replace(network_config.maelstrom, seed=network_config.maelstrom.seed + k),
        )
        training = replace(train_config, val_fraction=0.0, seed=train_config.seed + k)
        trainers.append(Trainer(build_network(config, device), task, training))
        with verbosity(False):  # a fold reports its result, not its epochs
            trainers[-1].fit()
    with ExitStack() as stack:
        networks = [stack.enter_context(t.averaged()) for t in trainers]
        model = networks[0] if members == 1 else Ensemble(networks)
        return evaluate_network(model, task.test, task.mask, train_config.batch_size, keep_scores=True)
