"""Data sets, delivered as tasks: train and test splits, input shape, class count, readout mask."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .events import EventFormatError
from .nmnist import nmnist_task
from .shd import shd_task
from .synthetic import Randman, SpikeTensorDataset, memory_task, randman_task
from .task import Task, validation_split

TASK_BUILDERS: dict[str, Callable[..., Task]] = {
    "randman": randman_task,
    "randman-memory": memory_task,
    "nmnist": nmnist_task,
    "shd": shd_task,
}
TASKS = tuple(TASK_BUILDERS)
SYNTHETIC = ("randman", "randman-memory")


def load_task(name: str, data_dir: str | Path | None = None, progress: bool = True, **options: Any) -> Task:
    """Load the task called ``name`` (one of :data:`TASKS`) with its builder's ``options``.

    Synthetic tasks need no ``data_dir``; recorded ones (``nmnist``, ``shd``) read it (default
    ``datasets/<name>``) and show a progress bar while their cache is built.
    """
    if name not in TASK_BUILDERS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(TASKS)}")
    if name in SYNTHETIC:
        return TASK_BUILDERS[name](**options)
    return TASK_BUILDERS[name](data_dir, progress=progress, **options)


__all__ = ["TASKS", "Task", "load_task", "validation_split", "Randman", "SpikeTensorDataset", "EventFormatError"]
