"""Reservoir measures: what a maelstrom remembers, separates and amplifies, and how it fires.

Small functions on tensors (``[batch, time, neurons]`` spikes and states), and the drivers that
run a maelstrom to get them:

- ``memory_capacity`` (Jaeger 2002): a linear readout of the state at ``t`` reconstructs the input
  ``u(t - k)``; ``MC_k`` is the squared correlation on held-out streams, ``MC = sum_k MC_k``. A
  reservoir of ``F`` linear features has ``MC <= F``.
- ``numerical_rank``: kernel rank (distinct inputs, high is good) and generalisation rank (noisy
  copies of one input, low is good) are the rank of the end states (Legenstein & Maass 2007).
- ``separation``: state distance against input distance (Maass et al. 2002).
- ``perturbation``: one extra spike of one neuron, and the distance between the perturbed and the
  unperturbed runs over time (late size > 1 spike: chaotic amplification; 0: it faded).
- ``firing_statistics``: rates, silent share, ISI CV and synchrony (Golomb 2007).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from torch import Tensor

from .maelstrom import Maelstrom
from .probe import Probe


@dataclass
class MeasureConfig:
    """How the measures drive and read a maelstrom (``maelstrom simulate``'s settings).

    The generated drive is ``(1 - alpha) (bias + gain w u(t))`` per neuron: ``u(t)`` uniform in
    [-1, 1], drawn afresh every ``hold`` steps, i.i.d. per stream; ``w`` a fixed standard normal
    input weight per neuron, so a constant drive ``c`` holds an unconnected neuron's membrane at
    ``c`` thresholds. Delays and the washout count holds.
    """

    steps: Annotated[int, "steps per stream"] = 500
    samples: Annotated[int, "input streams (batch) per measure"] = 32
    input_bias: Annotated[float, "the generated drive's offset, in thresholds"] = 0.9
    input_gain: Annotated[float, "the generated drive's spread, in thresholds"] = 0.5
    hold: Annotated[int, "steps each value of the generated input is held"] = 10
    delays: Annotated[int, "memory capacity: delays 1..delays, in holds"] = 20
    washout: Annotated[int, "holds dropped before the measures read the state"] = 5
    ridge: Annotated[float, "memory capacity: ridge penalty, relative to the mean feature variance"] = 1e-4
    rank_tolerance: Annotated[float, "ranks count singular values above this share of the largest"] = 0.01
    rank_inputs: Annotated[int, "ranks: inputs (columns of the state matrix)"] = 100
    noise: Annotated[float, "generalisation rank: noise added to one input, as a share of its spread"] = 0.1
    trace_tau: Annotated[float, "the state read: spike traces with this time constant, in seconds"] = 0.05
    seed: Annotated[int, "seed of the generated input and of the perturbed neurons"] = 0

    def __post_init__(self) -> None:
        if min(self.steps, self.samples, self.hold, self.delays, self.rank_inputs) < 1 or self.washout < 0:
            raise ValueError("steps, samples, hold, delays and rank_inputs must be >= 1 and washout >= 0")
        if max(self.washout, self.delays) >= self.steps // self.hold:
            holds = self.steps // self.hold
            raise ValueError(
                f"washout {self.washout} and delays {self.delays} (in holds) must be below the {holds} holds "
                f"of steps {self.steps} (hold {self.hold})"
            )
        if self.samples < 2:
            raise ValueError("memory capacity holds out streams: samples must be >= 2")


def scalar_drive(maelstrom: Maelstrom, config: MeasureConfig, samples: int | None = None) -> tuple[Tensor, Tensor]:
    """The generated input: its values ``u [B, steps // hold]`` and the currents ``[B, T, N]`` they
    make (``MeasureConfig``), ``T`` a whole number of holds."""
    w, generator = input_weights(maelstrom, config.seed)
    shape = (samples or config.samples, config.steps // config.hold)
    u = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
    return u, drive_currents(maelstrom, u, w, config)


def input_weights(maelstrom: Maelstrom, seed: int) -> tuple[Tensor, torch.Generator]:
    """The generated input's weights ``w [N]`` for ``seed``, and the generator that drew them (it
    draws the input values next)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(maelstrom.n_neurons, generator=generator, dtype=torch.float64), generator


def drive_currents(maelstrom: Maelstrom, u: Tensor, w: Tensor, config: MeasureConfig) -> Tensor:
    """The currents ``[B, T, N]`` of the scalar input values ``u [B, H]``, each held ``hold`` steps,
    through input weights ``w [N]``."""
    drive = config.input_bias + config.input_gain * u.repeat_interleave(config.hold, dim=1)[..., None] * w
    return ((1 - maelstrom.alpha.double().cpu()) * drive).to(maelstrom.weight.device, maelstrom.weight.dtype)


def traces(spikes: Tensor, decay: float) -> Tensor:
    """Spike traces ``trace_t = decay trace_{t-1} + z_t`` of ``spikes [B, T, N]``."""
    out = torch.empty_like(spikes)
    trace = torch.zeros_like(spikes[:, 0])
    for t in range(spikes.shape[1]):
        trace = trace.mul(decay).add_(spikes[:, t])
        out[:, t] = trace
    return out


def trace_decay(maelstrom: Maelstrom, config: MeasureConfig) -> float:
    """The trace's per-step decay (forward Euler, as the network's)."""
    if config.trace_tau <= maelstrom.dt:
        raise ValueError(f"trace_tau={config.trace_tau} must exceed the maelstrom's dt={maelstrom.dt}")
    return 1.0 - maelstrom.dt / config.trace_tau


def memory_capacity(u: Tensor, states: Tensor, delays: int, washout: int, ridge: float = 1e-4) -> list[float]:
    """``MC_k`` for ``k = 1..delays``: how well a ridge readout of ``states [B, T, F]`` at each step
    reconstructs the input value ``k`` values back, ``u [B, H]`` (each held ``T // H`` steps):
    squared correlation on the last quarter of the streams, fitted on the rest, from value
    ``max(washout, delays)`` on."""
    hold = states.shape[1] // u.shape[1]
    start = max(washout, delays)
    values = torch.arange(start * hold, u.shape[1] * hold) // hold
    x = states[:, start * hold : u.shape[1] * hold].double()
    targets = torch.stack([u[:, values - k] for k in range(1, delays + 1)], dim=-1).double()
    held = max(1, u.shape[0] // 4)
    x_fit, y_fit = x[:-held].reshape(-1, x.shape[-1]), targets[:-held].reshape(-1, delays)
    x_mean, y_mean = x_fit.mean(0), y_fit.mean(0)
    xc = x_fit - x_mean
    gram = xc.T @ xc
    penalty = ridge * max(float(gram.diagonal().mean()), 1e-12)
    weights = torch.linalg.solve(gram + penalty * torch.eye(gram.shape[0], dtype=gram.dtype), xc.T @ (y_fit - y_mean))
    x_test, y_test = x[-held:].reshape(-1, x.shape[-1]), targets[-held:].reshape(-1, delays)
    predicted = (x_test - x_mean) @ weights + y_mean
    return [squared_correlation(predicted[:, k], y_test[:, k]) for k in range(delays)]


def squared_correlation(a: Tensor, b: Tensor) -> float:
    """Pearson's r squared of two series (0 where either is constant)."""
    a, b = a - a.mean(), b - b.mean()
    denominator = float((a @ a) * (b @ b))
    return float((a @ b) ** 2) / denominator if denominator > 0 else 0.0


def numerical_rank(states: Tensor, tolerance: float = 0.01) -> int:
    """The number of singular values of ``states [inputs, F]`` above ``tolerance`` times the
    largest (0 for an all-zero matrix)."""
    singular = torch.linalg.svdvals(states.double())
    if singular.numel() == 0 or float(singular[0]) == 0.0:
        return 0
    return int((singular > tolerance * singular[0]).sum())


def end_states(maelstrom: Maelstrom, currents: Tensor, decay: float) -> Tensor:
    """The spike traces after the last step, one row per input ``[B, N]``."""
    spikes, _ = maelstrom.run(currents)
    return traces(spikes, decay)[:, -1]


def state_distance(a: Tensor, b: Tensor) -> Tensor:
    """Per-step Euclidean distance of two state sequences ``[B, T, F]``, averaged over the batch: ``[T]``."""
    return (a.double() - b.double()).norm(dim=-1).mean(0)


def perturbation(maelstrom: Maelstrom, currents: Tensor, at: int, decay: float, seed: int = 0) -> Tensor:
    """The distance ``[T - at]`` between a run and the same run with one extra spike of one random
    neuron per sample at step ``at`` (the state: spike traces, synaptic currents and membranes).

    The extra spike is put into the state's last spikes, which only the recurrent weights read, so
    without recurrence the two runs are identical."""
    if not 0 < at < currents.shape[1]:
        raise ValueError(f"the perturbation step must lie in 1..{currents.shape[1] - 1}, got {at}")
    _, state = maelstrom.run(currents[:, :at], record=False)
    neurons = torch.randint(maelstrom.n_neurons, (currents.shape[0],), generator=torch.Generator().manual_seed(seed))
    z = state.z.clone()
    z[torch.arange(z.shape[0]), neurons.to(z.device)] = 1.0
    kicked = state._replace(z=z)
    rest = currents[:, at:]
    runs = [recorded_state(maelstrom, rest, start, decay) for start in (state, kicked)]
    return state_distance(*runs)


def recorded_state(maelstrom: Maelstrom, currents: Tensor, state: Any, decay: float) -> Tensor:
    """The per-step state (trace, current, voltage) ``[B, T, 3N]`` of a run from ``state``."""
    b, t, n = currents.shape
    like = {"dtype": maelstrom.weight.dtype, "device": maelstrom.weight.device}
    probe = Probe(("trace", "current", "voltage"), torch.empty(b, t, 3 * n, **like), torch.zeros(b, n, **like), decay)
    maelstrom.run(currents, state, record=False, probe=probe)
    return probe.out


def growth(distance: Tensor) -> tuple[float, float | None]:
    """The perturbation's late size: the mean of the last tenth of ``distance [T]``, in units of
    the one spike put in (whose trace is 1), and its growth exponent per step, ``ln(size) / T``
    (None when the perturbation died out or reached nothing)."""
    late = float(distance[-max(1, distance.numel() // 10) :].mean())
    return late, math.log(late) / distance.numel() if late > 0 else None


def firing_statistics(spikes: Tensor, dt: float) -> dict[str, float]:
    """Rates, silent share, ISI CV and synchrony of ``spikes [B, T, N]`` (``dt`` in seconds).

    ``isi_cv`` is the mean coefficient of variation of the intervals of the trains with at least
    3 spikes (0: clockwork, about 1: Poisson); ``synchrony`` is Golomb's chi: the variance of the
    population's mean count per step over the mean of the neurons' own variances, in [0, 1]
    (1: all neurons fire together; about ``1/sqrt(N)`` for independent ones)."""
    z = spikes.double()
    b, t, n = z.shape
    per_neuron = z.sum((0, 1)) / (b * t * dt)
    population = z.mean(-1)
    own = z.var(1, unbiased=False).mean(-1)
    chi = population.var(1, unbiased=False) / own.clamp_min(1e-300)
    intervals = isi_cvs(z)
    return {
        "rate_hz": float(per_neuron.mean()),
        "rate_hz_median": float(per_neuron.median()),
        "rate_hz_max": float(per_neuron.max()),
        "silent_fraction": float((per_neuron == 0).double().mean()),
        "isi_cv": float(intervals.mean()) if intervals.numel() else 0.0,
        "synchrony": float(chi[own > 0].sqrt().mean()) if bool((own > 0).any()) else 0.0,
    }


def intervals_of(spikes: Tensor) -> list[Tensor]:
    """The inter-spike intervals (in steps) of each train of ``spikes [B, T, N]`` with two spikes or more."""
    trains = spikes.permute(0, 2, 1).reshape(-1, spikes.shape[1])
    busy = trains.sum(-1) >= 2
    return [torch.diff(torch.nonzero(train).flatten()) for train in trains[busy]]


def isi_cvs(spikes: Tensor) -> Tensor:
    """Coefficient of variation of each train's intervals (trains with at least 3 spikes)."""
    cvs = [i.double().std(unbiased=False) / i.double().mean() for i in intervals_of(spikes) if i.numel() >= 2]
    return torch.stack(cvs) if cvs else torch.zeros(0, dtype=torch.float64)


def separation(maelstrom: Maelstrom, config: MeasureConfig, fractions: tuple[float, ...]) -> list[dict[str, float]]:
    """State distance against input distance: pairs of generated streams that differ in a share
    ``f`` of their steps (redrawn there), for each ``f`` in ``fractions``; distances per step,
    after the washout (input: RMS of ``u_a - u_b``; state: Euclidean distance of the traces)."""
    generator = torch.Generator().manual_seed(config.seed + 1)
    u, currents = scalar_drive(maelstrom, config)
    w, _ = input_weights(maelstrom, config.seed)
    decay = trace_decay(maelstrom, config)
    skip = config.washout * config.hold
    reference = traces(maelstrom.run(currents)[0], decay)[:, skip:]
    curve = []
    for fraction in fractions:
        redrawn = torch.rand(u.shape, generator=generator, dtype=torch.float64) < fraction
        other = torch.where(redrawn, torch.rand(u.shape, generator=generator, dtype=torch.float64) * 2 - 1, u)
        states = traces(maelstrom.run(drive_currents(maelstrom, other, w, config))[0], decay)[:, skip:]
        gap = (u - other)[:, config.washout :]
        curve.append(
            {
                "fraction": fraction,
                "input_distance": float(gap.pow(2).mean().sqrt()),
                "state_distance": float(state_distance(reference, states).mean()),
            }
        )
    return curve


SEPARATION_FRACTIONS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0)


def generated_memory(maelstrom: Maelstrom, config: MeasureConfig) -> tuple[list[float], Tensor, Tensor]:
    """Memory capacity per delay on the generated input, with the currents and spikes of that run."""
    u, currents = scalar_drive(maelstrom, config)
    spikes, _ = maelstrom.run(currents)
    states = traces(spikes, trace_decay(maelstrom, config))
    return memory_capacity(u, states, config.delays, config.washout, config.ridge), currents, spikes


def ranks(
    maelstrom: Maelstrom, config: MeasureConfig, currents: Tensor | None, labels: Tensor | None
) -> dict[str, int]:
    """Kernel and generalisation rank over the same number of inputs. Generated input: distinct
    streams, and copies of one stream with Gaussian noise of ``noise`` on its values. Given
    ``currents [B, T, N]`` with their ``labels``: the first samples, and the samples of the first
    sample's class."""
    decay = trace_decay(maelstrom, config)
    if currents is None:
        count = min(config.rank_inputs, maelstrom.n_neurons)
        u, distinct = scalar_drive(maelstrom, config, count)
        generator = torch.Generator().manual_seed(config.seed + 2)
        noisy = (u[:1] + config.noise * torch.randn(u.shape, generator=generator, dtype=torch.float64)).clamp(-1, 1)
        alike = drive_currents(maelstrom, noisy, input_weights(maelstrom, config.seed)[0], config)
    else:
        if labels is None:
            raise ValueError("ranks on given currents need their labels")
        alike = currents[(labels == labels[0]).to(currents.device)][: config.rank_inputs]
        count = len(alike)
        distinct = currents[:count]
    return {
        "kernel_rank": numerical_rank(end_states(maelstrom, distinct, decay), config.rank_tolerance),
        "generalisation_rank": numerical_rank(end_states(maelstrom, alike, decay), config.rank_tolerance),
        "rank_inputs": count,
    }


def measure(
    maelstrom: Maelstrom, config: MeasureConfig, currents: Tensor | None = None, labels: Tensor | None = None
) -> dict[str, Any]:
    """Every measure of ``maelstrom``: memory capacity and separation on the generated input; the
    ranks, the perturbation and the firing statistics on ``currents [B, T, N]`` with their
    ``labels`` (e.g. a data set's through its encoder; the last two on the first ``samples``), or
    on the generated input when None.
    Returns the measures and, under ``recorded``, what the plots draw (``spikes`` of the run, MC
    per delay, the ISIs in steps, the population rate per step, the perturbation's distance)."""
    decay = trace_decay(maelstrom, config)
    per_delay, generated, spikes_u = generated_memory(maelstrom, config)
    run_on = (generated if currents is None else currents)[: config.samples]
    spikes = spikes_u if currents is None else maelstrom.run(run_on)[0]
    at = min(config.washout * config.hold, run_on.shape[1] // 2) or 1
    distance = perturbation(maelstrom, run_on, at, decay, config.seed)
    ratio, exponent = growth(distance)
    intervals = intervals_of(spikes)
    return {
        "memory_capacity": sum(per_delay),
        **ranks(maelstrom, config, currents, labels),
        "perturbation_growth": ratio,
        "lyapunov_per_step": exponent,
        **firing_statistics(spikes, maelstrom.dt),
        "separation": separation(maelstrom, config, SEPARATION_FRACTIONS),
        "recorded": {
            "spikes": spikes,
            "memory_capacity_per_delay": per_delay,
            "isi_steps": torch.cat(intervals).tolist() if intervals else [],
            "population_rate_hz": (spikes.double().mean((0, 2)) / maelstrom.dt).tolist(),
            "perturbation_distance": distance.tolist(),
        },
    }
