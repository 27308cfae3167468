"""NIR export and import of a whole Maelstrom network (NIR: the Neuromorphic Intermediate Representation).

The graph, node names fixed (``output="scores"``)::

    input -> encoder (Affine) -> maelstrom (CubaLIF) <-> maelstrom_rec (Linear)   [recurrence]
    maelstrom -> trace (LI) -> readout_trace (Affine) -> output
    encoder, maelstrom_rec -> current (LI) -> readout_current (Linear) -> output  [if "current" is read]

``output="spikes"`` cuts it after the maelstrom (``maelstrom -> output``): the reservoir alone,
for peers that have no ``LI`` node or that mis-order merging branches (see ``spiking_maelstrom/hardware/README.md``).

Units, which NIR leaves to each backend: times in seconds; the step ``dt`` in the graph's
metadata; potentials in units of the firing threshold (1 by default). The parameters are chosen
so that forward-Euler integration at ``dt`` of NIR's equations is exactly this project's step:
CubaLIF ``r = 1``, ``w_in = tau_syn / dt`` (so ``i <- alpha i + input``); the ``trace`` and ``current``
features are leaky integrators ``LI`` with ``tau = trace_tau`` or ``tau_syn`` and ``r = tau / dt``
(so ``v <- (1 - dt/tau) v + input``). Frames are fed flattened (C order); the frame shape is in
the metadata. A recurrent spike reaches its targets one step later.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor

from .._version import __version__
from ..encoders import MLPEncoder
from ..files import atomic_write
from ..maelstrom import Maelstrom, MaelstromConfig, MaelstromParameters
from ..network import MaelstromNetwork, NetworkConfig
from ..readouts import RidgeReadout, affine_split

PRODUCER = "spiking-maelstrom"
OUTPUTS = ("scores", "spikes")
NIR_FEATURES = ("trace", "current")


class ExportError(ValueError):
    """A network part that the chosen format or target cannot represent; the message names it."""


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _uniform(name: str, values: np.ndarray) -> float:
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size and not np.all(flat == flat[0]):
        raise ExportError(f"maelstrom: {name} differs between neurons; this project needs one value for all")
    return float(flat[0])


def encoder_affine(network: MaelstromNetwork, drop_feedback: bool = False) -> tuple[Tensor, Tensor, list[str]]:
    """The encoder as one affine map ``(weight [N, D], bias [N])`` on flattened frames, and what was
    left out. Refuses encoders with hidden nonlinear layers and, unless ``drop_feedback``, feedback
    (a softmax of the readout's scores, which no neuromorphic format expresses)."""
    encoder = network.encoder
    if not isinstance(encoder, MLPEncoder) or len(encoder.body) > 0:
        raise ExportError(
            f"encoder: {type(encoder).__name__} has hidden layers with ReLU, which NIR and the chips cannot "
            "express; train with --encoder linear for hardware"
        )
    weight, bias = encoder.out.weight.detach(), encoder.out.bias.detach()
    left_out = []
    if network.feedback:
        if not drop_feedback:
            raise ExportError(
                "feedback: the encoder's input from the softmax of the readout's scores has no NIR or hardware "
                "primitive; train with --no-feedback, or export with --drop-feedback (the uniform prior "
                "1/classes then takes its place, folded into the encoder's bias)"
            )
        fb = encoder.feedback_features
        bias = bias + weight[:, -fb:].sum(1) / fb
        weight = weight[:, :-fb]
        left_out.append("feedback (replaced by the uniform prior 1/classes, folded into the encoder's bias)")
    return weight.clone(), bias.clone(), left_out


def readout_affine(network: MaelstromNetwork) -> tuple[Tensor, Tensor]:
    """The readout as one affine map ``(weight [C, F], bias [C])`` on the raw features, the feature
    normalisation folded in (``readouts.affine_split``); refuses an unfitted ridge and hidden layers."""
    readout = network.readout
    if isinstance(readout, RidgeReadout) and not bool(readout.fitted):
        raise ExportError("readout: the ridge readout has not been fitted; train before exporting")
    try:
        affine = affine_split(readout)
    except TypeError as err:
        raise ExportError(f"readout: {err}") from err
    if affine.head is not None:
        raise ExportError(
            f"readout: {type(readout).__name__} has hidden ReLU layers, which NIR cannot express; "
            "use --readout linear or ridge"
        )
    return affine.weight.detach().clone(), affine.bias.detach().clone()


def to_nir(
    network: MaelstromNetwork,
    output: str = "scores",
    drop_feedback: bool = False,
    metadata: dict[str, str] | None = None,
) -> nir.NIRGraph:
    """The network as a NIR graph (see the module docstring for its layout and units); ``metadata``
    adds entries to the graph's own (e.g. the host front end its input must go through)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    m = network.maelstrom
    if m.adaptive:
        raise ValueError("an adaptive maelstrom (adaptation > 0) has no NIR node: NIR 1.0 has no adaptive threshold")
    if m.delayed:
        raise ValueError("the NIR export writes no Delay nodes yet: export a maelstrom with max_delay = 1")
    cfg, dt = m.config, m.dt
    w_enc, b_enc, left_out = encoder_affine(network, drop_feedback)
    n, d = w_enc.shape
    tau_syn = _np(m.tau_syn)
    tau_mem = _np(m.tau_mem)
    full = np.ones(n, dtype=tau_syn.dtype)
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input({"input": np.array([d])}),
        "encoder": nir.Affine(weight=_np(w_enc), bias=_np(b_enc)),
        "maelstrom": nir.CubaLIF(
            tau_syn=tau_syn,
            tau_mem=tau_mem,
            r=full.copy(),
            v_leak=full * cfg.v_leak,
            v_threshold=full * cfg.v_threshold,
            v_reset=full * cfg.v_reset,
            w_in=(tau_syn.astype(np.float64) / dt).astype(tau_syn.dtype),
            metadata={"excitatory": _np(m.excitatory)},
        ),
    }
    # Edge order matters to depth-first executors (nirtorch's GraphExecutor): recurrence first.
    edges = [("input", "encoder"), ("encoder", "maelstrom")]
    if cfg.recurrent:
        nodes["maelstrom_rec"] = nir.Linear(weight=_np(m.weight))
        edges += [("maelstrom", "maelstrom_rec"), ("maelstrom_rec", "maelstrom")]
    if output == "spikes":
        nodes["output"] = nir.Output({"output": np.array([n])})
        edges.append(("maelstrom", "output"))
    else:
        edges += _readout_nodes(network, nodes, tau_syn)
        nodes["output"] = nir.Output({"output": np.array([network.n_classes])})
    graph_metadata = {
        "producer": PRODUCER,
        "producer_version": __version__,
        "dt": float(dt),
        "input_shape": np.array(network.encoder.input_shape),
        "output": output,
        "features": ",".join(network.features),
        "time_unit": "s",
        "left_out": "; ".join(left_out),
        **(metadata or {}),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph_metadata)


def _readout_nodes(network: MaelstromNetwork, nodes: dict[str, nir.NIRNode], tau_syn: np.ndarray) -> list:
    bad = [f for f in network.features if f not in NIR_FEATURES]
    if bad:
        raise ExportError(
            f"readout: feature {bad[0]!r} (the membrane potential) is internal state that NIR nodes do not "
            f"output; train with --features among {', '.join(NIR_FEATURES)}"
        )
    m = network.maelstrom
    n = m.n_neurons
    weight, bias = readout_affine(network)
    taus = {"trace": np.full(n, network.trace_tau), "current": tau_syn}
    sources = {"trace": ["maelstrom"], "current": ["encoder"] + (["maelstrom_rec"] if m.config.recurrent else [])}
    edges = []
    for k, feature in enumerate(network.features):
        tau = taus[feature]
        nodes[feature] = nir.LI(tau=tau, r=(tau.astype(np.float64) / m.dt).astype(tau.dtype), v_leak=np.zeros_like(tau))
        part = _np(weight[:, k * n : (k + 1) * n])
        name = f"readout_{feature}"
        nodes[name] = nir.Affine(weight=part, bias=_np(bias)) if k == 0 else nir.Linear(weight=part)
        edges += [(src, feature) for src in sources[feature]] + [(feature, name), (name, "output")]
    return edges


def save_nir(
    network: MaelstromNetwork,
    path: str | Path,
    output: str = "scores",
    drop_feedback: bool = False,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the network as a NIR HDF5 file (atomically); returns the path."""
    graph = to_nir(network, output=output, drop_feedback=drop_feedback, metadata=metadata)
    with atomic_write(path) as tmp:
        nir.write(tmp, graph)
    return Path(path)


def read_nir(path: str | Path) -> nir.NIRGraph:
    """``nir.read`` with type checks, and a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIR file {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return nir.read(path, type_check=True)
    except Exception as err:  # h5py and nir raise many types for foreign or truncated files
        raise ValueError(f"{path} is not a readable NIR file ({type(err).__name__}: {err})") from err


def _node(graph: nir.NIRGraph, name: str, kind: type | tuple[type, ...]) -> Any:
    node = graph.nodes.get(name)
    if not isinstance(node, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        want = " or ".join(k.__name__ for k in kinds)
        got = "missing" if node is None else type(node).__name__
        raise ValueError(f"NIR graph: node {name!r} must be {want} ({got}); only graphs written by save_nir load")
    return node


def _tensor(values: Any) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(values))


def from_nir(graph: nir.NIRGraph, dt: float | None = None) -> MaelstromNetwork:
    """Rebuild a network from a graph written by :func:`to_nir` (``output="scores"``). The result
    has a linear encoder, the maelstrom with the stored parameters, an affine readout and no
    feedback; it steps bit for bit like the exported network when nothing was left out."""
    meta = graph.metadata or {}
    dt = float(meta["dt"]) if dt is None and "dt" in meta else dt
    if dt is None:
        raise ValueError("NIR graph: no 'dt' in its metadata; pass dt= (seconds)")
    if "readout_trace" not in graph.nodes and "readout_current" not in graph.nodes:
        raise ValueError(
            "NIR graph: no readout nodes (readout_trace/readout_current): was it saved with output='spikes'?"
        )
    enc = _node(graph, "encoder", nir.Affine)
    lif = _node(graph, "maelstrom", nir.CubaLIF)
    n, d = enc.weight.shape
    tau_syn = np.asarray(lif.tau_syn)
    if not np.allclose(lif.r, 1.0) or not np.allclose(lif.w_in, tau_syn.astype(np.float64) / dt, rtol=1e-6):
        raise ValueError("NIR graph: maelstrom needs r = 1 and w_in = tau_syn/dt (this project's convention)")
    recurrent = "maelstrom_rec" in graph.nodes
    weight = _node(graph, "maelstrom_rec", nir.Linear).weight if recurrent else np.zeros((n, n), enc.weight.dtype)
    excitatory = lif.metadata.get("excitatory") if lif.metadata else None
    if excitatory is None:
        excitatory = (weight >= 0).all(0)
    present = ",".join(f for f in NIR_FEATURES if f in graph.nodes)
    features = tuple(str(meta.get("features", present)).split(","))
    trace_tau = float(np.asarray(graph.nodes["trace"].tau).ravel()[0]) if "trace" in features else 0.05
    mcfg = MaelstromConfig(
        n_neurons=n,
        dt=dt,
        v_threshold=_uniform("v_threshold", lif.v_threshold),
        v_reset=_uniform("v_reset", lif.v_reset if lif.v_reset is not None else np.zeros(n)),
        v_leak=_uniform("v_leak", lif.v_leak),
        recurrent=recurrent,
        tau_mem=(float(np.min(lif.tau_mem)), float(np.max(lif.tau_mem))),
        tau_syn=(float(tau_syn.min()), float(tau_syn.max())),
        radius_method="circular-law",
    )
    params = MaelstromParameters(
        _tensor(weight), _tensor(np.asarray(excitatory, bool)), _tensor(lif.tau_mem), _tensor(tau_syn)
    )
    dtype = torch.from_numpy(np.asarray(enc.weight)).dtype
    maelstrom = Maelstrom(mcfg, dtype=dtype, parameters=params)
    input_shape = tuple(int(s) for s in np.asarray(meta.get("input_shape", [d])).ravel())
    encoder = MLPEncoder(input_shape, n, hidden=(), gain=1.0).to(dtype)
    readout_w, readout_b = [], None
    for feature in features:
        node = _node(graph, f"readout_{feature}", (nir.Affine, nir.Linear))
        readout_w.append(_tensor(node.weight))
        if isinstance(node, nir.Affine):
            readout_b = _tensor(node.bias)
    n_classes = readout_w[0].shape[0]
    readout = RidgeReadout(len(features) * n, n_classes).to(dtype)
    with torch.no_grad():
        encoder.out.weight.copy_(_tensor(enc.weight))
        encoder.out.bias.copy_(_tensor(enc.bias))
        readout.weight.copy_(torch.cat(readout_w, 1))
        if readout_b is not None:
            readout.bias.copy_(readout_b)
        readout.fitted.fill_(True)
    network = MaelstromNetwork(encoder, maelstrom, readout, n_classes, features, trace_tau, feedback=False)
    network.config = NetworkConfig(
        input_shape=input_shape,
        n_classes=n_classes,
        maelstrom=mcfg,
        encoder="linear",
        encoder_hidden=(),
        encoder_gain=1.0,
        readout="ridge",
        features=features,
        trace_tau=trace_tau,
        feedback=False,
    )
    return network.eval()


def load_nir(path: str | Path) -> MaelstromNetwork:
    """Read a NIR file written by :func:`save_nir` and rebuild the network; a one-line ``ValueError``
    naming the file if its graph does not rebuild one."""
    graph = read_nir(path)
    try:
        return from_nir(graph)
    # A foreign or edited graph fails anywhere in from_nir: missing keys, arrays of any shape or type.
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as err:
        reason = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(f"{path}: the NIR graph does not rebuild a network ({type(err).__name__}: {reason})") from err
