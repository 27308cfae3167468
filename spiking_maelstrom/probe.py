"""What a maelstrom run hands the readout: its per-step features (``Probe``) and, closed back
onto the input, the readout's prediction (``Feedback``); ``step_through`` runs both step by step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .neuron import CubaLIFState
from .readouts import AffineReadout

FEATURES = ("trace", "current", "voltage", "adaptation")


@dataclass
class Probe:
    """The readout's per-step features, written by ``Maelstrom.run`` as the steps go.

    ``names`` (from ``FEATURES``) lie side by side in ``out [B, T, len(names) N]``: the spike
    ``trace`` (filtered as ``trace <- decay trace + z``), the synaptic ``current``, the
    membrane ``voltage`` and, in an adaptive maelstrom, the ``adaptation``, after the step.
    ``run`` writes its steps at ``out[:, t:]``, then moves ``t`` on and replaces ``trace`` with the
    new one, so one probe follows a window run in parts.
    """

    names: tuple[str, ...]
    out: Tensor
    trace: Tensor
    decay: float
    t: int = 0

    def __post_init__(self) -> None:
        bad = [name for name in self.names if name not in FEATURES]
        if bad or not self.names:
            raise ValueError(f"probe features must be a non-empty subset of {FEATURES}, got {self.names}")
        n = self.trace.shape[-1]
        if self.out.shape[-1] != len(self.names) * n:
            need = len(self.names) * n
            raise ValueError(f"probe out has {self.out.shape[-1]} features; {self.names} of {n} neurons need {need}")

    def write(self, state: CubaLIFState) -> None:
        """Take one step's state: update the trace and write the features at step ``t``."""
        self.trace = torch.mul(self.trace, self.decay).add_(state.z)
        parts = {"trace": self.trace, "current": state.i, "voltage": state.v, "adaptation": getattr(state, "a", None)}
        for slot, name in zip(self.out[:, self.t].split(self.trace.shape[-1], dim=-1), self.names, strict=True):
            slot.copy_(parts[name])
        self.t += 1

    def advance(self, steps: int, trace: Tensor) -> None:
        """Record that ``steps`` steps were written elsewhere (the fused kernel), ending at ``trace``."""
        self.trace = trace
        self.t += steps


@dataclass
class Feedback:
    """Top-down feedback closed around the maelstrom by ``Maelstrom.run`` (which then needs a probe).

    Each step's input is ``currents_t + p weight``; after the step, ``p`` becomes the softmax of
    the ``readout``'s scores of that step's probe features. ``weight [C, N]``; ``p [B, C]`` is the
    feedback in force; ``out [B, T, C]`` receives the ``p`` each step got, at the probe's step index.
    """

    weight: Tensor
    readout: AffineReadout
    p: Tensor
    out: Tensor

    def current(self, currents: Tensor, t: int) -> Tensor:
        """Step ``t``'s input from its ``currents [B, N]``, recording the feedback it got."""
        self.out[:, t] = self.p
        return torch.addmm(currents, self.p, self.weight)

    def observe(self, features: Tensor) -> None:
        """Take a step's features ``[B, F]``: the next feedback is the softmax of their scores."""
        self.p = torch.softmax(self.readout(features), dim=-1)


def step_through(
    step: Callable[[Tensor, CubaLIFState], CubaLIFState],
    currents: Tensor,
    state: CubaLIFState,
    spikes: Tensor | None = None,
    probe: Probe | None = None,
    feedback: Feedback | None = None,
) -> CubaLIFState:
    """Run ``currents [B, T, N]`` through ``step`` one step at a time from ``state``, writing the
    ``spikes`` and the ``probe`` and closing the ``feedback`` loop when given; returns the last state."""
    for t in range(currents.shape[1]):
        current = currents[:, t] if feedback is None else feedback.current(currents[:, t], probe.t)
        state = step(current, state)
        if spikes is not None:
            spikes[:, t] = state.z
        if probe is not None:
            probe.write(state)
        if feedback is not None:
            feedback.observe(probe.out[:, probe.t - 1])
    return state
