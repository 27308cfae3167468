"""The maelstrom: a frozen recurrent spiking network (liquid-state style) that holds the memory.

Its weights and neuron parameters are buffers, never parameters; every update runs under
``torch.no_grad`` on detached inputs, so no gradient can enter or cross it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Any, NamedTuple, TypeVar

import torch
from torch import Tensor, nn

from . import fused, fused_cpu
from .connectivity import draw_connectivity
from .device import resolve_device
from .neuron import CubaLIFState, cuba_lif_initial_state, cuba_lif_step, euler_decay

Derived = TypeVar("Derived")

PROBE_FEATURES = fused_cpu.PROBE_FEATURES

BACKENDS = ("auto", "dense", "event", "sparse", "fused", "graph")
GRAPH_CHUNK = 64  # steps per CUDA-graph replay: one launch, not ~10 kernel launches, per step
GRAPH_CACHE = 4  # captured graphs kept per maelstrom (each holds its chunk of inputs and spikes)
RECHOOSE_STEPS = 25  # ``run`` on the CPU calls the fused kernel, or chooses auto's product, per this many steps

_OMP_REGION = torch.empty(2 * 32768)  # see the sparse product in ``Maelstrom._add_recurrent``

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
    recurrent: Annotated[bool, "the recurrent weights on (off: the ablation without recurrence)"] = True
    seed: Annotated[int, "seed of the connectivity and time constants"] = 0

    def __post_init__(self) -> None:
        if self.n_neurons < 1:
            raise ValueError(f"n_neurons must be >= 1, got {self.n_neurons}")
        if not 0 <= self.excitatory_fraction <= 1:
            raise ValueError(f"excitatory_fraction must be in [0, 1], got {self.excitatory_fraction}")
        if not self.dt > 0 or not self.spectral_radius >= 0:
            raise ValueError(f"dt must be > 0 and spectral_radius >= 0, got {self.dt} and {self.spectral_radius}")
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
        for key in ("tau_mem", "tau_syn"):
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
    the ``excitatory`` mask of presynaptic neurons, and per-neuron ``tau_mem`` and ``tau_syn`` (s)."""

    weight: Tensor
    excitatory: Tensor
    tau_mem: Tensor
    tau_syn: Tensor


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
    return MaelstromParameters(conn.weight, conn.excitatory, tau_mem, tau_syn)


@dataclass
class Probe:
    """The readout's per-step features, written by ``Maelstrom.run`` as the steps go.

    ``names`` (from ``PROBE_FEATURES``) lie side by side in ``out [B, T, len(names) N]``: the
    spike ``trace`` (filtered as ``trace <- decay trace + z``), the synaptic ``current`` and the
    membrane ``voltage`` after the step. ``run`` writes its steps at ``out[:, t:]``, then moves
    ``t`` on and replaces ``trace`` with the new one, so one probe follows a window run in parts.
    """

    names: tuple[str, ...]
    out: Tensor
    trace: Tensor
    decay: float
    t: int = 0

    def __post_init__(self) -> None:
        bad = [name for name in self.names if name not in PROBE_FEATURES]
        if bad or not self.names:
            raise ValueError(f"probe features must be a non-empty subset of {PROBE_FEATURES}, got {self.names}")
        n = self.trace.shape[-1]
        if self.out.shape[-1] != len(self.names) * n:
            need = len(self.names) * n
            raise ValueError(f"probe out has {self.out.shape[-1]} features; {self.names} of {n} neurons need {need}")

    def write(self, state: CubaLIFState) -> None:
        """Take one step's state: update the trace and write the features at step ``t``."""
        self.trace = torch.mul(self.trace, self.decay).add_(state.z)
        parts = {"trace": self.trace, "current": state.i, "voltage": state.v}
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
    the readout's scores of that step's probe features, ``head(features readout^T + bias)``.
    ``weight [C, N]``; ``readout [H, F]`` and ``bias [H]`` are an affine map of the features (a
    network folds its readout's normalisation in) and ``head`` what follows it (an MLP readout's
    hidden layers; None for a linear readout, the kind the fused CPU kernel runs itself).
    ``p [B, C]`` is the feedback in force; ``out [B, T, C]`` receives the ``p`` each step got, at
    the probe's step index.
    """

    weight: Tensor
    readout: Tensor
    bias: Tensor
    p: Tensor
    out: Tensor
    head: Callable[[Tensor], Tensor] | None = None

    def current(self, currents: Tensor, t: int) -> Tensor:
        """Step ``t``'s input from its ``currents [B, N]``, recording the feedback it got."""
        self.out[:, t] = self.p
        return torch.addmm(currents, self.p, self.weight)

    def observe(self, features: Tensor) -> None:
        """Take a step's features ``[B, F]``: the next feedback is the softmax of their scores."""
        scores = torch.addmm(self.bias, features, self.readout.T)
        self.p = torch.softmax(scores if self.head is None else self.head(scores), dim=-1)


def run_input(currents: Tensor, n_neurons: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``currents [batch, time, neurons]`` checked, detached and moved to ``device`` and ``dtype``."""
    if currents.dim() != 3:
        raise ValueError(f"currents must be [batch, time, neurons], got shape {tuple(currents.shape)}")
    if currents.shape[-1] != n_neurons:
        raise ValueError(f"input current has {currents.shape[-1]} channels; the maelstrom has {n_neurons} neurons")
    return currents.detach().to(device=device, dtype=dtype)


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
        for name, shape in (("weight", (n, n)), ("excitatory", (n,)), ("tau_mem", (n,)), ("tau_syn", (n,))):
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
        potentials = torch.tensor([config.v_threshold, config.v_reset, config.v_leak], dtype=torch.float64)
        self.register_buffer("potentials", potentials.to(**as_buffer), persistent=False)  # for the fused step

    @property
    def weight_t(self) -> Tensor:
        """W^T ``[pre, post]``, a view of ``weight`` (contiguous: see the layout note in ``__init__``)."""
        return self.weight.T

    @property
    def backend(self) -> str:
        """How a step computes the recurrent input ``z W^T`` (all give the same spikes up to float
        summation order; ``event`` and ``fused`` the same bits):

        - ``dense``: one matmul with all of W (cost B N^2, whatever the spikes);
        - ``event``: each sample adds up the rows of W^T of the neurons it saw spike (one
          ``embedding_bag``), so the cost follows the spike count (spikes x N);
        - ``sparse``: W as a CSR matrix times the spikes: cost follows the synapse count (B
          synapses), whatever the rate; for dense firing in a sparse network;
        - ``fused`` (CPU only): the event product and the neuron update in one compiled kernel
          (``fused_cpu``, numba) that runs a whole window of steps per call, one sample per thread;
        - ``graph`` (CUDA only): ``run`` replays a captured CUDA graph of ``GRAPH_CHUNK`` dense
          steps, so the time loop costs no Python or launch overhead per step;
        - ``auto``: on the CPU ``fused`` (``event`` where numba is missing: the same spikes,
          slower), and ``sparse`` while more neurons spike than ``fused_cpu.max_rate`` (chosen
          at each step, and every ``RECHOOSE_STEPS`` steps in ``run``; the CSR product sums in
          the same order, so the bits do not depend on the choice); on CUDA, graph in ``run``
          and dense in ``step`` and in runs with a ``Probe``.
        """
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if value not in BACKENDS:
            raise ValueError(f"unknown backend {value!r}: choose one of {', '.join(BACKENDS)}")
        self._backend = value
        self._graphs: dict[tuple, _ChunkGraph] = {}
        self._derived: dict[str, tuple[tuple, Tensor]] = {}
        self._event_ran = False

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
            f"recurrent={c.recurrent}, seed={c.seed}"
        )

    def init_state(self, batch_size: int) -> CubaLIFState:
        """All neurons at rest for a batch."""
        return cuba_lif_initial_state(
            batch_size, self.n_neurons, self.config.v_leak, self.weight.device, self.weight.dtype
        )

    def _plan(self, z: Tensor | None = None) -> str:
        """The backend in force on this device, for a step after the spikes ``z`` (see ``backend``)."""
        backend, cuda = self._backend, self.weight.is_cuda
        if backend == "graph" and not cuda:
            raise ValueError("backend 'graph' needs the maelstrom on a CUDA device; use 'auto' on the CPU")
        if backend == "fused" and cuda:
            raise ValueError("backend 'fused' is the CPU kernel; on CUDA use 'auto' or 'graph'")
        if backend == "fused" and not fused_cpu.available():
            raise ValueError("backend 'fused' needs numba (pip install numba); 'event' gives the same spikes")
        if backend != "auto":
            return backend
        if cuda:
            return "graph"
        busy = z is not None and self.config.recurrent and float(z.mean()) > fused_cpu.max_rate(self.weight)
        return "sparse" if busy else ("fused" if fused_cpu.available() else "event")

    @torch.no_grad()
    def step(self, current: Tensor, state: CubaLIFState) -> CubaLIFState:
        """One step: ``current [batch, neurons]`` from outside plus the recurrent input of the last spikes."""
        current = current.detach().to(self.weight.dtype)
        if current.shape[-1] != self.n_neurons:
            raise ValueError(
                f"input current has {current.shape[-1]} channels; the maelstrom has {self.n_neurons} neurons"
            )
        plan = self._plan(state.z)
        if plan == "fused":
            return self._run_fused(current.unsqueeze(1), state, None, None)
        if self.config.recurrent:
            current = self._add_recurrent(current, state.z, plan)
        if current.is_cuda and fused.available():
            return fused.cuba_lif_step(current, state, self.beta, self.alpha, self.potentials)
        c = self.config
        return cuba_lif_step(current, state, self.beta, self.alpha, c.v_threshold, c.v_reset, c.v_leak)

    def _add_recurrent(self, current: Tensor, z: Tensor, backend: str) -> Tensor:
        if backend == "event":
            # Spikes are 0 or 1: one bag of W^T rows per sample, the rows of the neurons that spiked.
            # (nonzero on bools is about 25 % cheaper than on floats on the CPU.)
            sample, neuron = z.bool().nonzero(as_tuple=True)
            offsets = torch.searchsorted(sample, torch.arange(z.shape[0], device=z.device))
            rows = nn.functional.embedding_bag(neuron, self.weight_t, offsets, mode="sum")
            self._event_ran = not z.is_cuda
            return rows.add_(current)
        if backend == "sparse":
            if self._event_ran:
                # Measured (torch 2.13 CPU, 2 threads): after embedding_bag, MKL's CSR product runs
                # about 2x slower until some operation opens a multi-threaded OpenMP region again.
                # Filling 2 x GRAIN_SIZE floats opens one (tens of us) and changes no number.
                _OMP_REGION.fill_(0.0)
                self._event_ran = False
            return torch.sparse.mm(self.sparse_weight, z.T).T.add(current)
        return torch.addmm(current, z, self.weight_t)

    def _derive(self, name: str, source: Tensor, build: Callable[[], Derived]) -> Derived:
        """``build()``, kept while the buffer ``source`` it comes from is unchanged (the CSR copies
        of W, the fused kernel's ``1 - beta``)."""
        key = (source.data_ptr(), source._version, source.device, source.dtype)
        if name not in self._derived or self._derived[name][0] != key:
            self._derived[name] = (key, build())
        return self._derived[name][1]

    @staticmethod
    def _csr(matrix: Tensor) -> Tensor:
        with warnings.catch_warnings():  # torch calls CSR "beta"; the one product used here is stable
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            csr = matrix.to_sparse_csr()
        indices = dict(dtype=torch.int32) if matrix.numel() < 2**31 else {}
        return torch.sparse_csr_tensor(
            csr.crow_indices().to(**indices),
            csr.col_indices().to(**indices),
            csr.values(),
            csr.shape,
            check_invariants=False,  # built by to_sparse_csr: valid by construction
        )

    @property
    def sparse_weight(self) -> Tensor:
        """W ``[post, pre]`` as a CSR matrix (int32 indices), built on first use and kept while
        ``weight`` is unchanged; the sparse backend multiplies it with the spikes."""
        return self._derive("sparse", self.weight, lambda: self._csr(self.weight))

    def _fused_weights(self) -> tuple[Tensor, ...]:
        """The rows of W^T as the fused kernel reads them: dense for a small, dense W
        (``fused_cpu.dense_rows``), else CSR ``(indptr, indices, values)`` (``fused_cpu.csr_rows``);
        none without recurrence."""
        if not self.config.recurrent:
            return ()
        weight = self.weight
        density = self._derive("density", weight, lambda: float(torch.count_nonzero(weight)) / weight.numel())
        if fused_cpu.dense_rows(self.weight, density):
            return (self.weight_t,)
        return self._derive("fused", self.weight, lambda: fused_cpu.csr_rows(self._csr(self.weight_t.contiguous())))

    def _run_fused(
        self,
        currents: Tensor,
        state: CubaLIFState,
        spikes: Tensor | None,
        probe: Probe | None,
        feedback: Feedback | None = None,
    ) -> CubaLIFState:
        trace = features = loop = None
        if probe is not None:
            steps = slice(probe.t, probe.t + currents.shape[1])
            trace = (probe.trace, probe.decay)
            features = (probe.out[:, steps], probe.names)
            if feedback is not None:
                f = feedback
                loop = (f.weight, f.readout.contiguous(), f.bias, f.p, f.out[:, steps])
        state, new_trace, new_p = fused_cpu.run_window(
            currents, state, self._fused_weights(), self.alpha, self.beta,
            self._derive("gain", self.beta, lambda: 1.0 - self.beta), self.potentials,
            spikes, trace, features, loop,
        )  # fmt: skip
        if probe is not None:
            probe.advance(currents.shape[1], new_trace)
        if feedback is not None:
            feedback.p = new_p
        return state

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
        batch, steps = currents.shape[:2]
        state = self.init_state(batch) if state is None else state
        spikes = torch.empty_like(currents) if record else None
        if self._plan() == "graph" and probe is None:
            for start in range(0, steps, GRAPH_CHUNK):
                stop = min(start + GRAPH_CHUNK, steps)
                out = spikes[:, start:stop] if spikes is not None else None
                state = self._graph(batch, stop - start, record).replay(currents[:, start:stop], state, out)
            return spikes, state
        in_kernel = feedback is None or feedback.head is None  # the kernel runs an affine readout only
        for start in range(0, steps, RECHOOSE_STEPS):
            part = slice(start, start + RECHOOSE_STEPS)
            out = spikes[:, part] if spikes is not None else None
            if in_kernel and self._plan(state.z) == "fused":
                state = self._run_fused(currents[:, part], state, out, probe, feedback)
            else:
                state = step_through(self.step, currents[:, part], state, out, probe, feedback)
        return spikes, state

    def _apply(self, fn: Any, recurse: bool = True) -> Maelstrom:
        self._graphs.clear()  # captured graphs point at the buffers being moved or cast
        self._derived.clear()
        return super()._apply(fn, recurse)

    def _graph(self, batch: int, steps: int, record: bool) -> _ChunkGraph:
        key = (batch, steps, record, self.weight.data_ptr(), self.weight.dtype)
        if key not in self._graphs:
            if len(self._graphs) >= GRAPH_CACHE:
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = _ChunkGraph(self, batch, steps, record)
        return self._graphs[key]


class _ChunkGraph:
    """A CUDA graph of ``steps`` maelstrom steps on static buffers: the inputs are copied in, the
    graph replayed, the state and spikes copied out (so callers never see the static buffers)."""

    def __init__(self, maelstrom: Maelstrom, batch: int, steps: int, record: bool) -> None:
        self.maelstrom = maelstrom
        self.state = maelstrom.init_state(batch)
        self.currents = self.state.v.new_zeros(batch, steps, maelstrom.n_neurons)
        self.spikes = torch.zeros_like(self.currents) if record else None
        side = torch.cuda.Stream(self.currents.device)
        side.wait_stream(torch.cuda.current_stream(self.currents.device))
        with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
            self._steps()
        torch.cuda.current_stream(self.currents.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._steps()

    def _steps(self) -> None:
        state = self.state
        for t in range(self.currents.shape[1]):
            state = self.maelstrom.step(self.currents[:, t], state)
            if self.spikes is not None:
                self.spikes[:, t].copy_(state.z)
        for static, new in zip(self.state, state, strict=True):
            static.copy_(new)

    def replay(self, currents: Tensor, state: CubaLIFState, spikes: Tensor | None) -> CubaLIFState:
        self.currents.copy_(currents)
        for static, given in zip(self.state, state, strict=True):
            static.copy_(given)
        self.graph.replay()
        if spikes is not None:
            spikes.copy_(self.spikes)
        return CubaLIFState(*(s.clone() for s in self.state))
