"""Ensembles: several trained Maelstrom networks read as one classifier.

Each member runs its own encoder, maelstrom and readout on the same input; at every step the
ensemble adds the members' log-probabilities (a product of experts). The decision therefore stays
online, step by step, like one network's. Members differ by their seeds: another random network,
another initialisation, another order of the training batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .network import INFERENCE_WINDOW, MaelstromNetwork, WindowOutput


class EnsembleOutput(NamedTuple):
    """Summed per-step log-probabilities ``[B, T, C]`` and each member's own output."""

    logits: Tensor
    members: list[WindowOutput]


class Ensemble(nn.Module):
    """Trained networks with the same inputs and classes, scored together."""

    def __init__(self, members: Sequence[MaelstromNetwork]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one network")
        first = members[0]
        for k, member in enumerate(members[1:], start=1):
            if member.n_classes != first.n_classes or member.encoder.input_shape != first.encoder.input_shape:
                raise ValueError(
                    f"ensemble member {k} takes {member.encoder.input_shape} into {member.n_classes} classes; "
                    f"member 0 takes {first.encoder.input_shape} into {first.n_classes}"
                )
        self.members = nn.ModuleList(members)
        self.n_classes = first.n_classes

    @torch.no_grad()
    def forward(self, x: Tensor, record: bool = False, window: int = INFERENCE_WINDOW) -> EnsembleOutput:
        """Every member over ``x [B, T, *input_shape]``; their log-probabilities added per step."""
        outputs = [member(x, record=record, window=window) for member in self.members]
        logits = torch.stack([torch.log_softmax(out.logits, -1) for out in outputs]).sum(0)
        return EnsembleOutput(logits, outputs)
