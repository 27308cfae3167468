"""Run a quantised Xylo mapping in SynSense's own bit-exact simulator, ``xylosim.v2`` (the back-end
of rockpool's ``XyloSim`` for Xylo Audio 2 and 3; ``pip install spiking-maelstrom[xylo]`` builds it).

Only the maelstrom goes on the simulated chip: ``synapses_in`` carry the integer encoder weights,
``synapses_rec`` the recurrent ones (``W[j, i]`` from neuron ``i`` to ``j``), one synaptic current
per neuron (``dash_syn`` = ``syn_code``, ``dash_mem`` = ``mem_code``), weight shifts 0 and no
output neurons: the readout stays on the host, fed by the chip's spike counts, as in
:meth:`~spiking_maelstrom.export.quantize.QuantizedNetwork.to_network`. The chip has no synaptic
bias (its bias enters the membrane), so an encoder bias is refused rather than approximated.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from .nir import ExportError
from .quantize import QuantizedNetwork

MAX_INPUT_SPIKES = 255  # the raster is uint8; xylosim itself keeps at most 15 per channel and step


class XyloChip(NamedTuple):
    """A ``xylosim.v2.XyloLayer`` and its synapses: the layer holds bare pointers to them, so they
    must live as long as it does."""

    layer: Any
    synapses: tuple[list[list[Any]], ...]


class XyloRun(NamedTuple):
    """One sample through xylosim: hidden spike counts, synaptic currents and membranes, ``[T, N]``."""

    spikes: Tensor
    current: Tensor
    voltage: Tensor


def _ints(t: Tensor) -> list[int]:
    return [int(x) for x in t.tolist()]


def _synapses(weight: Tensor, synapse: Any) -> list[list[Any]]:
    """Per source column of ``weight [targets, sources]``, its non-zero synapses ``(target, 0, w)``."""
    return [
        [synapse(int(j), 0, int(weight[j, i])) for j in torch.nonzero(weight[:, i]).flatten()]
        for i in range(weight.shape[1])
    ]


def xylosim_chip(q: QuantizedNetwork) -> XyloChip:
    """xylosim holding the maelstrom of ``q`` (a Xylo target's mapping)."""
    from xylosim.v2 import XyloLayer, XyloSynapse

    if q.target.decay["kind"] != "shift" or not q.target.integer:
        raise ExportError(f"xylosim runs Xylo mappings only (shift decays, integer weights), not {q.target.name}")
    if bool(q.encoder_bias.any()):
        raise ExportError("xylosim has no synaptic bias (Xylo adds its bias to the membrane): train without one")
    n = q.n_neurons
    recurrent = q.recurrent_weight if q.recurrent_weight is not None else q.encoder_weight.new_zeros(n, n)
    synapses = (_synapses(q.encoder_weight, XyloSynapse), _synapses(recurrent, XyloSynapse), [[] for _ in range(n)])
    layer = XyloLayer(
        synapses_in=synapses[0],
        synapses_rec=synapses[1],
        synapses_out=synapses[2],
        aliases=[[] for _ in range(n)],
        threshold=_ints(q.threshold),
        threshold_out=[],
        has_bias=False,
        bias=[0] * n,
        bias_out=[],
        weight_shift_inp=0,
        weight_shift_rec=0,
        weight_shift_out=0,
        dash_mem=_ints(q.mem_code),
        dash_mem_out=[],
        dash_syns=[[s] for s in _ints(q.syn_code)],
        dash_syns_out=[],
        name="maelstrom",
    )
    return XyloChip(layer, synapses)


def run_xylosim(chip: XyloChip, raster: Tensor) -> XyloRun:
    """Run one sample's input spike counts ``raster [T, D]`` (integers >= 0) from rest."""
    if bool((raster < 0).any()) or not torch.equal(raster, raster.round()):
        raise ValueError("xylosim takes integer spike counts >= 0 per channel and step")
    layer = chip.layer
    layer.reset_all()
    layer.evolve(raster.clamp(max=MAX_INPUT_SPIKES).to(torch.int64).tolist())
    spikes = torch.tensor(layer.rec_recurrent_spikes, dtype=torch.float64)
    current = torch.tensor([list(r) for r in layer.rec_i_syn], dtype=torch.float64).T
    voltage = torch.tensor([list(r) for r in layer.rec_v_mem], dtype=torch.float64).T
    return XyloRun(spikes.reshape(raster.shape[0], -1), current, voltage)
