"""The whole Maelstrom network: encoder -> maelstrom -> readout, with top-down feedback.

At step ``t`` the encoder sees the input frame ``x_t`` and the feedback ``p_{t-1}`` (the readout's
previous prediction, detached) and produces currents ``u_t``; the maelstrom advances one step on
``u_t`` (no gradient enters it); the readout maps the maelstrom's state features to scores ``y_t``.
Named ``heads``, further readouts, read the same features in the same run (one per task of a
task-incremental scenario, ``continual``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Any, NamedTuple

import torch
from torch import Tensor, nn

from .encoders import ConvEncoder, Encoder, MLPEncoder
from .maelstrom import Maelstrom, MaelstromConfig
from .neuron import CubaLIFState
from .probe import FEATURES, Feedback, Probe
from .readouts import LinearReadout, MLPReadout, RidgeReadout, affine_split, readout_classes

ENCODERS = ("mlp", "linear", "conv")
READOUTS = ("linear", "mlp", "ridge")


@dataclass
class NetworkConfig:
    """Architecture of a Maelstrom network; with the seeds inside, it rebuilds the same network."""

    input_shape: Annotated[tuple[int, ...], "shape of one input frame"]
    n_classes: Annotated[int, "classes the readout scores"]
    maelstrom: MaelstromConfig = field(default_factory=MaelstromConfig)
    encoder: Annotated[str, f"input network: {', '.join(ENCODERS)} (the data set's, e.g. conv for nmnist)"] = "mlp"
    encoder_hidden: Annotated[tuple[int, ...], "hidden layer widths of the mlp encoder"] = (32,)
    conv_channels: Annotated[tuple[int, ...], "channels of the conv encoder's layers"] = (16, 32)
    encoder_gain: Annotated[
        float, "scale of the encoder's initial output weights (how hard it drives the maelstrom)"
    ] = 10.0
    readout: Annotated[str, f"output network: {', '.join(READOUTS)} (ridge: closed form, with a frozen encoder)"] = (
        "linear"
    )
    readout_hidden: Annotated[tuple[int, ...], "hidden layer widths of the mlp readout"] = (128,)
    ridge_alpha: Annotated[float, "penalty of the ridge readout"] = 1e-2
    features: Annotated[
        tuple[str, ...],
        f"maelstrom state the readout reads, of {', '.join(FEATURES)}: spikes filtered with trace_tau, synaptic "
        "currents, membranes, adaptive thresholds (NIR export reads trace and current)",
    ] = ("trace", "current")
    trace_tau: Annotated[
        float, "time constant of the spike trace the readout reads, in seconds (scaled to the data set's step)"
    ] = 0.05
    feedback: Annotated[
        bool | None, "top-down feedback of the readout's prediction into the encoder (none: on, off for ridge)"
    ] = None
    seed: Annotated[int, "seed of the encoder's and readout's initial weights"] = 0

    def __post_init__(self) -> None:
        for name, value, allowed in (("encoder", self.encoder, ENCODERS), ("readout", self.readout, READOUTS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")
        bad = [f for f in self.features if f not in FEATURES]
        if bad or not self.features:
            raise ValueError(f"features must be a non-empty subset of {FEATURES}, got {self.features}")
        if "adaptation" in self.features and not self.maelstrom.adaptation:
            raise ValueError("the adaptation feature needs an adaptive maelstrom: set maelstrom.adaptation > 0")
        if self.feedback is None:
            self.feedback = self.readout != "ridge"
        if self.readout == "ridge" and self.feedback:
            raise ValueError("the ridge readout is fitted in one pass and cannot feed back: set feedback=False")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        data = dict(data)
        data["maelstrom"] = MaelstromConfig.from_dict(data["maelstrom"])
        for key in ("input_shape", "encoder_hidden", "conv_channels", "readout_hidden", "features"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


# Steps per chunk of ``MaelstromNetwork.forward``: at T = 1000 (batch 64, 1,000 neurons) 25 steps ran
# in 0.7 s and 65 MB against 1.0 to 1.6 s and 1.3 GB for the whole sequence in one window.
INFERENCE_WINDOW = 25


class NetworkState(NamedTuple):
    """Everything carried from one step to the next."""

    neurons: CubaLIFState
    trace: Tensor
    feedback: Tensor | None


class WindowOutput(NamedTuple):
    """Result of running a window of steps: scores ``[B, K, C]``, encoder currents ``[B, K, N]``
    (carrying the encoder's graph when it was asked for; None from ``forward``), spikes
    ``[B, K, N]`` or None, the new state, the readout features ``[B, K, F]`` when asked for,
    with the encoder's graph what its output layer read ``[B, K, D]`` (``Encoder.head_input``), and
    the scores of the named heads asked for (``MaelstromNetwork.heads``)."""

    logits: Tensor
    currents: Tensor | None
    spikes: Tensor | None
    state: NetworkState
    features: Tensor | None = None
    head_inputs: Tensor | None = None
    heads: dict[str, Tensor] | None = None


class MaelstromNetwork(nn.Module):
    """Encoder, frozen maelstrom and readout, run step by step with feedback."""

    def __init__(
        self,
        encoder: Encoder,
        maelstrom: Maelstrom,
        readout: nn.Module,
        n_classes: int,
        features: tuple[str, ...] = ("trace", "current"),
        trace_tau: float = 0.05,
        feedback: bool = True,
    ) -> None:
        super().__init__()
        if encoder.n_out != maelstrom.n_neurons:
            raise ValueError(f"encoder gives {encoder.n_out} currents; the maelstrom has {maelstrom.n_neurons} neurons")
        if feedback and encoder.feedback_features != n_classes:
            raise ValueError(f"feedback needs an encoder with feedback_features={n_classes}")
        self.encoder = encoder
        self.maelstrom = maelstrom
        self.readout = readout
        self.n_classes = n_classes
        self.features = tuple(features)
        self.feedback = feedback
        if trace_tau <= maelstrom.dt:
            raise ValueError(f"trace_tau={trace_tau} must exceed the maelstrom's dt={maelstrom.dt}")
        self.trace_tau = trace_tau
        # Forward-Euler like the neurons, so the trace is exactly a NIR leaky integrator (LI).
        self.trace_decay = 1.0 - maelstrom.dt / trace_tau
        self.config: NetworkConfig | None = None
        self.heads = nn.ModuleDict()

    def add_head(self, name: str, n_classes: int) -> nn.Module:
        """A new readout ``name`` of the config's kind over the same features, scoring ``n_classes``
        (initial weights seeded by the config's seed and the head's number). Heads are independent
        modules: adding one never changes another's scores."""
        if self.feedback:
            raise ValueError("heads need feedback off: the feedback loop reads the main readout")
        if name in self.heads:
            raise ValueError(f"the network already has a head {name!r}")
        readout = build_readout(self.config, n_classes, seed=self.config.seed + 1 + len(self.heads))
        self.heads[name] = readout.to(self.maelstrom.weight.device)
        return self.heads[name]

    def head(self, name: str) -> MaelstromNetwork:
        """The network seen through head ``name``: the same encoder and maelstrom (shared, not
        copied) with that head as its readout, to train or score like any network."""
        return self.through(self.heads[name])

    def through(self, readout: nn.Module, kind: str | None = None) -> MaelstromNetwork:
        """The network with ``readout`` (of config kind ``kind``, default the config's) in place of
        its own, without feedback: the encoder and the maelstrom shared, not copied."""
        n = readout_classes(readout)
        view = MaelstromNetwork(self.encoder, self.maelstrom, readout, n, self.features, self.trace_tau, False)
        view.config = replace(self.config, n_classes=n, readout=kind or self.config.readout, feedback=False)
        return view

    @property
    def n_features(self) -> int:
        return len(self.features) * self.maelstrom.n_neurons

    def init_state(self, batch_size: int) -> NetworkState:
        neurons = self.maelstrom.init_state(batch_size)
        feedback = None
        if self.feedback:
            feedback = torch.full(
                (batch_size, self.n_classes), 1.0 / self.n_classes, device=neurons.v.device, dtype=neurons.v.dtype
            )
        return NetworkState(neurons, torch.zeros_like(neurons.v), feedback)

    def run_window(
        self,
        x: Tensor,
        state: NetworkState,
        encoder_grad: bool = False,
        feature_grad: bool = False,
        record: bool = False,
        keep_features: bool = False,
        head_names: tuple[str, ...] = (),
    ) -> WindowOutput:
        """Run ``x [B, K, *input_shape]`` from ``state``; ``head_names`` are the heads scored too.

        ``encoder_grad`` keeps the encoder's graph in the returned currents and head inputs.
        ``feature_grad`` makes the readout's features a leaf that requires grad, returned as
        ``features``: after a backward pass of the logits, ``features.grad`` holds the loss's
        gradient with respect to them (the local rule's credit). Spikes and recurrence stay
        outside every graph.
        """
        batch, steps = x.shape[:2]
        grad_ctx = nullcontext() if encoder_grad else torch.no_grad()
        neurons, trace, feedback = state
        # The maelstrom writes the features step by step into one buffer (no per-step cat or stack).
        feats = trace.new_empty(batch, steps, self.n_features)
        probe = Probe(self.features, feats, trace, self.trace_decay)
        with grad_ctx:
            hidden = self.encoder.body_features(x.flatten(0, 1)).unflatten(0, (batch, steps))
            if self.feedback:
                drive, feedback_weight = self.encoder.split_output(hidden)
        if self.feedback:
            # Only the feedback's share of the currents waits for the step before: the maelstrom
            # runs the window with the readout's prediction closed onto its input.
            loop = self._loop(feedback_weight, feedback, steps)
            spikes, neurons = self.maelstrom.run(drive.detach(), neurons, record, probe, loop)
            feedback = loop.p
            with grad_ctx:
                heads = self.encoder.join(hidden, loop.out)
                currents = drive + loop.out.to(drive.dtype) @ feedback_weight
        else:
            with grad_ctx:
                heads = self.encoder.join(hidden, None)
                currents = self.encoder.out(heads)
            # The currents do not depend on the maelstrom: the whole window runs in one call.
            spikes, neurons = self.maelstrom.run(currents, neurons, record, probe)
        return WindowOutput(
            logits=self.readout(feats.requires_grad_(feature_grad)),
            currents=currents,
            spikes=spikes,
            state=NetworkState(neurons, probe.trace, feedback),
            features=feats if keep_features or feature_grad else None,
            head_inputs=heads if encoder_grad else None,
            heads={name: self.heads[name](feats) for name in head_names} if head_names else None,
        )

    @torch.no_grad()
    def _loop(self, feedback_weight: Tensor, p: Tensor, steps: int) -> Feedback:
        """The feedback loop for a window of ``steps``: the encoder's feedback weights ``[C, N]``,
        the readout with its feature statistics as they are now (in training, the window's logits,
        computed afterwards in one call, also update them, as without feedback), from ``p``."""
        dtype = self.maelstrom.weight.dtype
        return Feedback(
            weight=feedback_weight.detach().to(dtype).contiguous(),
            readout=affine_split(self.readout).to(dtype),
            p=p,
            out=p.new_empty(p.shape[0], steps, p.shape[1]),
        )

    @torch.no_grad()
    def forward(
        self,
        x: Tensor,
        state: NetworkState | None = None,
        record: bool = False,
        window: int = INFERENCE_WINDOW,
        head_names: tuple[str, ...] = (),
    ) -> WindowOutput:
        """Inference over a whole sequence ``x [B, T, *input_shape]``, ``window`` steps at a time, so
        that memory holds one window's currents and features, not the sequence's. ``logits`` (and
        ``spikes`` with ``record``) cover all T; the encoder's ``currents`` are not kept (None). On
        the CPU the spikes are those of one window over the whole sequence (measured; matrix
        products of a handful of rows can round differently). ``head_names``: those heads'
        scores too, from the same run."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if x.shape[1] == 0:
            raise ValueError(f"the input {tuple(x.shape)} has no time steps")
        state = self.init_state(x.shape[0]) if state is None else state
        logits, spikes, heads = [], [], []
        for start in range(0, x.shape[1], window):
            out = self.run_window(x[:, start : start + window], state, record=record, head_names=head_names)
            logits.append(out.logits)
            spikes.append(out.spikes)
            heads.append(out.heads)
            state = out.state
        recorded = torch.cat(spikes, 1) if record else None
        scored = {name: torch.cat([h[name] for h in heads], 1) for name in head_names} if head_names else None
        return out._replace(logits=torch.cat(logits, 1), currents=None, spikes=recorded, heads=scored)


REFERENCE_DT = 1e-3


def network_config_for(task: Any, maelstrom: dict[str, Any] | None = None, **network: Any) -> NetworkConfig:
    """The network config that suits ``task`` (any object with ``input_shape``, ``n_classes``, ``dt``
    and ``network_defaults``, e.g. a ``data.Task``): its shapes, its preferred encoder, and the
    default time constants, tuned for 1 ms steps, scaled to the task's step so the dynamics per
    step stay the same. ``maelstrom`` and ``network`` override any field."""
    scale = task.dt / REFERENCE_DT
    base = MaelstromConfig()
    maelstrom_fields = {
        "dt": task.dt,
        "tau_mem": tuple(scale * t for t in base.tau_mem),
        "tau_syn": tuple(scale * t for t in base.tau_syn),
        "tau_adapt": tuple(scale * t for t in base.tau_adapt),
        **(maelstrom or {}),
    }
    fields = {
        "trace_tau": scale * NetworkConfig.__dataclass_fields__["trace_tau"].default,
        **task.network_defaults,
        **network,
    }
    return NetworkConfig(
        input_shape=tuple(task.input_shape),
        n_classes=task.n_classes,
        maelstrom=MaelstromConfig(**maelstrom_fields),
        **fields,
    )


def build_readout(config: NetworkConfig, n_classes: int, seed: int | None = None) -> nn.Module:
    """A fresh readout of ``config``'s kind over its features, scoring ``n_classes``; with ``seed``,
    its initial weights drawn from that seed (the global stream untouched), else from the stream."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_readout(config, n_classes)
    n_features = len(config.features) * config.maelstrom.n_neurons
    if config.readout == "linear":
        return LinearReadout(n_features, n_classes)
    if config.readout == "mlp":
        return MLPReadout(n_features, n_classes, config.readout_hidden)
    return RidgeReadout(n_features, n_classes, config.ridge_alpha)


def build_network(config: NetworkConfig, device: str | torch.device = "cpu") -> MaelstromNetwork:
    """Build a network from its config; trainable weights are initialised from ``config.seed``."""
    maelstrom = Maelstrom(config.maelstrom, device=device)
    n, c = config.maelstrom.n_neurons, config.n_classes
    n_fb = c if config.feedback else 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.encoder == "conv":
            encoder: Encoder = ConvEncoder(
                config.input_shape, n, config.conv_channels, feedback_features=n_fb, gain=config.encoder_gain
            )
        else:
            hidden = config.encoder_hidden if config.encoder == "mlp" else ()
            encoder = MLPEncoder(config.input_shape, n, hidden, feedback_features=n_fb, gain=config.encoder_gain)
        readout = build_readout(config, c)
    network = MaelstromNetwork(encoder, maelstrom, readout, c, config.features, config.trace_tau, config.feedback)
    network.config = config
    return network.to(maelstrom.weight.device)
