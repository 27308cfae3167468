"""Adaptors that let peer simulators re-import our NIR graphs correctly.

Norse 1.1 needs none: ``norse.torch.from_nir(graph, dt=graph.metadata["dt"])`` on the
``output="spikes"`` graph runs our spikes (it has no ``LI`` node, so not the readout).

snnTorch 1.0 does: its importer fixes ``dt = 1e-4``, requires ``r = tau_mem / dt`` (its membrane
adds the synaptic current unscaled), and when it finds a recurrent cycle it wraps it in a
subgraph that feeds the input to ``w_rec`` (computing ``W_rec(W_in x + s)``). :func:`for_snntorch`
rewrites the spikes graph so that ``snntorch.import_from_nir`` computes our dynamics.
"""

from __future__ import annotations

import nir
import numpy as np
from torch import nn

SNNTORCH_DT = 1e-4


def for_snntorch(graph: nir.NIRGraph) -> nir.NIRGraph:
    """A graph that ``snntorch.import_from_nir`` runs like ours. Takes the ``output="spikes"`` graph
    of :func:`~spiking_maelstrom.export.nir.to_nir` and:

    - rescales ``tau_syn``/``tau_mem`` by ``1e-4 / dt`` so snnTorch's fixed step gives our decays,
      with ``r = tau_mem / dt`` and ``w_in = tau_syn / dt`` as its importer demands;
    - scales every synapse into neuron ``j`` (encoder row and bias, recurrent row) by
      ``dt / tau_mem[j]`` (that is ``1 - beta``), which our membrane applies and snnTorch's does not;
    - nests the recurrence itself, wired ``input -> lif <-> w_rec``, in breadth-first node order.

    The imported module keeps its neurons' state inside (``init_hidden``): clear it with
    :func:`reset_snntorch` before each new sequence.
    """
    meta = dict(graph.metadata or {})
    if meta.get("output") != "spikes":
        raise ValueError("for_snntorch needs the graph saved with output='spikes' (snnTorch has no LI node)")
    dt = float(meta["dt"])
    lif = graph.nodes["maelstrom"]
    if not np.allclose(lif.v_leak, 0) or not np.allclose(lif.v_reset, 0):
        raise ValueError("snnTorch resets to zero with no leak potential: v_leak and v_reset must be 0")
    tau_syn = np.asarray(lif.tau_syn, np.float64)
    tau_mem = np.asarray(lif.tau_mem, np.float64)
    gain = dt / tau_mem
    n = tau_mem.size
    enc = graph.nodes["encoder"]
    dtype = np.asarray(enc.weight).dtype
    lif_node = nir.CubaLIF(
        tau_syn=tau_syn * SNNTORCH_DT / dt,
        tau_mem=tau_mem * SNNTORCH_DT / dt,
        r=tau_mem / dt,
        v_leak=np.zeros(n),
        v_threshold=np.asarray(lif.v_threshold, np.float64),
        v_reset=np.zeros(n),
        w_in=tau_syn / dt,
    )
    encoder = nir.Affine(weight=(enc.weight * gain[:, None]).astype(dtype), bias=(enc.bias * gain).astype(dtype))
    sub_nodes: dict[str, nir.NIRNode] = {"input": nir.Input({"input": np.array([n])}), "lif": lif_node}
    sub_edges = [("input", "lif"), ("lif", "output")]
    if "maelstrom_rec" in graph.nodes:
        rec = graph.nodes["maelstrom_rec"].weight
        sub_nodes["w_rec"] = nir.Linear(weight=(rec * gain[:, None]).astype(dtype))
        sub_edges = [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    sub_nodes["output"] = nir.Output({"output": np.array([n])})
    nodes = {
        "input": graph.nodes["input"],
        "encoder": encoder,
        "maelstrom": nir.NIRGraph(nodes=sub_nodes, edges=sub_edges),
        "output": graph.nodes["output"],
    }
    edges = [("input", "encoder"), ("encoder", "maelstrom"), ("maelstrom", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def reset_snntorch(module: nn.Module) -> None:
    """Zero the hidden state of every snnTorch neuron in ``module`` (a new sequence starts).
    ``snntorch.utils.reset`` misses the neurons nested in a ``nir_to_torch`` module (measured with
    snnTorch 1.0.0: the second sequence then starts from the first one's state)."""
    for sub in module.modules():
        if callable(getattr(sub, "reset_mem", None)):
            sub.reset_mem()
