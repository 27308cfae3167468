"""Embedded synthetic spike tasks, generated deterministically on the fly (no download).

``randman``: Randman-style classification (after Zenke & Vogels 2021). Each class is a random
smooth manifold of dimension ``manifold_dim`` embedded in ``n_channels`` dimensions; a sample is a
random point on its class's manifold, and each channel fires one spike at a time proportional to
its coordinate. Difficulty knobs: ``manifold_dim`` (1 is easy; 2-3 are hard), ``spread`` (the part
``[0, spread]^D`` of each manifold that samples come from: 1 is the original Randman, where only
spike timing tells classes apart; small values give every class a characteristic spatial pattern
per frame), ``jitter`` (spike-time noise in steps) and Poisson ``noise_channels``/``noise_rate``.

``randman-memory``: needs memory across time. A pattern of the target class is followed by a silent
(noisy) delay and a distractor pattern of another class; the label is the *first* pattern's class
and is read out only while the distractor plays. Without recurrence the first pattern has faded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .task import Task


class SpikeTensorDataset(Dataset):
    """Spike trains held in memory as ``bool [samples, steps, channels]`` with integer labels."""

    def __init__(self, spikes: Tensor, labels: Tensor) -> None:
        if spikes.shape[0] != labels.shape[0]:
            raise ValueError(f"{spikes.shape[0]} samples but {labels.shape[0]} labels")
        self.spikes = spikes.to(torch.bool)
        self.labels = labels.to(torch.long)

    def __len__(self) -> int:
        return self.spikes.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.spikes[index].to(torch.float32), self.labels[index]


@dataclass(frozen=True)
class Randman:
    """Random smooth manifolds, one per class, and spike trains drawn from them."""

    n_classes: int = 10
    n_channels: int = 100
    manifold_dim: int = 1
    alpha: float = 2.0
    n_modes: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_classes < 2 or self.n_channels < 1 or self.manifold_dim < 1 or self.n_modes < 1:
            raise ValueError(f"invalid Randman sizes: {self}")

    def _coefficients(self) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        shape = (self.n_classes, self.n_channels, self.manifold_dim, self.n_modes)
        modes = torch.arange(1, self.n_modes + 1, dtype=torch.float64)
        amplitude = torch.rand(shape, generator=g, dtype=torch.float64) / modes**self.alpha
        phase = 2 * math.pi * torch.rand(shape, generator=g, dtype=torch.float64)
        return amplitude, phase

    def _raw(self, points: Tensor, labels: Tensor) -> Tensor:
        amplitude, phase = self._coefficients()
        modes = torch.arange(1, self.n_modes + 1, dtype=torch.float64)
        # points [S, D] -> angle [S, 1, D, M]; coefficients of each sample's class [S, U, D, M]
        angle = 2 * math.pi * points[:, None, :, None] * modes
        return (amplitude[labels] * torch.sin(angle + phase[labels])).sum((2, 3))

    def coordinates(self, points: Tensor, labels: Tensor) -> Tensor:
        """Manifold coordinates in [0, 1] of ``points [S, D]`` on their classes' manifolds: ``[S, U]``."""
        reference = torch.rand(512, self.manifold_dim, generator=torch.Generator().manual_seed(self.seed + 1))
        reference = reference.to(torch.float64)
        low = torch.empty(self.n_classes, self.n_channels, dtype=torch.float64)
        high = torch.empty_like(low)
        for c in range(self.n_classes):
            ref = self._raw(reference, torch.full((512,), c))
            low[c], high[c] = ref.min(0).values, ref.max(0).values
        raw = self._raw(points, labels)
        return ((raw - low[labels]) / (high[labels] - low[labels])).clamp(0, 1)

    def spike_times(
        self, labels: Tensor, n_steps: int, jitter: float, generator: torch.Generator, spread: float = 1.0
    ) -> Tensor:
        """One spike time (integer step) per channel for each label: ``[S, U]``; points are drawn
        from the part ``[0, spread]^D`` of each manifold."""
        points = spread * torch.rand(len(labels), self.manifold_dim, generator=generator, dtype=torch.float64)
        times = self.coordinates(points, labels) * (n_steps - 1)
        if jitter > 0:
            times = times + jitter * torch.randn(times.shape, generator=generator, dtype=torch.float64)
        return times.round().clamp(0, n_steps - 1).long()


def _raster(times: Tensor, n_steps: int) -> Tensor:
    spikes = torch.zeros(times.shape[0], n_steps, times.shape[1], dtype=torch.bool)
    spikes.scatter_(1, times[:, None, :], True)
    return spikes


def _balanced_labels(n_classes: int, per_class: int, generator: torch.Generator) -> Tensor:
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return labels[torch.randperm(len(labels), generator=generator)]


def _split_generator(seed: int, split: str) -> torch.Generator:
    offsets = {"train": 1000, "test": 2000}
    if split not in offsets:
        raise ValueError(f"unknown split {split!r}: use 'train' or 'test'")
    return torch.Generator().manual_seed(seed * 7919 + offsets[split])


def randman_dataset(
    split: str,
    randman: Randman,
    samples_per_class: int,
    n_steps: int = 100,
    jitter: float = 0.0,
    spread: float = 1.0,
    noise_channels: int = 0,
    noise_rate: float = 0.0,
) -> SpikeTensorDataset:
    """The ``randman`` classification task: one pattern spread over ``n_steps``, optionally
    followed by ``noise_channels`` channels of Poisson noise at ``noise_rate`` spikes per step."""
    g = _split_generator(randman.seed, split)
    labels = _balanced_labels(randman.n_classes, samples_per_class, g)
    spikes = _raster(randman.spike_times(labels, n_steps, jitter, g, spread), n_steps)
    noise = torch.rand(len(labels), n_steps, noise_channels, generator=g) < noise_rate
    return SpikeTensorDataset(torch.cat([spikes, noise], 2), labels)


def memory_dataset(
    split: str,
    randman: Randman,
    samples_per_class: int,
    pattern_steps: int = 25,
    delay_steps: int = 50,
    noise_rate: float = 0.01,
    jitter: float = 0.0,
    spread: float = 1.0,
) -> SpikeTensorDataset:
    """The ``randman-memory`` task: target pattern, noisy delay, distractor; label = target class."""
    g = _split_generator(randman.seed, split)
    labels = _balanced_labels(randman.n_classes, samples_per_class, g)
    shift = torch.randint(1, randman.n_classes, labels.shape, generator=g)
    distractor = (labels + shift) % randman.n_classes
    first = _raster(randman.spike_times(labels, pattern_steps, jitter, g, spread), pattern_steps)
    second = _raster(randman.spike_times(distractor, pattern_steps, jitter, g, spread), pattern_steps)
    delay = torch.zeros(len(labels), delay_steps, randman.n_channels, dtype=torch.bool)
    spikes = torch.cat([first, delay, second], 1)
    noise = torch.rand(spikes.shape, generator=g) < noise_rate
    return SpikeTensorDataset(spikes | noise, labels)


def memory_mask(pattern_steps: int = 25, delay_steps: int = 50) -> Tensor:
    """Readout mask of ``randman-memory``: only the distractor's steps count."""
    mask = torch.zeros(2 * pattern_steps + delay_steps, dtype=torch.bool)
    mask[pattern_steps + delay_steps :] = True
    return mask


def randman_task(
    manifold_dim: int = 1,
    n_channels: int = 300,
    n_steps: int = 100,
    spread: float = 0.2,
    jitter: float = 2.0,
    noise_channels: int = 300,
    noise_rate: float = 0.03,
    train_per_class: int = 200,
    test_per_class: int = 50,
    seed: int = 0,
) -> Task:
    """The default task, ``randman``: 10 classes, 100 steps of 1 ms, 300 pattern channels beside 300
    channels of noise. Points come from a fifth of each manifold, so every frame carries class
    evidence that an encoder can learn to pick out of the noise (the encoder matters here)."""
    opts = dict(locals())
    randman = Randman(n_channels=opts["n_channels"], manifold_dim=opts["manifold_dim"], seed=opts["seed"])
    shape = {k: opts[k] for k in ("n_steps", "jitter", "spread", "noise_channels", "noise_rate")}
    return Task(
        name="randman",
        train=randman_dataset("train", randman, opts["train_per_class"], **shape),
        test=randman_dataset("test", randman, opts["test_per_class"], **shape),
        input_shape=(randman.n_channels + opts["noise_channels"],),
        n_classes=randman.n_classes,
        mask=torch.ones(opts["n_steps"], dtype=torch.bool),
        options=opts,
    )


def memory_task(
    manifold_dim: int = 1,
    n_channels: int = 100,
    pattern_steps: int = 25,
    delay_steps: int = 50,
    noise_rate: float = 0.01,
    spread: float = 0.2,
    jitter: float = 0.0,
    train_per_class: int = 200,
    test_per_class: int = 50,
    seed: int = 0,
) -> Task:
    """``randman-memory``: classify the first of two patterns, read out during the second."""
    opts = dict(locals())
    randman = Randman(n_channels=opts["n_channels"], manifold_dim=opts["manifold_dim"], seed=opts["seed"])
    timing = dict(pattern_steps=opts["pattern_steps"], delay_steps=opts["delay_steps"])
    split = {
        name: memory_dataset(
            name,
            randman,
            opts[f"{name}_per_class"],
            **{k: opts[k] for k in ("noise_rate", "jitter", "spread")},
            **timing,
        )
        for name in ("train", "test")
    }
    return Task(
        name="randman-memory",
        train=split["train"],
        test=split["test"],
        input_shape=(randman.n_channels,),
        n_classes=randman.n_classes,
        mask=memory_mask(**timing),
        options=opts,
    )
