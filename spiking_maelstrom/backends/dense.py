"""The dense backend: the recurrent input as one matmul with all of W (cost B N^2, whatever the spikes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from .base import Backend

if TYPE_CHECKING:
    from ..maelstrom import Maelstrom


class Dense(Backend):
    """``current + z W^T`` as one ``addmm``."""

    name = "dense"

    def recurrent(self, m: Maelstrom, current: Tensor, z: Tensor) -> Tensor:
        return self.product(current, z, m.weight_t)
