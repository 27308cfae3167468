"""The task record every data set is delivered as."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from .cache import CachedFrames
from .events import EventSource
from .transforms import (
    Blend,
    ChannelMask,
    ChannelShift,
    Compose,
    RandomTransform,
    SpectralTilt,
    TimeJitter,
    TimeStretch,
    Transform,
    random_transforms,
)


@dataclass
class Task:
    """A classification task for a Maelstrom network.

    ``mask [T]`` marks the time steps whose predictions are trained and scored; ``dt`` is the
    duration of one step in seconds; ``options`` re-create the task with ``load_task``;
    ``network_defaults`` and ``train_defaults`` are the ``NetworkConfig`` and ``TrainConfig``
    fields that suit this data (e.g. a convolutional encoder and a smaller encoder learning rate
    for 2-D frames). ``front_end`` is the deterministic transform already applied to every split
    (e.g. ``BandBalance``): a deployment has to apply it to its own input frames too.
    ``blend`` mixes training samples in pairs of one class (``Blend``), before ``augment``.
    ``training_only`` names the options that change the training data alone (augmentation): tasks
    that differ only in them have the same test inputs.
    """

    name: str
    train: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    n_classes: int
    mask: Tensor
    dt: float = 1e-3
    options: dict[str, Any] = field(default_factory=dict)
    network_defaults: dict[str, Any] = field(default_factory=dict)
    train_defaults: dict[str, Any] = field(default_factory=dict)
    augment: Transform | None = None
    front_end: Transform | None = None
    training_only: tuple[str, ...] = ()
    blend: Blend | None = None

    def record(self) -> dict[str, Any]:
        """What re-creates this task and its input (JSON-able): name, options and front end."""
        return {
            "name": self.name,
            "options": self.options,
            "front_end": self.front_end.key() if self.front_end else None,
        }

    def random_transforms(self) -> list[RandomTransform]:
        """The training augmentations' random transforms, whose streams a checkpoint keeps."""
        return random_transforms(self.augment) + ([self.blend] if self.blend is not None else [])


class Augmented(Dataset):
    """``dataset`` with the random ``transform`` applied to each sample's frames as it is read
    (after any cache, so augmentations are never cached). The trainer wraps only its training
    part in it; validation and test data stay as recorded. With ``blend``, a sample is first
    blended with a partner it draws among the samples ``pool`` (indices into ``dataset``;
    default all), so that a training part never borrows from held-out samples."""

    def __init__(
        self,
        dataset: Dataset,
        transform: Transform | None,
        blend: Blend | None = None,
        pool: Sequence[int] | None = None,
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        self.blend = blend
        if blend is not None:
            if not hasattr(dataset, "labels"):
                raise TypeError(f"Blend needs a data set that knows its labels, not {type(dataset).__name__}")
            self.labels = np.asarray(dataset.labels)
            self.partner_groups = getattr(dataset, "groups", {}).get(blend.across)
            self.pool = np.arange(len(dataset)) if pool is None else np.asarray(pool, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        frames, label = self.dataset[index]
        if self.blend is not None:
            partner = self.blend.partner(index, self.labels, self.partner_groups, self.pool)
            if partner is not None:
                frames = self.blend((frames, self.dataset[partner][0]))
        return torch.as_tensor(self.transform(frames) if self.transform is not None else frames), label


class Normalized(Augmented):
    """``dataset`` with the deterministic ``transform`` (a causal front end such as ``BandBalance``)
    applied to every sample as it is read: every split, after any augmentation (see ``augmented``)."""

    def __init__(self, dataset: Dataset, transform: Transform) -> None:
        if transform.random:
            raise ValueError(f"{transform} is random: use it as an augmentation, not a front end")
        super().__init__(dataset, transform)
        self.groups = getattr(dataset, "groups", {})


def augmented(
    dataset: Dataset, transform: Transform | None, blend: Blend | None = None, pool: Sequence[int] | None = None
) -> Dataset:
    """``dataset`` with the random ``transform`` (and ``blend``) applied to each sample, beneath
    any ``Normalized`` front end (which then sees the augmented counts), through ``Subset``s (the
    same indices; a blend's partners come from the outermost subset, or from ``pool`` in it)."""
    if isinstance(dataset, Subset):
        inner = list(dataset.indices) if pool is None else [dataset.indices[i] for i in pool]
        return Subset(augmented(dataset.dataset, transform, blend, inner), dataset.indices)
    if isinstance(dataset, Normalized):
        return Normalized(augmented(dataset.dataset, transform, blend, pool), dataset.transform)
    return Augmented(dataset, transform, blend, pool)


def labels_of(dataset: Dataset) -> np.ndarray:
    """Every sample's label, from the ``labels`` a data set keeps (looked up through ``Subset``s and
    wrappers that keep the wrapped set as ``dataset``), else by reading each sample."""
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    if getattr(dataset, "labels", None) is not None:
        return np.asarray(dataset.labels, dtype=np.int64)
    if isinstance(getattr(dataset, "dataset", None), Dataset):
        return labels_of(dataset.dataset)
    return np.array([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)


def validation_split(dataset: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    """Split ``dataset`` into (train, validation) subsets by a seeded permutation."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = int(round(fraction * len(dataset)))
    return Subset(dataset, order[n_val:]), Subset(dataset, order[:n_val])


def training_augmentation(
    shift: int, jitter: float, tilt: float = 0.0, mask: int = 0, stretch: float = 0.0, seed: int = 0
) -> list[Transform]:
    """The recorded tasks' training augmentation: a random shift of up to ``shift`` channels (pixels
    in x and y for 2-D frames), for channel frames a random spectral tilt of up to ``tilt``
    (log-gain across the channels) and a silenced band of up to ``mask`` channels, a random time
    stretch by a factor of up to ``1 + stretch`` either way, and Gaussian time jitter of ``jitter``
    steps per event."""
    if shift < 0 or jitter < 0 or tilt < 0 or mask < 0 or stretch < 0:
        raise ValueError(
            "augmentation needs shift, jitter, tilt, mask and stretch >= 0, "
            f"got shift={shift}, jitter={jitter}, tilt={tilt}, mask={mask}, stretch={stretch}"
        )
    steps: list[Transform] = [ChannelShift(shift, seed)] if shift else []
    steps += [SpectralTilt(tilt, seed + 2)] if tilt else []
    steps += [ChannelMask(mask, seed + 3)] if mask else []
    steps += [TimeStretch(stretch, seed + 4)] if stretch else []
    return steps + ([TimeJitter(jitter, seed + 1)] if jitter else [])


# The options of ``training_augmentation``, and ``blend``: a recorded task's options that touch training data alone.
AUGMENT_OPTIONS = (*(name for name in inspect.signature(training_augmentation).parameters if name != "seed"), "blend")


# Measured on the real N-MNIST and FSDD subsets: the randman default encoder learning rate (3e-3)
# lets a trained encoder run away (firing rates x30, loss diverging); 3e-4 trains stably.
RECORDED_TRAIN_DEFAULTS = {"encoder_lr": 3e-4}


def default_cache_dir() -> Path:
    """Where transformed recordings are cached: ``$MAELSTROM_CACHE`` or ``~/.cache/spiking-maelstrom``."""
    return Path(os.environ.get("MAELSTROM_CACHE", Path.home() / ".cache" / "spiking-maelstrom"))


def recorded_task(
    name: str,
    sources: dict[str, EventSource],
    transform: Transform,
    dt: float,
    n_classes: int,
    options: dict[str, Any],
    network_defaults: dict[str, Any],
    cache_dir: str | Path | None,
    augment: Sequence[Transform] = (),
    front_end: Transform | None = None,
    blend: Blend | None = None,
) -> Task:
    """A task over recorded event data: each split binned by ``transform`` and read through the
    HDF5 cache (built on first use); ``blend`` and ``augment`` (random transforms) apply to
    training only, and the deterministic ``front_end`` to every split after them (``Normalized``)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = {key: CachedFrames(src, transform, cache) for key, src in sources.items()}
    shape = cached["train"].sample_shape
    split = {key: Normalized(c, front_end) if front_end else c for key, c in cached.items()}
    return Task(
        name=name,
        train=split["train"],
        test=split["test"],
        input_shape=tuple(shape[1:]),
        n_classes=n_classes,
        mask=torch.ones(shape[0], dtype=torch.bool),
        dt=dt,
        options=options,
        network_defaults=network_defaults,
        train_defaults=dict(RECORDED_TRAIN_DEFAULTS),
        augment=Compose(tuple(augment)) if augment else None,
        front_end=front_end,
        training_only=tuple(key for key in options if key in AUGMENT_OPTIONS),
        blend=blend,
    )
