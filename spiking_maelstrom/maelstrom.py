"""The maelstrom: a frozen recurrent spiking network (liquid-state style) that holds the memory.

Its weights and neuron parameters are buffers, never parameters; every update runs under
``torch.no_grad`` on detached inputs, so no gradient can enter or cross it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Annotated, Any, NamedTuple

import torch
from torch import Tensor, nn

from .backends import Backend, make_backend
from .connectivity import draw_connectivity
from .device import resolve_device
from .neuron import CubaLIFState, MaelstromState, cuba_lif_initial_state, euler_decay
from .probe import Feedback, Probe

DEFAULT_PROBABILITIES = {
    # Sparse random network; every pathway 10 %.
    "random": {"EE": 0.1, "EI": 0.1, "IE": 0.1, "II": 0.1},
    # Maass, Natschlaeger & Markram 2002: C scales exp(-(D/lambda)^2) on a 3-D grid.
    "distance": {"EE": 0.3, "EI": 0.2, "IE": 0.4, "II": 0.1},
}


@dataclass
class MaelstromConfig:
    """Everything that defines a maelstrom; the same config (seed included) gives the same network.

    Times are in seconds. ``tau_mem`` and ``tau_syn`` are (low, high) ranges: each neuron draws its
    own constant log-uniformly from the range (heterogeneous time constants).
    ``connection_probability`` maps pathways ``EE, EI, IE, II`` (pre, post) to probabilities; for
    ``topology="distance"`` they are Maass's ``C`` factors. None takes the topology's default.
    ``spectral_radius`` is that of ``W`` in units of the threshold per spike; since each spike's
    current is integrated over ``tau_syn``, activity outlasts the input from about 5 (fading
    memory, the default 6) and sustains itself from about 10.
    """

    n_neurons: Annotated[int, "maelstrom size"] = 500
    excitatory_fraction: Annotated[float, "share of excitatory neurons (Dale's law)"] = 0.8
    topology: Annotated[str, "random (sparse) or distance (3-D column, Maass et al. 2002) connectivity"] = "random"
    connection_probability: Annotated[
        dict[str, float] | None, "per pathway EE, EI, IE, II (pre, post); none: the topology's"
    ] = None
    length_scale: Annotated[float, "lambda of the distance topology, in grid steps"] = 2.0
    weight_spread: Annotated[float, "sigma of the log-normal weight magnitudes"] = 0.5
    inhibitory_scale: Annotated[float | None, "inhibitory to excitatory weight ratio; none: balanced per neuron"] = None
    spectral_radius: Annotated[float, "of the recurrent weights, in thresholds per spike"] = 6.0
    radius_method: Annotated[str, "eigenvalues (exact) or circular-law (the estimate ||W||_F / sqrt(N))"] = (
        "eigenvalues"
    )
    tau_mem: Annotated[
        tuple[float, float],
        "membrane time constant range in seconds (scaled to the data set's step; equal bounds give one value "
        "for all neurons, which Loihi 2 needs)",
    ] = (0.01, 0.04)
    tau_syn: Annotated[tuple[float, float], "synaptic time constant range in seconds (as tau_mem)"] = (0.003, 0.01)
    dt: Annotated[float, "step in seconds"] = 1e-3
    v_threshold: Annotated[float, "spike threshold"] = 1.0
    v_reset: Annotated[float, "membrane after a spike"] = 0.0
    v_leak: Annotated[float, "resting membrane"] = 0.0
    adaptation: Annotated[
        float, "threshold rise per spike, in thresholds (spike-frequency adaptation, LSNN-style; 0: off)"
    ] = 0.0
    tau_adapt: Annotated[
        tuple[float, float], "adaptation time constant range in seconds (as tau_mem); used when adaptation > 0"
    ] = (0.1, 0.5)
    max_delay: Annotated[
        int, "recurrent synaptic delays drawn uniformly from 1..max_delay steps per synapse (1: every spike one step)"
    ] = 1
    recurrent: Annotated[bool, "the recurrent weights on (off: the ablation without recurrence)"] = True
    seed: Annotated[int, "seed of the connectivity and time constants"] = 0

    def __post_init__(self) -> None:
        if self.n_neurons < 1:
            raise ValueError(f"n_neurons must be >= 1, got {self.n_neurons}")
        if not 0 <= self.excitatory_fraction <= 1:
            raise ValueError(f"excitatory_fraction must be in [0, 1], got {self.excitatory_fraction}")
        if not self.dt > 0 or not self.spectral_radius >= 0:
            raise ValueError(f"dt must be > 0 and spectral_radius >= 0, got {self.dt} and {self.spectral_radius}")
        if not self.adaptation >= 0 or self.max_delay < 1:
            raise ValueError(f"adaptation must be >= 0 and max_delay >= 1, got {self.adaptation} and {self.max_delay}")
        self.probabilities()

    def probabilities(self) -> dict[str, float]:
        """The per-pathway probabilities in force."""
        if self.connection_probability is not None:
            return dict(self.connection_probability)
        if self.topology not in DEFAULT_PROBABILITIES:
            raise ValueError(f"unknown topology {self.topology!r}: use 'random' or 'distance'")
        return dict(DEFAULT_PROBABILITIES[self.topology])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MaelstromConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown maelstrom config keys: {sorted(unknown)}")
        data = dict(data)
        for key in ("tau_mem", "tau_syn", "tau_adapt"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def _log_uniform(low: float, high: float, n: int, generator: torch.Generator) -> Tensor:
    if not 0 < low <= high:
        raise ValueError(f"time constant range must satisfy 0 < low <= high, got ({low}, {high})")
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))


class MaelstromParameters(NamedTuple):
    """The frozen parameters: recurrent ``weight [post, pre]`` (in units of the threshold per spike),
    the ``excitatory`` mask of presynaptic neurons, and per-neuron ``tau_mem``, ``tau_syn`` and, for
    an adaptive maelstrom, ``tau_adapt`` (s); with delays, each synapse's ``delay [post, pre]`` in
    steps (0 where there is no synapse)."""

    weight: Tensor
    excitatory: Tensor
    tau_mem: Tensor
    tau_syn: Tensor
    tau_adapt: Tensor | None = None
    delay: Tensor | None = None


def draw_parameters(config: MaelstromConfig) -> MaelstromParameters:
    """Draw a maelstrom's parameters (float64, on the CPU) from ``config`` and its seed."""
    generator = torch.Generator().manual_seed(config.seed)
    conn = draw_connectivity(
        config.n_neurons,
        excitatory_fraction=config.excitatory_fraction,
        probabilities=config.probabilities(),
        topology=config.topology,
        length_scale=config.length_scale,
        weight_spread=config.weight_spread,
        inhibitory_scale=config.inhibitory_scale,
        radius=config.spectral_radius,
        radius_method=config.radius_method,
        generator=generator,
    )
    tau_mem = _log_uniform(*config.tau_mem, config.n_neurons, generator)
    tau_syn = _log_uniform(*config.tau_syn, config.n_neurons, generator)
    tau_adapt = _log_uniform(*config.tau_adapt, config.n_neurons, generator) if config.adaptation else None
    delay = None
    if config.max_delay > 1:
        drawn = torch.randint(1, config.max_delay + 1, conn.weight.shape, generator=generator, dtype=torch.int16)
        delay = torch.where(conn.weight != 0, drawn, torch.zeros_like(drawn))
    return MaelstromParameters(conn.weight, conn.excitatory, tau_mem, tau_syn, tau_adapt, delay)


def run_input(currents: Tensor, n_neurons: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``currents [batch, time, neurons]`` checked, detached and moved to ``device`` and ``dtype``."""
    if currents.dim() != 3:
        raise ValueError(f"currents must be [batch, time, neurons], got shape {tuple(currents.shape)}")
    if currents.shape[-1] != n_neurons:
        raise ValueError(f"input current has {currents.shape[-1]} channels; the maelstrom has {n_neurons} neurons")
    return currents.detach().to(device=device, dtype=dtype)


class Maelstrom(nn.Module):
    """A frozen CubaLIF reservoir with Dale's law and sparse random recurrence.

    >>> m = Maelstrom(MaelstromConfig(n_neurons=100, seed=1))
    >>> spikes, state = m.run(torch.rand(4, 20, 100))   # currents [batch, time, neurons]

    ``parameters`` replaces the seeded draw (e.g. parameters read back from an export); the
    config then supplies only the size, ``dt`` and the threshold, reset and leak potentials.
    """

    def __init__(
        self,
        config: MaelstromConfig | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        backend: str = "auto",
        parameters: MaelstromParameters | None = None,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.config = config = config or MaelstromConfig()
        if parameters is None:
            parameters = draw_parameters(config)
        n = config.n_neurons
        shapes = {"weight": (n, n), "excitatory": (n,), "tau_mem": (n,), "tau_syn": (n,)}
        if config.adaptation:
            shapes["tau_adapt"] = (n,)
        if config.max_delay > 1:
            shapes["delay"] = (n, n)
        for name, shape in shapes.items():
            if getattr(parameters, name) is None:
                raise ValueError(
                    f"maelstrom parameter {name} is missing: adaptation={config.adaptation}, "
                    f"max_delay={config.max_delay} need it"
                )
            got = tuple(getattr(parameters, name).shape)
            if got != shape:
                raise ValueError(f"maelstrom parameter {name} has shape {got}; n_neurons={n} needs {shape}")
        device = resolve_device(device)
        as_buffer = dict(device=device, dtype=dtype)
        tau_mem = parameters.tau_mem.to(**as_buffer)
        tau_syn = parameters.tau_syn.to(**as_buffer)
        # W is laid out transposed in memory (rows = presynaptic neurons, which the event path
        # gathers); ``weight`` is its [post, pre] view and ``weight_t`` the contiguous W^T, one copy.
        self.register_buffer("weight", parameters.weight.to(**as_buffer).T.contiguous().T)
        self.register_buffer("excitatory", parameters.excitatory.to(device=device, dtype=torch.bool))
        self.register_buffer("tau_mem", tau_mem)
        self.register_buffer("tau_syn", tau_syn)
        # Decays come from the stored time constants (not the float64 draw), so a maelstrom rebuilt
        # from exported time constants steps bit for bit like this one.
        self.register_buffer("beta", euler_decay(tau_mem.double(), config.dt).to(**as_buffer))
        self.register_buffer("alpha", euler_decay(tau_syn.double(), config.dt).to(**as_buffer))
        if config.adaptation:
            tau_adapt = parameters.tau_adapt.to(**as_buffer)
            self.register_buffer("tau_adapt", tau_adapt)
            self.register_buffer("rho", euler_decay(tau_adapt.double(), config.dt).to(**as_buffer))
        if config.max_delay > 1:
            delay = parameters.delay.to(device=device, dtype=torch.int16)
            if (
                int(delay.min()) < 0
                or int(delay.max()) > config.max_delay
                or bool(((delay == 0) != (self.weight == 0)).any())
            ):
                raise ValueError(f"maelstrom delays must be 1..{config.max_delay} steps exactly where W has a synapse")
            self.register_buffer("delay", delay)
            # [D N, N]: block d is W^T of the synapses of delay d + 1, which the spikes of d steps before the last reach
            blocks = [torch.where(delay == d, self.weight, 0.0).T for d in range(1, config.max_delay + 1)]
            self.register_buffer("delayed_weight_t", torch.cat(blocks), persistent=False)
        potentials = torch.tensor([config.v_threshold, config.v_reset, config.v_leak], dtype=torch.float64)
        self.register_buffer("potentials", potentials.to(**as_buffer), persistent=False)  # for the fused step

    @property
    def weight_t(self) -> Tensor:
        """W^T ``[pre, post]``, a view of ``weight`` (contiguous: see the layout note in ``__init__``)."""
        return self.weight.T

    @property
    def backend(self) -> str:
        """The name of the simulation backend (one of ``backends.BACKENDS``, described there); all
        give the same spikes up to float summation order. Setting it starts a new one, caches empty."""
        return self.engine.name

    @backend.setter
    def backend(self, value: str) -> None:
        self.engine: Backend = make_backend(value)

    @property
    def n_neurons(self) -> int:
        return self.config.n_neurons

    @property
    def dt(self) -> float:
        return self.config.dt

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"n_neurons={c.n_neurons}, topology={c.topology}, spectral_radius={c.spectral_radius}, "
            f"recurrent={c.recurrent}, adaptation={c.adaptation}, max_delay={c.max_delay}, seed={c.seed}"
        )

    @property
    def adaptive(self) -> bool:
        """Whether the neurons adapt."""
        return self.config.adaptation > 0

    @property
    def delayed(self) -> bool:
        """Whether recurrent synapses delay spikes by more than one step."""
        return self.config.max_delay > 1

    def init_state(self, batch_size: int) -> CubaLIFState | MaelstromState:
        """All neurons at rest for a batch (no adaptation, no spikes in flight); a ``MaelstromState``
        when the neurons adapt or the synapses delay."""
        state = cuba_lif_initial_state(
            batch_size, self.n_neurons, self.config.v_leak, self.weight.device, self.weight.dtype
        )
        if not (self.adaptive or self.delayed):
            return state
        a = state.z.new_zeros(batch_size, self.n_neurons if self.adaptive else 0)
        history = state.z.new_zeros(batch_size, (self.config.max_delay - 1) * self.n_neurons)
        return MaelstromState(*state, a=a, history=history)

    @torch.no_grad()
    def step(self, current: Tensor, state: CubaLIFState) -> CubaLIFState:
        """One step: ``current [batch, neurons]`` from outside plus the recurrent input of the last spikes."""
        current = current.detach().to(self.weight.dtype)
        if current.shape[-1] != self.n_neurons:
            raise ValueError(
                f"input current has {current.shape[-1]} channels; the maelstrom has {self.n_neurons} neurons"
            )
        return self.engine.step(self, current, state)

    @torch.no_grad()
    def run(
        self,
        currents: Tensor,
        state: CubaLIFState | None = None,
        record: bool = True,
        probe: Probe | None = None,
        feedback: Feedback | None = None,
    ) -> tuple[Tensor | None, CubaLIFState]:
        """Run a sequence ``currents [batch, time, neurons]``; returns spikes ``[batch, time, neurons]``
        (None when ``record=False``) and the final state, to continue from in the next chunk.
        A ``probe`` has the readout's features written into it as the steps run; a ``feedback``
        (which needs the probe) closes the readout's prediction back onto the input."""
        if feedback is not None and probe is None:
            raise ValueError("feedback reads the readout's features: pass a probe too")
        currents = run_input(currents, self.n_neurons, self.weight.device, self.weight.dtype)
        state = self.init_state(currents.shape[0]) if state is None else state
        spikes = torch.empty_like(currents) if record else None
        return spikes, self.engine.run(self, currents, state, spikes, probe, feedback)

    def _apply(self, fn: Any, recurse: bool = True) -> Maelstrom:
        self.engine.clear()  # what the backend derived points at the buffers being moved or cast
        return super()._apply(fn, recurse)
