"""A fused CubaLIF step for CUDA: one Triton kernel instead of about ten elementwise kernels.

The maelstrom's step on CUDA is bound by kernel launches, not arithmetic: ``cuba_lif_step`` in
PyTorch launches a kernel per operation. This kernel does the whole update in one pass, with the
same operations in the same order, each rounded on its own (``mul_rn``/``add_rn``: no fused
multiply-add), so its state is bit for bit that of ``neuron.cuba_lif_step`` on the CPU.

Used by every step on CUDA (``base.neuron_step``) when Triton is importable; ``available()`` says.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import Tensor

from ..neuron import CubaLIFState

BLOCK = 1024


@cache
def _kernel():  # noqa: ANN202 (a Triton JIT function)
    import triton
    import triton.language as tl
    from triton.language.extra import libdevice

    @triton.jit
    def cuba_lif(
        input_ptr, i_ptr, v_ptr, alpha_ptr, beta_ptr, potentials_ptr, i_out, v_out, z_out,
        n, total, BLOCK: tl.constexpr,
    ):  # fmt: skip
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < total
        neuron = offsets % n
        alpha = tl.load(alpha_ptr + neuron, mask=mask)
        beta = tl.load(beta_ptr + neuron, mask=mask)
        v_threshold = tl.load(potentials_ptr)
        v_reset = tl.load(potentials_ptr + 1)
        v_leak = tl.load(potentials_ptr + 2)
        i = libdevice.add_rn(libdevice.mul_rn(alpha, tl.load(i_ptr + offsets, mask=mask)),
                             tl.load(input_ptr + offsets, mask=mask))  # fmt: skip
        leak_in = libdevice.mul_rn(1.0 - beta, libdevice.add_rn(v_leak, i))
        v = libdevice.add_rn(libdevice.mul_rn(beta, tl.load(v_ptr + offsets, mask=mask)), leak_in)
        spiked = v > v_threshold
        tl.store(i_out + offsets, i, mask=mask)
        tl.store(v_out + offsets, tl.where(spiked, v_reset, v), mask=mask)
        tl.store(z_out + offsets, spiked.to(i.dtype), mask=mask)

    return cuba_lif


@cache
def available() -> bool:
    """Whether the fused kernel can run here (CUDA and Triton present)."""
    if not torch.cuda.is_available():
        return False
    try:
        _kernel()
    except ImportError:
        return False
    return True


def cuba_lif_step(
    input_current: Tensor,
    state: CubaLIFState,
    beta: Tensor,
    alpha: Tensor,
    potentials: Tensor,
) -> CubaLIFState:
    """``neuron.cuba_lif_step`` in one kernel: CUDA tensors ``[batch, n]``, per-neuron ``beta`` and
    ``alpha``, and ``potentials = [v_threshold, v_reset, v_leak]``, all in the state's dtype (so
    the potentials round as PyTorch rounds a Python number against a tensor)."""
    batch, n = input_current.shape
    input_current = input_current.contiguous()
    i, v = torch.empty_like(input_current), torch.empty_like(input_current)
    z = torch.empty_like(input_current)
    total = batch * n
    _kernel()[(-(-total // BLOCK),)](
        input_current, state.i.contiguous(), state.v.contiguous(), alpha, beta, potentials, i, v, z,
        n, total, BLOCK=BLOCK,
    )  # fmt: skip
    return CubaLIFState(v=v, i=i, z=z)
