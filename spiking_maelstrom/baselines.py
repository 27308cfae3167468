"""Readouts on the binned input alone (no maelstrom): what the maelstrom must beat.

* ``online``: a leaky trace of the input frames (time constant ``tau``), read at every step by a
  ridge readout and decided like a network (``learning.predict``); it runs step by step, as a
  deployed network would.
* ``offline``: each sample's active span (first to last event) cut into ``bins`` equal bins, the
  counts summed per bin and channel, one ridge prediction per sample. Stretching the bins to the
  sample's length needs the end of the sample, so this is an offline upper reference only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .data import Task
from .learning import predict
from .readouts import RidgeReadout

MODES = ("online", "offline")


@dataclass
class InputBaselineConfig:
    """How the input alone is read (see the module docstring for the two modes)."""

    mode: Annotated[
        str, "online: a leaky input trace read at every step; offline: bins stretched to each sample (needs its end)"
    ] = "online"
    tau: Annotated[float, "time constant of the online trace, in seconds"] = 0.25
    bins: Annotated[int, "offline bins per sample"] = 3
    alpha: Annotated[float, "ridge penalty"] = 1.0
    batch_size: Annotated[int, "samples per pass"] = 64

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown baseline mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.tau <= 0 or self.bins < 1 or self.alpha <= 0 or self.batch_size < 1:
            raise ValueError(f"invalid input-baseline settings: {self}")


def input_trace(x: Tensor, decay: float) -> Tensor:
    """Leaky trace ``h_t = decay * h_{t-1} + x_t`` of frames ``x [B, T, ...]``, flattened: ``[B, T, F]``."""
    frames = x.flatten(2).double()
    out = torch.empty_like(frames)
    h = torch.zeros_like(frames[:, 0])
    for t in range(frames.shape[1]):
        h = decay * h + frames[:, t]
        out[:, t] = h
    return out


def stretched_bins(x: Tensor, bins: int) -> Tensor:
    """Counts of ``x [B, T, ...]`` summed in ``bins`` equal bins over each sample's active span
    (first to last non-empty frame): ``[B, bins * F]``. Needs the whole sample (offline)."""
    frames = x.flatten(2).double()
    batch, steps, _ = frames.shape
    active = frames.sum(-1) > 0
    first = torch.where(active.any(1), active.float().argmax(1), torch.zeros(batch, dtype=torch.long))
    last = steps - 1 - active.flip(1).float().argmax(1)
    length = (last - first + 1).clamp_min(1)
    t = torch.arange(steps)
    which = ((t[None] - first[:, None]) * bins).div(length[:, None], rounding_mode="floor")
    inside = (which >= 0) & (which < bins)
    onehot = torch.nn.functional.one_hot(which.clamp(0, bins - 1), bins).double() * inside[..., None]
    return torch.einsum("btk,btf->bkf", onehot, frames).flatten(1)


class InputBaseline:
    """A ridge readout on the binned input alone (see the module docstring)."""

    def __init__(self, task: Task, config: InputBaselineConfig) -> None:
        self.config = config
        self.mask = task.mask
        self.decay = math.exp(-task.dt / config.tau)
        n_channels = math.prod(task.input_shape)
        n_features = n_channels * (config.bins if config.mode == "offline" else 1)
        self.readout = RidgeReadout(n_features, task.n_classes, config.alpha).double()

    def _features(self, x: Tensor) -> Tensor:
        if self.config.mode == "online":
            return input_trace(x, self.decay)
        return stretched_bins(x, self.config.bins)

    def _loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=False)

    @torch.no_grad()
    def fit(self, dataset: Dataset) -> InputBaseline:
        self.readout.reset_statistics()
        for x, y in self._loader(dataset):
            features = self._features(x)
            if self.config.mode == "online":
                self.readout.accumulate(features, y[:, None], self.mask.expand(x.shape[:2]))
            else:
                self.readout.accumulate(features, y)
        self.readout.solve()
        return self

    @torch.no_grad()
    def accuracy(self, dataset: Dataset) -> float:
        correct = total = 0
        for x, y in self._loader(dataset):
            scores = self.readout(self._features(x))
            guess = predict(scores, self.mask) if self.config.mode == "online" else scores.argmax(-1)
            correct += int((guess == y).sum())
            total += len(y)
        if total == 0:
            raise ValueError("cannot score an empty data set")
        return correct / total


def input_baseline_accuracy(task: Task, config: InputBaselineConfig) -> float:
    """Fit the baseline on ``task.train`` and score it on ``task.test``."""
    return InputBaseline(task, config).fit(task.train).accuracy(task.test)
