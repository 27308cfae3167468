"""Continual-learning scenarios: one task cut into a sequence of experiences (van de Ven, Tuytelaars
and Tolias, Nature Machine Intelligence 2022), each experience a ``Task`` of its own.

* ``class-incremental``: the classes, in an order the seed permutes, dealt into E experiences; one
  readout scores every class and no task label is given at test time;
* ``task-incremental``: the same splits with the task label known at test time: a head per
  experience (``MaelstromNetwork.heads``) scores that experience's classes alone;
* ``domain-incremental``: every class in every experience, each from another domain: one speaker
  per experience where the data has speakers (``groups``, e.g. fsdd-shd), else a seeded permutation
  of the input channels per experience (permuted MNIST's construction; the first unpermuted).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from ..crossval import dataset_groups
from ..data import Task
from ..data.task import labels_of

SCENARIOS = ("class-incremental", "domain-incremental", "task-incremental")
DOMAIN_GROUPS = "speaker"


class Relabelled(Dataset):
    """``dataset`` with each label ``y`` replaced by ``mapping[y]`` (a head's own class numbers)."""

    def __init__(self, dataset: Dataset, mapping: dict[int, int]) -> None:
        self.dataset = dataset
        self.mapping = mapping
        self.labels = np.array([mapping[int(y)] for y in labels_of(dataset)], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        frames, _ = self.dataset[index]
        return frames, int(self.labels[index])


class Permuted(Dataset):
    """``dataset`` with the input channels of every frame (flattened) reordered by ``permutation``."""

    def __init__(self, dataset: Dataset, permutation: Tensor) -> None:
        self.dataset = dataset
        self.permutation = permutation

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        frames, label = self.dataset[index]
        frames = torch.as_tensor(frames)
        flat = frames.reshape(frames.shape[0], -1)[:, self.permutation]
        return flat.reshape(frames.shape), label


@dataclass(frozen=True)
class Experience:
    """One step of a scenario: its training and test samples (the task's class numbers), the
    classes it holds and the domain it comes from (a speaker, a permutation or None)."""

    index: int
    train: Dataset
    test: Dataset
    classes: tuple[int, ...]
    domain: str | None = None


@dataclass
class Scenario:
    """A ``kind`` of scenario over ``task``: its ``experiences`` in the order they are learned."""

    kind: str
    task: Task
    experiences: tuple[Experience, ...]
    seed: int = 0

    def __len__(self) -> int:
        return len(self.experiences)

    @property
    def task_labels(self) -> bool:
        """Whether the experience is known at test time (task-incremental: a head per experience)."""
        return self.kind == "task-incremental"

    def experience_task(self, index: int) -> Task:
        """Experience ``index`` as a ``Task``; task-incremental: labels numbered within its head."""
        experience = self.experiences[index]
        if not self.task_labels:
            return replace(self.task, train=experience.train, test=experience.test)
        mapping = {c: k for k, c in enumerate(experience.classes)}
        return replace(
            self.task,
            train=Relabelled(experience.train, mapping),
            test=Relabelled(experience.test, mapping),
            n_classes=len(experience.classes),
        )

    def record(self) -> dict[str, Any]:
        """What describes the scenario (JSON-able)."""
        return {
            "kind": self.kind,
            "task": self.task.record(),
            "experiences": len(self),
            "seed": self.seed,
            "classes": [list(e.classes) for e in self.experiences],
            "domains": [e.domain for e in self.experiences],
            "train_samples": [len(e.train) for e in self.experiences],
            "test_samples": [len(e.test) for e in self.experiences],
        }


def make_scenario(task: Task, kind: str, n_experiences: int, seed: int = 0) -> Scenario:
    """``task`` as a ``kind`` scenario of ``n_experiences`` (see the module's docstring); the class
    order and the permutations come from ``seed``."""
    if kind not in SCENARIOS:
        raise ValueError(f"unknown scenario {kind!r}: choose one of {', '.join(SCENARIOS)}")
    if n_experiences < 1:
        raise ValueError(f"experiences must be >= 1, got {n_experiences}")
    if kind == "domain-incremental":
        experiences = _domains(task, n_experiences, seed)
    else:
        experiences = _class_splits(task, n_experiences, seed)
    for e in experiences:
        if not len(e.train) or not len(e.test):
            raise ValueError(f"{task.name}: experience {e.index} has no training or no test samples")
    return Scenario(kind, task, tuple(experiences), seed)


def _class_splits(task: Task, n_experiences: int, seed: int) -> list[Experience]:
    if n_experiences > task.n_classes:
        raise ValueError(
            f"experiences {n_experiences}: more experiences than {task.name}'s {task.n_classes} classes to deal out"
        )
    order = np.random.default_rng(seed).permutation(task.n_classes)
    train_labels, test_labels = labels_of(task.train), labels_of(task.test)
    experiences = []
    for index, classes in enumerate(np.array_split(order, n_experiences)):
        classes = tuple(sorted(int(c) for c in classes))
        train = Subset(task.train, np.flatnonzero(np.isin(train_labels, classes)).tolist())
        test = Subset(task.test, np.flatnonzero(np.isin(test_labels, classes)).tolist())
        experiences.append(Experience(index, train, test, classes))
    return experiences


def _domains(task: Task, n_experiences: int, seed: int) -> list[Experience]:
    """One speaker per experience where the data has speakers, else permuted input channels."""
    classes = tuple(range(task.n_classes))
    if DOMAIN_GROUPS in (getattr(task.train, "groups", None) or {}):
        train_groups, test_groups = dataset_groups(task.train, DOMAIN_GROUPS), dataset_groups(task.test, DOMAIN_GROUPS)
        speakers = np.unique(train_groups)
        if len(speakers) != n_experiences:
            raise ValueError(
                f"experiences {n_experiences}: {task.name} has {len(speakers)} speakers, one per experience "
                f"(give --experiences {len(speakers)})"
            )
        return [
            Experience(
                index,
                Subset(task.train, np.flatnonzero(train_groups == speaker).tolist()),
                Subset(task.test, np.flatnonzero(test_groups == speaker).tolist()),
                classes,
                f"{DOMAIN_GROUPS} {speaker}",
            )
            for index, speaker in enumerate(speakers)
        ]
    channels = int(np.prod(task.input_shape))
    experiences = []
    for index in range(n_experiences):
        generator = torch.Generator().manual_seed(seed * 1000 + index)
        permutation = torch.arange(channels) if index == 0 else torch.randperm(channels, generator=generator)
        domain = "identity" if index == 0 else f"permutation {index}"
        train, test = Permuted(task.train, permutation), Permuted(task.test, permutation)
        experiences.append(Experience(index, train, test, classes, domain))
    return experiences
