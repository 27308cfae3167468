"""The auto backend, the default: on the CPU the fused kernel (the event product where numba is
missing or the neurons adapt or the synapses delay: the same spikes, slower), and the sparse
product while more neurons spike than
``fused_cpu.max_rate`` (chosen at each step, and every ``RECHOOSE_STEPS`` steps in ``run``; the
CSR product sums in the same order, so the bits do not depend on the choice); on CUDA, the graph
backend (graphs in ``run``, dense steps in ``step`` and in runs with a probe)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from torch import Tensor

from ..neuron import CubaLIFState
from ..probe import Feedback, Probe, step_through
from . import fused_cpu
from .base import Backend
from .cuda_graph import CudaGraph
from .event import Event
from .fused_cpu import Fused
from .sparse import Sparse, open_omp_region

if TYPE_CHECKING:
    from ..maelstrom import Maelstrom

RECHOOSE_STEPS = 25  # ``run`` on the CPU calls the fused kernel, or chooses the product, per this many steps


class Auto(Backend):
    """Chooses, per step and per part of a run, the backend that suits the device and the firing."""

    name = "auto"

    def __init__(self) -> None:
        self.fused, self.event, self.sparse, self.graph = Fused(), Event(), Sparse(), CudaGraph()
        self._event_ran = False

    def choose(self, m: Maelstrom, z: Tensor | None = None) -> Backend:
        """The backend for a step after the spikes ``z`` (None: before any)."""
        if m.weight.is_cuda:
            return self.graph
        busy = z is not None and m.config.recurrent and float(z.mean()) > fused_cpu.max_rate(m.weight)
        if busy:
            return self.sparse
        return self.fused if fused_cpu.available() and not (m.adaptive or m.delayed) else self.event

    def step(self, m: Maelstrom, current: Tensor, state: CubaLIFState) -> CubaLIFState:
        backend = self.choose(m, state.z)
        if backend is self.event:
            self._event_ran = True
        elif backend is self.sparse and self._event_ran:
            open_omp_region()
            self._event_ran = False
        return backend.step(m, current, state)

    def run(
        self,
        m: Maelstrom,
        currents: Tensor,
        state: CubaLIFState,
        spikes: Tensor | None,
        probe: Probe | None,
        feedback: Feedback | None,
    ) -> CubaLIFState:
        if m.weight.is_cuda:
            return self.graph.run(m, currents, state, spikes, probe, feedback)
        in_kernel = feedback is None or feedback.readout.head is None  # the kernel runs an affine readout only
        for start in range(0, currents.shape[1], RECHOOSE_STEPS):
            part = slice(start, start + RECHOOSE_STEPS)
            out = spikes[:, part] if spikes is not None else None
            if in_kernel and self.choose(m, state.z) is self.fused:
                state = self.fused.run(m, currents[:, part], state, out, probe, feedback)
            else:
                state = step_through(partial(self.step, m), currents[:, part], state, out, probe, feedback)
        return state

    def clear(self) -> None:
        for backend in (self.fused, self.event, self.sparse, self.graph):
            backend.clear()
