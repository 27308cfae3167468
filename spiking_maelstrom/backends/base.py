"""The interface every simulation backend implements, and what several of them share."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor

from ..neuron import AdaptiveLIFState, CubaLIFState, MaelstromState, adaptive_lif_step, cuba_lif_step
from ..probe import Feedback, Probe, step_through
from . import triton_cell

if TYPE_CHECKING:
    from ..maelstrom import Maelstrom

Value = TypeVar("Value")


class Backend:
    """How a maelstrom computes its steps: ``step`` one, ``run`` a window of them.

    A step adds the recurrent input of the last spikes, ``z W^T``, to the input current
    (:meth:`recurrent`, the part the product backends differ in) and updates the neurons; ``run``
    steps through the window. Backends hold only what they derive from the maelstrom's buffers
    (kept while those are unchanged, dropped by :meth:`clear`), never the maelstrom itself.
    """

    name: str

    def recurrent(self, m: Maelstrom, current: Tensor, z: Tensor) -> Tensor:
        """``current + z W^T`` for the spikes ``z [B, N]``."""
        raise NotImplementedError

    def product(self, current: Tensor, spikes: Tensor, weight_t: Tensor) -> Tensor:
        """``current + spikes weight_t`` for any spikes and rows (the delayed synapses' product):
        one matmul here, a gather of the spiking rows in the event backend."""
        return torch.addmm(current, spikes, weight_t)

    def step(self, m: Maelstrom, current: Tensor, state: CubaLIFState) -> CubaLIFState:
        """One step from ``state`` on the input ``current [B, N]`` (checked and cast by the maelstrom)."""
        if isinstance(state, MaelstromState):
            return extended_step(self, m, current, state)
        if m.config.recurrent:
            current = self.recurrent(m, current, state.z)
        return neuron_step(m, current, state)

    def run(
        self,
        m: Maelstrom,
        currents: Tensor,
        state: CubaLIFState,
        spikes: Tensor | None,
        probe: Probe | None,
        feedback: Feedback | None,
    ) -> CubaLIFState:
        """Run ``currents [B, T, N]`` from ``state``, writing ``spikes [B, T, N]`` and the probe when
        given and closing the feedback loop; returns the last state."""
        return step_through(partial(self.step, m), currents, state, spikes, probe, feedback)

    def clear(self) -> None:
        """Drop what was derived from the maelstrom's buffers (they are being moved or cast)."""


def extended_step(backend: Backend, m: Maelstrom, current: Tensor, state: MaelstromState) -> MaelstromState:
    """One step of a maelstrom whose neurons adapt or whose synapses delay: with delays, the
    recurrent input is ``backend``'s product of the spikes in flight ``[B, D N]`` with the stacked
    W^T of each delay (``Maelstrom.delayed_weight_t``), else its product of the last spikes."""
    c = m.config
    if c.recurrent and m.delayed:
        current = backend.product(current, torch.cat([state.z, state.history], 1), m.delayed_weight_t)
    elif c.recurrent:
        current = backend.recurrent(m, current, state.z)
    history = torch.cat([state.z, state.history[:, : -m.n_neurons]], 1) if m.delayed else state.history
    if not m.adaptive:
        cell = neuron_step(m, current, CubaLIFState(*state[:3]))
        return MaelstromState(*cell, a=state.a, history=history)
    cell = adaptive_lif_step(
        current, AdaptiveLIFState(*state[:4]), m.beta, m.alpha, m.rho, c.adaptation, c.v_threshold, c.v_reset, c.v_leak
    )
    return MaelstromState(*cell, history=history)


def neuron_step(m: Maelstrom, current: Tensor, state: CubaLIFState) -> CubaLIFState:
    """The CubaLIF update on the total input ``current``: one Triton kernel on CUDA where Triton is
    importable (the same bits), else ``neuron.cuba_lif_step``."""
    c = m.config
    if current.is_cuda and triton_cell.available():
        return triton_cell.cuba_lif_step(current, state, m.beta, m.alpha, m.potentials)
    return cuba_lif_step(current, state, m.beta, m.alpha, c.v_threshold, c.v_reset, c.v_leak)


class Derived:
    """Values built from a buffer (the CSR copies of W, the fused kernel's ``1 - beta``), each kept
    while the buffer it comes from is unchanged: the same storage, version, device and dtype."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[tuple, object]] = {}

    def get(self, name: str, source: Tensor, build: Callable[[], Value]) -> Value:
        """``build()``, or what it gave last time for ``name`` if ``source`` is unchanged since."""
        key = (source.data_ptr(), source._version, source.device, source.dtype)
        if name not in self._values or self._values[name][0] != key:
            self._values[name] = (key, build())
        return self._values[name][1]

    def clear(self) -> None:
        self._values.clear()
