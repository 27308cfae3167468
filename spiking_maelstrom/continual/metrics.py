"""The continual-learning metrics of Lopez-Paz and Ranzato (NeurIPS 2017) from the accuracy matrix.

``R[i][j]`` is the accuracy on experience j's test samples after learning experiences 0..i, and
``b[j]`` that of the network before it learned anything. With E experiences:

* ACC = mean_j R[E-1][j], the average accuracy after the last experience;
* BWT = mean_{j<E-1} (R[E-1][j] - R[j][j]), backward transfer: negative is forgetting;
* FWT = mean_{j>0} (R[j-1][j] - b[j]), forward transfer: what the earlier experiences give a new one
  before it is learned;
* the ACC curve: after experience i, the mean of R[i][j] over the experiences seen, j <= i.

A ``joint`` run learns once, all experiences together: one row, ACC only.
"""

from __future__ import annotations

from statistics import fmean
from typing import Any


def summary(matrix: list[list[float]], initial: list[float], joint: bool = False) -> dict[str, Any]:
    """ACC, BWT, FWT and the ACC curve of ``matrix`` (a row after each experience learned; a run
    stopped after k < E experiences: over the experiences seen) and ``initial``; ``joint``: the one
    row of a run that learned every experience at once."""
    k, n = len(matrix), len(initial)
    if not k or k > n or any(len(row) != n for row in matrix) or (joint and k != 1):
        raise ValueError(f"an accuracy matrix of {k} rows for {n} experiences: give one row per experience learned")
    last = matrix[-1]
    if joint:
        return {"acc": fmean(last), "bwt": None, "fwt": None, "acc_curve": [fmean(last)]}
    return {
        "acc": fmean(last[:k]),
        "bwt": fmean(last[j] - matrix[j][j] for j in range(k - 1)) if k > 1 else None,
        "fwt": fmean(matrix[j - 1][j] - initial[j] for j in range(1, min(k + 1, n))) if n > 1 else None,
        "acc_curve": [fmean(row[: i + 1]) for i, row in enumerate(matrix)],
    }
