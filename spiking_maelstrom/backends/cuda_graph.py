"""The graph backend (CUDA only): ``run`` replays a captured CUDA graph of ``GRAPH_CHUNK`` dense
steps, so the time loop costs no Python or launch overhead per step."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..neuron import CubaLIFState
from ..probe import Feedback, Probe
from .dense import Dense

if TYPE_CHECKING:
    from ..maelstrom import Maelstrom

GRAPH_CHUNK = 64  # steps per CUDA-graph replay: one launch, not ~10 kernel launches, per step
GRAPH_CACHE = 4  # captured graphs kept per maelstrom (each holds its chunk of inputs and spikes)


class CudaGraph(Dense):
    """Dense steps; a run without a probe replays captured graphs of them, chunk by chunk (a run
    with a probe steps eagerly: the probe is written between steps)."""

    name = "graph"

    def __init__(self) -> None:
        self._graphs: dict[tuple, ChunkGraph] = {}

    def step(self, m: Maelstrom, current: Tensor, state: CubaLIFState) -> CubaLIFState:
        _require_cuda(m)
        return super().step(m, current, state)

    def run(
        self,
        m: Maelstrom,
        currents: Tensor,
        state: CubaLIFState,
        spikes: Tensor | None,
        probe: Probe | None,
        feedback: Feedback | None,
    ) -> CubaLIFState:
        _require_cuda(m)
        if probe is not None:
            return super().run(m, currents, state, spikes, probe, feedback)
        batch, steps = currents.shape[:2]
        for start in range(0, steps, GRAPH_CHUNK):
            stop = min(start + GRAPH_CHUNK, steps)
            out = spikes[:, start:stop] if spikes is not None else None
            graph = self._graph(m, batch, stop - start, spikes is not None)
            state = graph.replay(currents[:, start:stop], state, out)
        return state

    def clear(self) -> None:
        self._graphs.clear()  # captured graphs point at the buffers being moved or cast

    def _graph(self, m: Maelstrom, batch: int, steps: int, record: bool) -> ChunkGraph:
        key = (batch, steps, record, m.weight.data_ptr(), m.weight.dtype)
        if key not in self._graphs:
            if len(self._graphs) >= GRAPH_CACHE:
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = ChunkGraph(partial(self.step, m), m.init_state(batch), steps, record)
        return self._graphs[key]


def _require_cuda(m: Maelstrom) -> None:
    if not m.weight.is_cuda:
        raise ValueError("backend 'graph' needs the maelstrom on a CUDA device; use 'auto' on the CPU")


class ChunkGraph:
    """A CUDA graph of ``steps`` steps on static buffers, from a ``state`` of the batch: the inputs
    are copied in, the graph replayed, the state and spikes copied out (so callers never see the
    static buffers)."""

    def __init__(
        self,
        step: Callable[[Tensor, CubaLIFState], CubaLIFState],
        state: CubaLIFState,
        steps: int,
        record: bool,
    ) -> None:
        batch, n = state.v.shape
        self.step = step
        self.state = state
        self.currents = state.v.new_zeros(batch, steps, n)
        self.spikes = torch.zeros_like(self.currents) if record else None
        side = torch.cuda.Stream(self.currents.device)
        side.wait_stream(torch.cuda.current_stream(self.currents.device))
        with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
            self._steps()
        torch.cuda.current_stream(self.currents.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._steps()

    def _steps(self) -> None:
        state = self.state
        for t in range(self.currents.shape[1]):
            state = self.step(self.currents[:, t], state)
            if self.spikes is not None:
                self.spikes[:, t].copy_(state.z)
        for static, new in zip(self.state, state, strict=True):
            static.copy_(new)

    def replay(self, currents: Tensor, state: CubaLIFState, spikes: Tensor | None) -> CubaLIFState:
        self.currents.copy_(currents)
        for static, given in zip(self.state, state, strict=True):
            static.copy_(given)
        self.graph.replay()
        if spikes is not None:
            spikes.copy_(self.spikes)
        return type(self.state)(*(s.clone() for s in self.state))
