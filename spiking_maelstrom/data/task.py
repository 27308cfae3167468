"""The task record every data set is delivered as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset


@dataclass
class Task:
    """A classification task for a Maelstrom network.

    ``mask [T]`` marks the time steps whose predictions are trained and scored; ``dt`` is the
    duration of one step in seconds; ``options`` re-create the task with ``load_task``.
    """

    name: str
    train: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    n_classes: int
    mask: Tensor
    dt: float = 1e-3
    options: dict[str, Any] = field(default_factory=dict)


def validation_split(dataset: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    """Split ``dataset`` into (train, validation) subsets by a seeded permutation."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = int(round(fraction * len(dataset)))
    return Subset(dataset, order[n_val:]), Subset(dataset, order[:n_val])
