"""Data sets, delivered as tasks: train and test splits, input shape, class count, readout mask."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_type_hints

from ..settings import Setting
from .events import EventFormatError
from .nmnist import nmnist_task
from .pairs import nmnist_pairs_task, shd_pairs_task
from .shd import shd_task
from .synthetic import Randman, SpikeTensorDataset, memory_task, randman_task
from .task import Task, validation_split

TASK_BUILDERS: dict[str, Callable[..., Task]] = {
    "randman": randman_task,
    "randman-memory": memory_task,
    "nmnist": nmnist_task,
    "shd": shd_task,
    "shd-pairs": shd_pairs_task,
    "nmnist-pairs": nmnist_pairs_task,
}
TASKS = tuple(TASK_BUILDERS)
SYNTHETIC = ("randman", "randman-memory")


def task_settings(name: str) -> list[Setting]:
    """The options of task ``name``: its builder's keyword parameters, typed by their annotations."""
    builder = TASK_BUILDERS[name]
    hints = get_type_hints(builder)
    parameters = inspect.signature(builder).parameters.values()
    return [Setting(p.name, hints[p.name], p.default, "") for p in parameters]


def load_task(name: str, data_dir: str | Path | None = None, **options: Any) -> Task:
    """Load the task called ``name`` (one of :data:`TASKS`) with its builder's ``options``.

    Synthetic tasks need no ``data_dir``; recorded ones (``nmnist``, ``shd``) read it (default
    ``datasets/<name>``) and show a progress bar while their cache is built (``progress.verbosity``).
    """
    if name not in TASK_BUILDERS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(TASKS)}")
    known = [s.key for s in task_settings(name)]
    if unknown := sorted(set(options) - set(known)):
        raise ValueError(f"unknown option(s) for {name}: {unknown}; known: {sorted(known)}")
    if name in SYNTHETIC:
        return TASK_BUILDERS[name](**options)
    return TASK_BUILDERS[name](data_dir, **options)


__all__ = [
    "TASKS",
    "Task",
    "load_task",
    "task_settings",
    "validation_split",
    "Randman",
    "SpikeTensorDataset",
    "EventFormatError",
]
