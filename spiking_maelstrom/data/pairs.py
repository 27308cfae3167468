"""Memory tasks built from real recordings: ordered pairs of one split's samples.

A pair sample is ``first``, ``gap`` silent steps, then ``second``, a recording of another class
spoken by the same speaker where the data set knows speakers (so holding out speakers holds out
whole pairs). The readout window is the second recording's steps. ``target="first"`` asks for
the first recording's class while the second plays (delayed recall with a distractor);
``target="pair"`` for the ordered pair ``first * C + second``. A bag of the sample's frames holds
both recordings but not their order, so it can name the first at most half the time: the task
needs memory of what came first, across the gap and the distractor.

Pairs are drawn once per split from a seeded generator, each recording first in
``pairs_per_recording`` pairs; the train and test splits are paired separately (no recording of
one split ever appears in the other).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .nmnist import DEFAULT_ROOT as NMNIST_ROOT
from .nmnist import nmnist_task
from .shd import DEFAULT_ROOT as SHD_ROOT
from .shd import shd_task
from .task import Normalized, Task

TARGETS = ("first", "pair")


class RecordingPairs(Dataset):
    """Ordered pairs of ``recordings`` (a data set with ``labels``, optionally ``groups``), frames
    ``[2 T + gap, ...]`` with the label that ``target`` names (see the module docstring)."""

    def __init__(
        self,
        recordings: Dataset,
        gap_steps: int,
        target: str = "first",
        pairs_per_recording: int = 1,
        seed: int = 0,
        group_by: str | None = "speaker",
    ) -> None:
        if target not in TARGETS:
            raise ValueError(f"unknown pair target {target!r}: choose one of {', '.join(TARGETS)}")
        if gap_steps < 0 or pairs_per_recording < 1:
            raise ValueError(
                f"pairs need gap_steps >= 0 and pairs_per_recording >= 1, got {gap_steps}, {pairs_per_recording}"
            )
        self.recordings, self.gap_steps, self.target = recordings, gap_steps, target
        labels = np.asarray(recordings.labels)
        groups = getattr(recordings, "groups", {}).get(group_by) if group_by else None
        groups = np.zeros(len(labels), dtype=np.int64) if groups is None else np.asarray(groups)
        self.first = np.tile(np.arange(len(labels)), pairs_per_recording)
        self.second = partners(labels, groups, self.first, np.random.default_rng(seed))
        self.n_base = int(labels.max()) + 1
        first, second = labels[self.first], labels[self.second]
        self.labels = first if target == "first" else first * self.n_base + second
        self.groups = {name: np.asarray(v)[self.first] for name, v in getattr(recordings, "groups", {}).items()}

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        first = torch.as_tensor(self.recordings[int(self.first[index])][0])
        second = torch.as_tensor(self.recordings[int(self.second[index])][0])
        gap = first.new_zeros((self.gap_steps, *first.shape[1:]))
        return torch.cat([first, gap, second]), int(self.labels[index])


def partners(labels: np.ndarray, groups: np.ndarray, first: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each index in ``first``, a random recording of another class in the same group."""
    second = np.empty_like(first)
    for k, i in enumerate(first):
        pool = np.flatnonzero((groups == groups[i]) & (labels != labels[i]))
        if pool.size == 0:
            raise ValueError(f"recording {i} (class {labels[i]}) has no partner of another class in its group")
        second[k] = pool[rng.integers(pool.size)]
    return second


def pair_mask(steps: int, gap_steps: int) -> Tensor:
    """The readout window of a pair of ``steps``-step recordings: the second recording's steps."""
    mask = torch.zeros(2 * steps + gap_steps, dtype=torch.bool)
    mask[steps + gap_steps :] = True
    return mask


def _paired(split: Dataset, **pairing: object) -> Dataset:
    """``split`` paired beneath its front end, which then runs over the whole pair as a stream."""
    if isinstance(split, Normalized):
        return Normalized(RecordingPairs(split.dataset, **pairing), split.transform)
    return RecordingPairs(split, **pairing)


def paired_task(
    base: Task, name: str, gap_steps: int, target: str, pairs_per_recording: int, seed: int, options: dict
) -> Task:
    """``base`` (a task of single recordings) as the pair task ``name`` (see the module docstring)."""
    pairing = dict(gap_steps=gap_steps, target=target, pairs_per_recording=pairs_per_recording)
    train = _paired(base.train, seed=seed, **pairing)
    test = _paired(base.test, seed=seed + 1, **pairing)
    steps = int(base.mask.numel())
    n_classes = base.n_classes if target == "first" else base.n_classes**2
    return replace(
        base, name=name, train=train, test=test, n_classes=n_classes, mask=pair_mask(steps, gap_steps), options=options
    )


def _pair_options(given: dict, data_dir: str | Path | None, default_root: Path) -> dict:
    """A pair builder's own arguments as the task's options (``load_task`` re-creates it from them)."""
    options = {k: v for k, v in given.items() if k != "data_dir"}
    options["data_dir"] = str((Path(data_dir) if data_dir is not None else default_root).resolve())
    return options


def shd_pairs_task(
    data_dir: str | Path | None = None,
    dt_ms: float = 20.0,
    n_steps: int = 40,
    channel_bin: int = 1,
    gap_steps: int = 5,
    target: str = "first",
    pairs_per_recording: int = 1,
    pair_seed: int = 0,
    shift: int = 0,
    balance: int = 0,
    cache_dir: str | Path | None = None,
) -> Task:
    """``shd-pairs``: ordered pairs of SHD-layout recordings of one speaker (see the module
    docstring), each ``n_steps`` frames of ``dt_ms`` ms (40 x 20 ms covers a spoken digit), with
    ``gap_steps`` silent frames between; the readout window is the second recording. ``shift`` and
    ``balance`` as for ``shd``."""
    options = _pair_options(dict(locals()), data_dir, SHD_ROOT)
    base = shd_task(data_dir, dt_ms, n_steps, channel_bin, shift=shift, balance=balance, cache_dir=cache_dir)
    return paired_task(base, "shd-pairs", gap_steps, target, pairs_per_recording, pair_seed, options)


def nmnist_pairs_task(
    data_dir: str | Path | None = None,
    dt_ms: float = 10.0,
    n_steps: int = 32,
    downsample: int = 1,
    gap_steps: int = 4,
    target: str = "first",
    pairs_per_recording: int = 1,
    pair_seed: int = 0,
    shift: int = 0,
    cache_dir: str | Path | None = None,
) -> Task:
    """``nmnist-pairs``: ordered pairs of N-MNIST recordings of two classes (see the module
    docstring), each ``n_steps`` frames of ``dt_ms`` ms (32 x 10 ms covers the three saccades),
    ``gap_steps`` empty frames between; the readout window is the second recording."""
    options = _pair_options(dict(locals()), data_dir, NMNIST_ROOT)
    base = nmnist_task(data_dir, dt_ms, n_steps, downsample, shift=shift, cache_dir=cache_dir)
    return paired_task(base, "nmnist-pairs", gap_steps, target, pairs_per_recording, pair_seed, options)
