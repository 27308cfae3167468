"""The sparse backend: W as a CSR matrix times the spikes, so the cost follows the synapse count
(B synapses) whatever the rate; for dense firing in a sparse network."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .base import Backend, Derived

if TYPE_CHECKING:
    from ..maelstrom import Maelstrom

_OMP_REGION = torch.empty(2 * 32768)  # see open_omp_region


def csr(matrix: Tensor) -> Tensor:
    """``matrix`` as a CSR tensor, with int32 indices where they fit."""
    with warnings.catch_warnings():  # torch calls CSR "beta"; the one product used here is stable
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        full = matrix.to_sparse_csr()
    indices = dict(dtype=torch.int32) if matrix.numel() < 2**31 else {}
    return torch.sparse_csr_tensor(
        full.crow_indices().to(**indices),
        full.col_indices().to(**indices),
        full.values(),
        full.shape,
        check_invariants=False,  # built by to_sparse_csr: valid by construction
    )


def open_omp_region() -> None:
    """Measured (torch 2.13 CPU, 2 threads): after ``embedding_bag`` (the event product), MKL's CSR
    product runs about 2x slower until some operation opens a multi-threaded OpenMP region again.
    Filling 2 x GRAIN_SIZE floats opens one (tens of us) and changes no number."""
    _OMP_REGION.fill_(0.0)


class Sparse(Backend):
    """``current + z W^T`` as the CSR product ``(W z^T)^T``."""

    name = "sparse"

    def __init__(self) -> None:
        self._derived = Derived()

    def sparse_weight(self, m: Maelstrom) -> Tensor:
        """W ``[post, pre]`` as a CSR matrix (int32 indices), built on first use and kept while
        ``m.weight`` is unchanged."""
        return self._derived.get("sparse", m.weight, lambda: csr(m.weight))

    def recurrent(self, m: Maelstrom, current: Tensor, z: Tensor) -> Tensor:
        return torch.sparse.mm(self.sparse_weight(m), z.T).T.add(current)

    def clear(self) -> None:
        self._derived.clear()
