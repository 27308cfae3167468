"""Lava-dl netx HDF5 writer (Loihi 2), laid out as lava-dl's own reader (``netx/hdf5.py``) expects.

Layers under ``/layer/<i>``: ``0`` ``input`` (``shape`` only, no neuron: frames feed the first
synapses), ``1`` the maelstrom as ``dense_rec`` (``weight [N, D]``, ``weight_rec [N, N]``, per-neuron
``bias``; ``dense`` without recurrence) with one CUBA ``neuron`` group, and, when the readout reads
only the spike trace, ``2`` a ``dense`` readout whose CUBA neurons integrate the spikes with the
trace's decay and never fire (``vThMant`` at its 17-bit maximum): their membranes, probed, are
the trace-readout scores. ``type`` strings are ``S10`` arrays of shape (1,) as slayer writes them;
weights and decays are integers; the reader maps ``du = iDecay - 1`` (Lava adds 1 back) and
applies ``bias_exp = 6``, the same shift as the weighted input, so weights, bias and ``vThMant``
share one unit. Lava's Dense delays every synapse by one step; ``RecurrentDense``'s timing is not
verified here (lava-dl does not install on this machine). Notes for the deployment (e.g. the host
front end the input frames must pass through) are string attributes of the file's root, which
lava-dl's reader does not look at.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from ..files import atomic_write
from .nir import ExportError
from .quantize import QuantizedNetwork

VTH_MAX = 2**17 - 1
BIAS_MAX = 2**12 - 1


def _type(group: h5py.Group, name: str) -> None:
    group.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def _neuron(group: h5py.Group, i_decay: int, v_decay: int, v_th: int) -> None:
    neuron = group.create_group("neuron")
    neuron.create_dataset("type", data="CUBA")
    for key, value in (("iDecay", i_decay), ("vDecay", v_decay), ("vThMant", v_th), ("refDelay", 1)):
        neuron.create_dataset(key, data=np.int64(value))
    neuron.create_dataset("gradedSpike", data=False)


def _ints(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().round().astype(np.int64)


def _one(values: torch.Tensor, what: str) -> int:
    unique = torch.unique(values)
    if unique.numel() != 1:
        raise ExportError(f"netx: one {what} per layer, but the mapping has {unique.numel()} values")
    return int(unique[0])


def write_netx(
    q: QuantizedNetwork, path: str | Path, readout: bool = True, attributes: dict[str, str] | None = None
) -> Path:
    """Write a mapping quantised for a ``fraction``-decay integer target (Loihi 2) as netx HDF5;
    ``readout=False`` writes the maelstrom alone (its spikes are the output); ``attributes`` become
    string attributes of the file's root."""
    if q.target.decay["kind"] != "fraction" or not q.target.integer:
        raise ExportError(f"netx: needs an integer target with fractional decays (loihi2), not {q.target.name}")
    if readout and q.features != ("trace",):
        raise ExportError(
            f"netx: the readout reads {', '.join(q.features)}; netx neurons can only integrate spikes: "
            "train with --features trace, or export the maelstrom alone with --output spikes"
        )
    bias = _ints(q.encoder_bias)
    if np.abs(bias).max(initial=0) > BIAS_MAX:
        raise ExportError(f"netx: encoder bias {int(np.abs(bias).max())} exceeds the 13-bit bias mantissa")
    n, d = q.encoder_weight.shape
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(attributes or {})
        layer = f.create_group("layer")
        inp = layer.create_group("0")
        _type(inp, "input")
        inp.create_dataset("shape", data=np.array([d]))
        res = layer.create_group("1")
        _type(res, "dense_rec" if q.recurrent_weight is not None else "dense")
        res.create_dataset("shape", data=np.array([n]))
        res.create_dataset("weight", data=_ints(q.encoder_weight))
        if q.recurrent_weight is not None:
            res.create_dataset("weight_rec", data=_ints(q.recurrent_weight))
        res.create_dataset("bias", data=bias)
        _neuron(res, _one(q.syn_code, "iDecay"), _one(q.mem_code, "vDecay"), _one(q.threshold, "vThMant"))
        if readout:
            _readout_layer(layer.create_group("2"), q)
    return Path(path)


def _readout_layer(group: h5py.Group, q: QuantizedNetwork) -> None:
    """Readout neurons: ``u`` = this step's weighted spikes (``iDecay = 4096``: no memory), ``v``
    decays like the trace, so ``v`` is the readout's weights applied to the trace. The bias enters
    every step, so it is stored times ``1 - decay`` to reach the readout's bias in steady state."""
    full = 2 ** int(q.target.decay["bits"])
    decay = 1.0 - q.dt / q.trace_tau
    v_decay = int(round((1.0 - decay) * full))
    weight = q.readout_weight.double()
    qmax = 2 ** (int(q.target.weight["bits"]) - 1) - 1
    scale = float(weight.abs().max().clamp_min(1e-12)) / qmax
    c = weight.shape[0]
    _type(group, "dense")
    group.create_dataset("shape", data=np.array([c]))
    group.create_dataset("weight", data=_ints(weight / scale))
    group.create_dataset("bias", data=_ints((q.readout_bias.double() / scale) * (v_decay / full)))
    _neuron(group, full, v_decay, VTH_MAX)
