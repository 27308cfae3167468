"""Simulation backends: how a maelstrom computes the recurrent input ``z W^T`` and its steps.

All give the same spikes up to float summation order; ``event`` and ``fused`` the same bits:

- ``dense``: one matmul with all of W (cost B N^2, whatever the spikes);
- ``event``: each sample adds up the rows of W^T of the neurons it saw spike (one
  ``embedding_bag``), so the cost follows the spike count (spikes x N);
- ``sparse``: W as a CSR matrix times the spikes: cost follows the synapse count (B synapses),
  whatever the rate; for dense firing in a sparse network;
- ``fused`` (CPU only): the event product and the neuron update in one compiled kernel
  (``fused_cpu``, numba) that runs a whole window of steps per call, one sample per thread;
- ``graph`` (CUDA only): ``run`` replays a captured CUDA graph of ``GRAPH_CHUNK`` dense steps,
  so the time loop costs no Python or launch overhead per step;
- ``auto``: ``fused`` on the CPU and ``sparse`` on busy steps, ``graph`` on CUDA (see ``auto``).

Each is a :class:`Backend`; a maelstrom holds one, made by :func:`make_backend`.
"""

from __future__ import annotations

from .auto import Auto
from .base import Backend
from .cuda_graph import CudaGraph
from .dense import Dense
from .event import Event
from .fused_cpu import Fused
from .sparse import Sparse

KINDS: dict[str, type[Backend]] = {kind.name: kind for kind in (Auto, Dense, Event, Sparse, Fused, CudaGraph)}
BACKENDS = tuple(KINDS)


def make_backend(name: str) -> Backend:
    """A new backend of kind ``name`` (one of ``BACKENDS``), its caches empty."""
    if name not in KINDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    return KINDS[name]()
