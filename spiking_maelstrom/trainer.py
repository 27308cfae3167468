"""Trainer: epochs of online training, evaluation, metrics, checkpoints and resume."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .data import Task, validation_split
from .data.task import augmented
from .ensemble import Ensemble
from .learning import (
    RULES,
    CurrentHomeostasis,
    WeightAverage,
    make_rule,
    masked_log_probs,
    predict,
    sequence_loss,
    step_weights,
    train_batch,
)
from .network import MaelstromNetwork, NetworkConfig, build_network
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
    """Trains a :class:`MaelstromNetwork` on a :class:`Task`; the maelstrom itself is never touched."""

    def __init__(
        self,
        network: MaelstromNetwork,
        task: Task,
        config: TrainConfig,
        progress: bool = True,
    ) -> None:
        self.network = network
        self.task = task
        self.config = config
        self.progress = progress
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
        self.optimizer = torch.optim.Adam(groups, weight_decay=config.weight_decay) if groups else None
        self._base_lrs = [g["lr"] for g in groups]
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
        return tqdm(loader, desc=desc, leave=False, disable=not self.progress or None, dynamic_ncols=True)

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
            total, correct, samples = 0.0, 0, 0
            loader = self._loader(self.train_set, shuffle=True)
            bar = self._bar(loader, f"epoch {self.epoch + 1}")
            for batch, (x, y) in enumerate(bar):
                self._schedule_learning_rates(self.epoch * len(loader) + batch, self.config.epochs * len(loader))
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
                if self.average is not None:
                    self.average.update(self.network)
                total += batch_loss * len(y)
                correct += int((predict(logits, self.mask) == y).sum())
                samples += len(y)
                bar.set_postfix(loss=f"{batch_loss:.3f}")
            loss, accuracy = total / max(samples, 1), correct / max(samples, 1)
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        self.epoch += 1
        if accuracy is None:
            accuracy = self.evaluate(self.train_set)["accuracy"]
        record = {"epoch": self.epoch, "train_loss": loss, "train_accuracy": accuracy, "seconds": seconds}
        if len(self.val_set):
            record["val_accuracy"] = self.evaluate(self.val_set)["accuracy"]
        if self.homeostasis is not None:
            record["current_energy"] = self.homeostasis.ratio()
        self.history.append(record)
        return record

    def _schedule_learning_rates(self, step: int, steps: int) -> None:
        """Set the learning rates for batch ``step`` of ``steps`` (see ``TrainConfig.lr_schedule``)."""
        if self.config.lr_schedule == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * min(step / steps, 1.0)))
            for group, base in zip(self.optimizer.param_groups, self._base_lrs, strict=True):
                group["lr"] = base * factor

    @torch.no_grad()
    def _fit_ridge(self, readout: RidgeReadout) -> None:
        readout.reset_statistics()
        for x, y in self._bar(self._loader(self.train_set, shuffle=False), "ridge fit"):
            x, y = x.to(self.device), y.to(self.device)
            out = self.network.run_window(x, self.network.init_state(x.shape[0]), keep_features=True)
            readout.accumulate(out.features, y[:, None], self.mask.expand(x.shape[:2]))
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
            if self.progress:
                shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())
                tqdm.write(shown)
            if checkpoint is not None:
                self.save(checkpoint)
        return self.history

    def evaluate(self, dataset: Dataset) -> dict[str, Any]:
        """Accuracy, mean loss and sample count over ``dataset`` (with the averaged weights, if any)."""
        with self.averaged() as network:
            return evaluate_network(network, dataset, self.task.mask, self.config.batch_size)

    @contextmanager
    def averaged(self) -> Iterator[MaelstromNetwork]:
        """The network as it is evaluated and saved for inference: with ``weight_average``, its
        averaged weights in place, and the live ones restored afterwards."""
        if self.average is None:
            yield self.network
            return
        live = {name: t.detach().clone() for name, t in self.average.tracked(self.network).items()}
        self.network.load_state_dict(self.average.averages(), strict=False)
        try:
            yield self.network
        finally:
            self.network.load_state_dict(live, strict=False)

    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild and resume this run."""
        return {
            "network_config": self.network.config.to_dict(),
            "train_config": asdict(self.config),
            "task": self.task.record(),
            # What inference loads (``load_network``); with an average, training resumes from "live_model".
            "model": self.network.state_dict() if self.average is None else self.average.state_of(self.network),
            "live_model": None if self.average is None else self.network.state_dict(),
            "weight_average": None if self.average is None else self.average.state_dict(),
            "rule": self.rule.state_dict(),
            "augmentation": [t.rng_state() for t in self.task.random_transforms()],
            "homeostasis": self.homeostasis.state_dict() if self.homeostasis is not None else None,
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "epoch": self.epoch,
            "history": self.history,
            "train_seconds": self.train_seconds,
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically."""
        return save_checkpoint(path, self.state())

    @classmethod
    def resume(
        cls, path: str | Path, task: Task, device: str | torch.device = "cpu", progress: bool = True, **overrides: Any
    ) -> Trainer:
        """Rebuild network, optimiser and history from a checkpoint; ``overrides`` change the
        training config (e.g. more ``epochs``)."""
        payload = load_checkpoint(path)
        network = load_network(payload, device)
        config = TrainConfig(**{**payload["train_config"], **overrides})
        trainer = cls(network, task, config, progress=progress)
        trainer.rule.load_state_dict(payload["rule"])
        trainer._restore_augmentation(payload.get("augmentation"), path)
        if trainer.average is not None and payload.get("weight_average") is not None:
            network.load_state_dict(payload["live_model"])
            trainer.average.load_state_dict(payload["weight_average"])
        if trainer.homeostasis is not None and payload.get("homeostasis") is not None:
            trainer.homeostasis.load_state_dict(payload["homeostasis"])
        if trainer.optimizer is not None and payload["optimizer"] is not None:
            trainer.optimizer.load_state_dict(payload["optimizer"])
        trainer.epoch = payload["epoch"]
        trainer.history = list(payload["history"])
        trainer.train_seconds = payload["train_seconds"]
        return trainer

    def _restore_augmentation(self, states: list[dict[str, Any]] | None, path: str | Path) -> None:
        """Continue the augmentations' random streams where the checkpoint left them (checkpoints
        from before 2026-12-02 kept none: their augmentations start afresh)."""
        if states is None:
            return
        transforms = self.task.random_transforms()
        if len(states) != len(transforms):
            raise ValueError(
                f"{path}: the run was trained with {len(states)} random augmentation(s), this task has "
                f"{len(transforms)}: resume with the run's own --task-option augmentation settings"
            )
        for transform, state in zip(transforms, states, strict=True):
            transform.set_rng_state(state)


@torch.no_grad()
def evaluate_network(
    network: MaelstromNetwork | Ensemble,
    dataset: Dataset,
    mask: torch.Tensor,
    batch_size: int = 64,
    keep_scores: bool = False,
) -> dict[str, Any]:
    """Accuracy, mean loss and sample count over ``dataset`` (decision: ``learning.predict``),
    the ``confusion`` matrix (rows: true class, columns: decided class) and the
    ``accuracy_over_time``: at each step, the accuracy of the decision as it stands then (None
    before the first step the mask scores). With ``keep_scores`` also each sample's ``scores``
    ``[n, C]`` (``learning.decision_scores``) and ``labels``."""
    network.eval()
    device = next(network.buffers()).device
    mask = mask.to(device)
    correct, loss, samples, scores, labels = 0, 0.0, 0, [], []
    confusion = torch.zeros(network.n_classes, network.n_classes, dtype=torch.long)
    correct_over_time = None
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x, y = x.to(device), y.to(device)
        logits = network(x).logits
        loss += float(sequence_loss(logits, y, step_weights(mask, x.shape[0]))) * x.shape[0]
        log_probs = masked_log_probs(logits, mask)
        batch_scores = log_probs.sum(1)  # learning.decision_scores
        decided = batch_scores.argmax(-1)
        correct += int((decided == y).sum())
        samples += x.shape[0]
        confusion += (
            torch.bincount(y * network.n_classes + decided, minlength=confusion.numel()).view_as(confusion).cpu()
        )
        right = (log_probs.cumsum(1).argmax(-1) == y[:, None]).sum(0).cpu()
        correct_over_time = right if correct_over_time is None else correct_over_time + right
        if keep_scores:
            scores.append(batch_scores.cpu())
            labels.append(y.cpu())
    if samples == 0:
        raise ValueError("cannot evaluate on an empty data set")
    scored = mask.reshape(-1, mask.shape[-1]).any(0).cumsum(0).cpu() > 0
    over_time = [c / samples if s else None for c, s in zip(correct_over_time.tolist(), scored.tolist(), strict=True)]
    result: dict[str, Any] = {
        "accuracy": correct / samples,
        "loss": loss / samples,
        "samples": samples,
        "confusion": confusion.tolist(),
        "accuracy_over_time": over_time,
    }
    if keep_scores:
        result.update(scores=torch.cat(scores), labels=torch.cat(labels))
    return result


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
        trainers.append(Trainer(build_network(config, device), task, training, False))
        trainers[-1].fit()
    with ExitStack() as stack:
        networks = [stack.enter_context(t.averaged()) for t in trainers]
        model = networks[0] if members == 1 else Ensemble(networks)
        return evaluate_network(model, task.test, task.mask, train_config.batch_size, keep_scores=True)


def load_network(checkpoint: str | Path | dict[str, Any], device: str | torch.device = "cpu") -> MaelstromNetwork:
    """The trained network stored in a checkpoint (a path or an already loaded payload)."""
    payload = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    network = build_network(NetworkConfig.from_dict(payload["network_config"]), device=device)
    network.load_state_dict(payload["model"])
    return network.eval()
