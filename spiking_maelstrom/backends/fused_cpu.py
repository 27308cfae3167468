"""The maelstrom's time loop as one compiled CPU kernel (numba): event product and CubaLIF update fused.

In PyTorch a CPU step costs a recurrent product and about ten small operator calls, each with its
own dispatch and pass over memory. This kernel runs a whole window of steps in one call, one
sample per thread: each step it adds up the rows of W^T of the neurons that spiked, in neuron
order (as the ``event`` backend's ``embedding_bag`` does), then updates every neuron with the
operations of ``neuron.cuba_lif_step`` in the same order, each rounded on its own (numba contracts
nothing into a fused multiply-add). Its spikes, currents and voltages are therefore those of the
``event`` backend bit for bit (a zero may differ in sign). It can also write the readout's
per-step features (trace, current, voltage) as it goes, so a window costs no Python per step,
and close a feedback loop (``probe.Feedback``): each step's input then takes the softmax of an
affine readout of the step before. The loop's sums are its own (the readout's dot products may
be reordered to vectorise), so with a loop the bits match the other backends' up to rounding.

The rows of W^T are read as CSR (only the synapses), unless W is dense and small enough to stay
in cache (:func:`dense_rows`): then as dense rows, with SIMD adds. The CSR's indices are read as
unsigned integers: numba checks every signed index for wrap-around (Python's negative indices),
which in the scatter of a CSR row cost a third of the kernel's time at N = 4000; and they are 16
bits wide where N allows it (:func:`csr_rows`).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..neuron import CubaLIFState
from ..probe import FEATURES, Feedback, Probe
from .base import Backend, Derived
from .sparse import csr

if TYPE_CHECKING:
    from ..maelstrom import Maelstrom

DENSE_ROWS_BYTES = 32 * 2**20
DENSE_ROWS_DENSITY = 0.2


def dense_rows(weight: Tensor, density: float) -> bool:
    """Whether the kernel should read the rows of ``W^T`` dense rather than as CSR: when W fits in
    ``DENSE_ROWS_BYTES`` and more than ``DENSE_ROWS_DENSITY`` of it is non-zero. Measured on the
    2-core EPYC (numba 0.68, float32, batch 64, T 250, 1 to 3 % firing): at 10 % density CSR rows
    took 0.019 against 0.019 to 0.029 s at N = 500, 0.063 against 0.064 s at N = 1000, 0.19 to
    0.21 against 0.25 to 0.31 s at N = 2000, 0.52 against 1.05 s at N = 4000; at 30 % density
    0.065 against 0.060 s (N = 1000) and 0.22 against 0.18 s (N = 2000); at 100 %, 0.11 against
    0.065 s (N = 1000)."""
    return weight.numel() * weight.element_size() <= DENSE_ROWS_BYTES and density > DENSE_ROWS_DENSITY


def max_rate(weight: Tensor) -> float:
    """The fraction of neurons spiking in a step above which a CSR product of W (whose cost does
    not grow with the spikes) beats this kernel. Measured on the 2-core EPYC (batch 64, 10 %
    density, CSR rows; ms per step, kernel against product): N = 1000 0.52 / 0.61 at 15.6 %, 0.75 /
    0.67 at 28.7 %; N = 2000 1.44 / 2.30 at 13.3 %, 2.78 / 1.83 at 25.7 %; N = 4000 6.87 / 10.45
    at 18.2 %, 12.75 / 7.52 at 30.7 %; N = 8000 34.0 / 41.5 at 13.2 %, 68.6 / 40.6 at 19.3 %; with
    16-bit indices (:func:`csr_rows`), N = 8000, 32.0 / 33.7 at 13.2 %, 35.4 / 30.8 at 16.5 %.
    (With a feedback loop the two paths round differently: a changed threshold changes training.)"""
    return 0.17 if weight.numel() * weight.element_size() <= 64 * 2**20 else 0.15


def csr_rows(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A CSR matrix ``[rows, N]`` as the kernel reads it, ``(indptr, indices, values)``, its column
    indices in 16 bits when ``N <= 2**16``: 6 bytes per synapse instead of 8, which counts when the
    rows no longer fit in cache (measured, 10 % density, batch 64 x 250 steps, spikes recorded:
    N = 8000 7.7 to 8.1 against 8.9 to 9.0 s with 32-bit indices; N = 4000 the same)."""
    indices = matrix.col_indices()
    if matrix.shape[1] <= 2**16:
        indices = torch.from_numpy(indices.numpy().astype(np.uint16))
    return matrix.crow_indices(), indices, matrix.values()


@cache
def available() -> bool:
    """Whether numba can be imported here (it is a dependency; without it the ``event`` backend,
    which gives the same spikes, runs instead)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def _kernel() -> Any:
    """The compiled window loop; numba is imported on first use, not with the package."""
    from .fused_cpu_kernel import window

    return window


class Fused(Backend):
    """The event product and the neuron update in one compiled kernel (numba, CPU only) that runs a
    whole window of steps per call, one sample per thread; with the readout's features and, for an
    affine readout fed back, the feedback loop inside."""

    name = "fused"

    def __init__(self) -> None:
        self._derived = Derived()

    def weights(self, m: Maelstrom) -> tuple[Tensor, ...]:
        """The rows of W^T as the kernel reads them: dense for a small, dense W (:func:`dense_rows`),
        else CSR ``(indptr, indices, values)`` (:func:`csr_rows`); none without recurrence."""
        if not m.config.recurrent:
            return ()
        weight = m.weight
        density = self._derived.get("density", weight, lambda: float(torch.count_nonzero(weight)) / weight.numel())
        if dense_rows(weight, density):
            return (m.weight_t,)
        return self._derived.get("rows", weight, lambda: csr_rows(csr(m.weight_t.contiguous())))

    def step(self, m: Maelstrom, current: Tensor, state: CubaLIFState) -> CubaLIFState:
        return self.run(m, current.unsqueeze(1), state, None, None, None)

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
            raise ValueError("backend 'fused' is the CPU kernel; on CUDA use 'auto' or 'graph'")
        if not available():
            raise ValueError("backend 'fused' needs numba (pip install numba); 'event' gives the same spikes")
        if m.adaptive or m.delayed:
            raise ValueError("backend 'fused' has no adaptation or delays in its kernel: use 'auto' or 'event'")
        if feedback is not None and feedback.readout.head is not None:
            return super().run(m, currents, state, spikes, probe, feedback)  # a kernel call per step
        gain = self._derived.get("gain", m.beta, lambda: 1.0 - m.beta)
        weights = self.weights(m)
        return run_window(currents, state, weights, m.alpha, m.beta, gain, m.potentials, spikes, probe, feedback)

    def clear(self) -> None:
        self._derived.clear()


def run_window(
    currents: Tensor,
    state: CubaLIFState,
    weights: tuple[Tensor, ...],
    alpha: Tensor,
    beta: Tensor,
    gain: Tensor,
    potentials: Tensor,
    spikes: Tensor | None = None,
    probe: Probe | None = None,
    feedback: Feedback | None = None,
) -> CubaLIFState:
    """Run ``currents [B, K, N]`` (any strides) from ``state``; returns the new state.

    ``weights`` is ``(W^T,)`` for dense rows, ``(indptr, indices, values)`` of W^T as CSR (indices of
    any integer type, as :func:`csr_rows` makes them), or ``()`` without recurrence. ``gain`` is
    ``1 - beta`` and ``potentials`` ``[v_threshold, v_reset, v_leak]``, all in the state's dtype.
    ``spikes [B, K, N]`` is written when given; the ``probe`` gets its K steps of features and
    moves on; the ``feedback`` (whose readout has no head) closes the loop: each step's input is
    ``currents_t + p weight``, its ``out`` records that step's ``p``, and ``p`` becomes the softmax
    of the readout's scores of the step's features. The input state is left as it is.
    """
    import numba

    steps = slice(probe.t, probe.t + currents.shape[1]) if probe is not None else None
    features = probe.out[:, steps] if probe is not None else None
    fed = feedback.out[:, steps] if feedback is not None else None
    _check_shapes(currents, state, spikes, probe, features, feedback, fed)
    # numba compiles a kernel per memory layout: a strided view (a step of a [B, T, N] run) is copied
    currents = currents.contiguous()
    numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    real = currents.numpy().dtype
    nothing = {d: np.empty((0,) * d, real) for d in (1, 2, 3)}  # what the kernel reads as "absent"
    rows = weights[0].numpy() if len(weights) == 1 else nothing[2]
    sparse_rows = [np.empty(0, np.uint32)] * 2 + [nothing[1]]
    if len(weights) == 3:
        sparse_rows = [_unsigned(weights[0].numpy()), _unsigned(weights[1].numpy()), weights[2].numpy()]
    v, i, z = (s.clone() for s in state)
    new_trace = probe.trace.clone() if probe is not None else None
    slots = np.full(len(FEATURES), -1, dtype=np.int64)
    if probe is not None:
        for k, name in enumerate(probe.names):
            slots[FEATURES.index(name)] = k * currents.shape[-1]
    new_p = feedback.p.clone() if feedback is not None else None
    closed = (
        [t.numpy() for t in (feedback.weight, feedback.readout.weight.contiguous(), feedback.readout.bias, new_p, fed)]
        if feedback is not None
        else [nothing[2], nothing[2], nothing[1], nothing[2], nothing[3]]
    )
    _kernel()(
        currents.numpy(), rows, *sparse_rows, alpha.numpy(), beta.numpy(), gain.numpy(), potentials.numpy(),
        v.numpy(), i.numpy(), z.numpy(),
        new_trace.numpy() if new_trace is not None else nothing[2],
        real.type(probe.decay if probe is not None else 0),
        features.numpy() if features is not None else nothing[3],
        slots,
        spikes.numpy() if spikes is not None else nothing[3],
        *closed,
    )  # fmt: skip
    if probe is not None:
        probe.advance(currents.shape[1], new_trace)
    if feedback is not None:
        feedback.p = new_p
    return CubaLIFState(v=v, i=i, z=z)


def _unsigned(indices: np.ndarray) -> np.ndarray:
    """Non-negative integers as the unsigned type of their size (the same bytes): no wrap-around check."""
    return indices.view(np.dtype(indices.dtype.str.replace("i", "u"))) if indices.dtype.kind == "i" else indices


def _check_shapes(
    currents: Tensor,
    state: CubaLIFState,
    spikes: Tensor | None,
    probe: Probe | None,
    features: Tensor | None,
    feedback: Feedback | None,
    fed: Tensor | None,
) -> None:
    """The kernel checks no bounds: a mismatched shape must stop here, not corrupt memory."""
    batch, steps, n = currents.shape
    expected = {f"state.{name}": (tensor, (batch, n)) for name, tensor in zip(state._fields, state, strict=True)}
    if spikes is not None:
        expected["spikes"] = (spikes, (batch, steps, n))
    if probe is not None:
        expected["trace"] = (probe.trace, (batch, n))
        expected["features"] = (features, (batch, steps, len(probe.names) * n))
    if feedback is not None:
        if probe is None:
            raise ValueError("a feedback loop reads the features: pass a probe")
        classes, width = feedback.weight.shape[0], features.shape[-1]
        for name, tensor, shape in zip(
            ("loop weight", "readout", "readout bias", "p", "fed"),
            (feedback.weight, feedback.readout.weight, feedback.readout.bias, feedback.p, fed),
            ((classes, n), (classes, width), (classes,), (batch, classes), (batch, steps, classes)),
            strict=True,
        ):
            expected[name] = (tensor, shape)
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}; currents {tuple(currents.shape)} need {shape}")
        if tensor.dtype != currents.dtype:
            raise ValueError(f"{name} is {tensor.dtype}; the currents are {currents.dtype}")
