"""K-fold cross-validation on a task's training files.

Small test splits make single test figures coarse (one N-MNIST-small test sample is a whole
point), so every figure is reported next to K-fold cross-validation on the training files. With
``group_by`` (e.g. ``"speaker"``) each fold holds out whole groups, so the score measures
generalisation to speakers never heard in training.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from .checkpoint import load_plain
from .data import Task
from .files import atomic_write
from .progress import bar, note


def dataset_groups(dataset: Dataset, group_by: str) -> np.ndarray:
    """The ``group_by`` label of every sample (e.g. each recording's speaker), from ``dataset.groups``."""
    groups = getattr(dataset, "groups", None) or {}
    if group_by not in groups:
        have = ", ".join(groups) or "none"
        raise ValueError(f"the data set has no {group_by!r} groups to hold out (it has: {have})")
    return np.asarray(groups[group_by])


def fold_indices(
    n_samples: int, folds: int, seed: int = 0, groups: np.ndarray | None = None
) -> list[tuple[list[int], list[int]]]:
    """``(train, held_out)`` index lists for each of ``folds`` folds.

    Without ``groups``: a seeded permutation cut into ``folds`` near-equal parts. With ``groups``:
    the distinct groups are dealt round-robin (in seeded order) onto the folds, so no group is in a
    fold's training part and its held-out part at once; there must be at least ``folds`` groups.
    """
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    generator = torch.Generator().manual_seed(seed)
    if groups is None:
        if n_samples < folds:
            raise ValueError(f"{folds} folds need at least {folds} samples, got {n_samples}")
        order = torch.randperm(n_samples, generator=generator).numpy()
        assignment = np.empty(n_samples, dtype=np.int64)
        assignment[order] = np.arange(n_samples) % folds
    else:
        if len(groups) != n_samples:
            raise ValueError(f"groups has {len(groups)} entries for {n_samples} samples")
        distinct, inverse = np.unique(groups, return_inverse=True)
        if len(distinct) < folds:
            raise ValueError(f"{folds} folds need at least {folds} groups to hold out, got {len(distinct)}")
        dealt = np.empty(len(distinct), dtype=np.int64)
        dealt[torch.randperm(len(distinct), generator=generator).numpy()] = np.arange(len(distinct)) % folds
        assignment = dealt[inverse]
    return [(np.flatnonzero(assignment != k).tolist(), np.flatnonzero(assignment == k).tolist()) for k in range(folds)]


def cross_validate(
    task: Task,
    run: Callable[[Task], float],
    folds: int = 5,
    seed: int = 0,
    group_by: str | None = None,
) -> dict[str, Any]:
    """Score ``run`` on each fold: ``run`` gets a copy of ``task`` whose ``train`` is the fold's
    training part and whose ``test`` is its held-out part (of the training files), and returns an
    accuracy. Returns the per-fold accuracies, their mean and standard deviation."""
    groups = dataset_groups(task.train, group_by) if group_by else None
    scores, held = [], []
    splits = fold_indices(len(task.train), folds, seed, groups)
    for k, (train_idx, held_idx) in enumerate(bar(splits, desc="cross-validation")):
        fold = replace(task, train=Subset(task.train, train_idx), test=Subset(task.train, held_idx))
        scores.append(float(run(fold)))
        held.append(sorted({str(g) for g in groups[held_idx]}) if groups is not None else len(held_idx))
        # A fold can take many minutes: its result as soon as it is known.
        what = f"{group_by} {', '.join(held[-1])}" if groups is not None else f"{held[-1]} samples"
        note(f"fold {k + 1}/{folds} (held out: {what}): accuracy {scores[-1]:.4f}")
    return {
        "folds": folds,
        "group_by": group_by,
        "held_out": held,
        "accuracy": scores,
        "mean": statistics.fmean(scores),
        "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
    }


CV_SCORES = "cv_scores.pt"
CV_SCORES_FORMAT = "spiking-maelstrom-cv-scores/1"
INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def save_fold_scores(path: str | Path, folds: list[dict[str, Any]]) -> Path:
    """Save each fold's held-out ``indices`` (into the training files), ``labels`` and decision
    ``scores`` ``[n, C]`` (``learning.decision_scores``), atomically: with them, runs
    cross-validated on the same folds can be scored as an ensemble afterwards (``ensemble_folds``)."""
    payload = {
        "format": CV_SCORES_FORMAT,
        "folds": [{k: fold[k] for k in ("indices", "labels", "scores")} for fold in folds],
    }
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_fold_scores(path: str | Path) -> list[dict[str, Any]]:
    """The folds saved by :func:`save_fold_scores` (read with ``weights_only=True``: no code in the file
    runs), with a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: cross-validation scores come from 'maelstrom train --folds K'")
    payload = load_plain(path)
    if not isinstance(payload, dict) or payload.get("format") != CV_SCORES_FORMAT:
        raise ValueError(f"{path} holds no cross-validation scores (expected format {CV_SCORES_FORMAT})")
    folds = payload.get("folds")
    if not isinstance(folds, list) or not folds:
        raise ValueError(f"{path}: 'folds' must be a non-empty list of folds")
    for k, fold in enumerate(folds):
        if why := _bad_fold(fold):
            raise ValueError(f"{path}: fold {k} {why}")
    return folds


def _bad_fold(fold: Any) -> str | None:
    """Why ``fold`` is not ``indices`` (n ints), ``labels`` (n ints) and ``scores`` (n x C floats), or None."""
    if not isinstance(fold, dict) or not {"indices", "labels", "scores"} <= set(fold):
        return "must hold indices, labels and scores"
    indices, labels, scores = fold["indices"], fold["labels"], fold["scores"]
    if not isinstance(indices, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        return "indices must be a list of integers"
    integer = isinstance(labels, torch.Tensor) and labels.dtype in INTEGER_DTYPES
    if not integer or labels.shape != (len(indices),):
        return f"labels must be a tensor of {len(indices)} integers, one per index"
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point() or scores.dim() != 2:
        return "scores must be a 2-D float tensor [samples, classes]"
    if scores.shape[0] != len(indices) or scores.shape[1] == 0:
        return f"scores must have {len(indices)} rows (one per index) and at least one class, not {tuple(scores.shape)}"
    return None


def ensemble_folds(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Cross-validated accuracy of an ensemble of ``runs`` (name -> saved folds): per fold, the
    members' decision scores are added, exactly the decision of ``Ensemble``. The runs must hold
    out the same samples in each fold (same fold count, seed and grouping)."""
    (first, folds), *others = runs.items()
    for name, other in others:
        same = len(other) == len(folds) and all(
            a["indices"] == b["indices"] and torch.equal(a["labels"], b["labels"])
            for a, b in zip(folds, other, strict=False)
        )
        if not same:
            raise ValueError(
                f"{name} was cross-validated on other folds than {first}: use the same --folds, --seed and --group-by"
            )
    accuracy = []
    for k, fold in enumerate(folds):
        scores = sum(run[k]["scores"].double() for run in runs.values())
        accuracy.append(float((scores.argmax(-1) == fold["labels"]).double().mean()))
    return {
        "folds": len(folds),
        "held_out": [len(fold["indices"]) for fold in folds],
        "accuracy": accuracy,
        "mean": statistics.fmean(accuracy),
        "std": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
    }
