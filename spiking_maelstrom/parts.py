"""Training parts: what a run holds beside the network, checkpointed by name and called around every batch.

A :class:`Trainer` keeps its parts in a dict ``name -> part``; a checkpoint holds each part's
``state_dict()`` under its name, and a resumed run loads it back, so that it makes the updates of
the uninterrupted run. The parts: the encoder rule (``learning.EncoderRule``), the optimiser with
its learning-rate schedule (:class:`ScheduledAdam`), the augmentations' random streams
(:class:`AugmentationStreams`), and, when configured, the current homeostasis
(``learning.CurrentHomeostasis``) and the weight average (``learning.WeightAverage``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .data.transforms import RandomTransform
    from .network import MaelstromNetwork


class Part:
    """A piece of a run's state with hooks around each training batch (no-ops unless overridden).

    A module or optimiser part lists this class after its torch base, so that its own
    ``state_dict`` and ``load_state_dict`` serve."""

    def state_dict(self) -> Any:
        """What a checkpoint keeps of the part."""
        raise NotImplementedError

    def load_state_dict(self, state: Any) -> None:
        """Continue from what :meth:`state_dict` returned (``ValueError`` if it does not fit)."""
        raise NotImplementedError

    def before_batch(self, step: int, steps: int) -> None:
        """Called before training batch ``step`` (counted over the whole run) of ``steps``."""

    def after_batch(self, network: MaelstromNetwork) -> None:
        """Called after the optimiser's step on a batch."""

    def record(self) -> dict[str, Any]:
        """What the part adds to an epoch's history record."""
        return {}


class ScheduledAdam(torch.optim.Adam, Part):
    """Adam whose learning rates follow ``schedule`` (``TrainConfig.lr_schedule``): ``"constant"``
    leaves them alone; ``"cosine"`` lowers each group's batch by batch along a half cosine, from its
    own rate at the first batch towards 0 after the last one."""

    def __init__(self, groups: list[dict[str, Any]], weight_decay: float, schedule: str) -> None:
        super().__init__(groups, weight_decay=weight_decay)
        self.schedule = schedule
        self.base_lrs = [group["lr"] for group in self.param_groups]

    def before_batch(self, step: int, steps: int) -> None:
        if self.schedule == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * min(step / steps, 1.0)))
            for group, base in zip(self.param_groups, self.base_lrs, strict=True):
                group["lr"] = base * factor


class AugmentationStreams(Part):
    """The random streams of a task's augmentations (``Task.random_transforms``): a resumed run
    draws the augmentations the uninterrupted run would have drawn."""

    def __init__(self, transforms: Sequence[RandomTransform]) -> None:
        self.transforms = list(transforms)

    def state_dict(self) -> list[dict[str, Any]]:
        return [transform.rng_state() for transform in self.transforms]

    def load_state_dict(self, state: list[dict[str, Any]]) -> None:
        if len(state) != len(self.transforms):
            raise ValueError(
                f"the run was trained with {len(state)} random augmentation(s), this task has "
                f"{len(self.transforms)}: resume with the run's own --task-option augmentation settings"
            )
        for transform, stream in zip(self.transforms, state, strict=True):
            transform.set_rng_state(stream)
