"""Quantisation of the on-chip part (encoder weights and the maelstrom) to a hardware target, with
every limit checked, and a simulator with the target's integer arithmetic to measure the cost.

The chip runs a CUBA neuron whose membrane integrates the synaptic current unscaled::

    i <- decay_syn(i) + W_in x + b + W z        (integers, saturating at the state width)
    v <- decay_mem(v) + i
    z = v > threshold; then v <- 0 (reset "zero") or v - threshold (reset "subtract")

and each target may say otherwise (its TOML, see ``hardware/README.md``): ``state.order =
"add-decay"`` decays after adding, ``i <- decay_syn(i + W_in x + b + W z)``; ``spike.compare =
">="`` fires on ``v >= threshold``; ``spike.max_per_step = M`` fires ``z = min(M, spikes)`` times,
taking one threshold off ``v`` for each (so ``z`` is a count); ``spike.input_max_per_step = K``
clips each input channel to ``K`` spikes per step; ``decay.min_step = 1`` moves any non-zero state
by at least 1 (``x - max(x >> s, sign x)``, Xylo's rule).

Our membrane integrates ``(1 - beta) i``, so every synapse into neuron ``j`` is multiplied by
``g_j = 1 - beta_j`` (with the chip's quantised decay; ``(1 - beta_j) / alpha_j`` under
"add-decay", whose current is ``alpha`` times ours) before quantisation, and all of neuron ``j``'s
inputs and its threshold are divided by one scale ``s`` (``scaling="per-layer"``, one for the
whole population) or ``s_j`` (``"per-channel"``), chosen so the largest weight uses the full
signed range. The readout stays on the host, in float, fed by the chip's spikes and currents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..encoders import MLPEncoder
from ..maelstrom import Maelstrom, MaelstromParameters, run_input
from ..network import MaelstromNetwork
from ..neuron import CubaLIFState
from ..probe import Probe, step_through
from ..readouts import RidgeReadout
from .nir import ExportError, encoder_affine, readout_affine
from .targets import SCALINGS, Target


@dataclass
class QuantizedNetwork:
    """A network mapped to a target. Integer-valued tensors are float64 (exact below 2**53)."""

    target: Target
    input_shape: tuple[int, ...]
    dt: float
    encoder_weight: Tensor  # [N, D], integers
    encoder_bias: Tensor  # [N], integers
    recurrent_weight: Tensor | None  # [N, N], integers, or None without recurrence
    threshold: Tensor  # [N], integers (float for a float target)
    scale: Tensor  # [N]: one integer step of the current is scale / (1 - beta) of our current
    syn_code: Tensor  # [N]: the decay as the target stores it (fraction d, shift s, or the float factor)
    mem_code: Tensor  # [N]
    alpha: Tensor  # [N]: the effective decay factors those codes give
    beta: Tensor  # [N]
    readout_weight: Tensor  # [C, F] on the float features, the current part in chip units
    readout_bias: Tensor  # [C]
    features: tuple[str, ...]
    trace_tau: float
    scaling: str
    violations: list[str]

    @property
    def n_neurons(self) -> int:
        return self.encoder_weight.shape[0]

    @property
    def gain(self) -> Tensor:
        """``g``: one integer step of the chip's input is ``scale / g`` of our current."""
        return synapse_gain(self.target, self.alpha, self.beta)

    def weight_bits_used(self) -> int:
        """Signed bits the largest quantised input weight or bias needs (a check on the mapping)."""
        parts = [self.encoder_weight, self.encoder_bias]
        parts += [self.recurrent_weight] if self.recurrent_weight is not None else []
        peak = max(float(p.abs().max()) for p in parts)
        return int(math.ceil(math.log2(peak + 1))) + 1 if peak > 0 else 1

    def summary(self) -> dict[str, object]:
        """What the mapping uses, for reports and the CLI."""
        return {
            "neurons": self.n_neurons,
            "inputs": self.encoder_weight.shape[1],
            "recurrent": self.recurrent_weight is not None,
            "scaling": self.scaling,
            "weight_bits_used": self.weight_bits_used() if self.target.integer else None,
            "threshold_range": [float(self.threshold.min()), float(self.threshold.max())],
            "synaptic_decays": int(torch.unique(self.syn_code).numel()),
            "membrane_decays": int(torch.unique(self.mem_code).numel()),
            "violations": self.violations,
        }

    def dequantized(self, network: MaelstromNetwork) -> MaelstromNetwork:
        """``network`` with the values this mapping represents, in float (weights ``W_q s / (1 - beta)``,
        time constants from the quantised decays): what a float simulator of an exported file runs.
        Feedback, if any, is left out as in the mapping."""
        from .nir import from_nir, to_nir  # the NIR round trip copies the network into plain parts

        copy = from_nir(to_nir(network, drop_feedback=True))
        # One integer step in our units; the threshold's rounding is folded in, so v_threshold holds.
        back = (network.maelstrom.config.v_threshold / self.threshold / self.gain)[:, None]
        tau_mem = self.dt / (1.0 - self.beta)
        tau_syn = self.dt / (1.0 - self.alpha)
        old = copy.maelstrom
        weight = self.recurrent_weight * back if self.recurrent_weight is not None else old.weight.double()
        params = MaelstromParameters(weight, old.excitatory, tau_mem, tau_syn)
        dtype = old.weight.dtype
        copy.maelstrom = Maelstrom(old.config, dtype=dtype, parameters=params)
        with torch.no_grad():
            copy.encoder.out.weight.copy_(self.encoder_weight * back)
            copy.encoder.out.bias.copy_(self.encoder_bias * back[:, 0])
        return copy

    def to_network(self) -> MaelstromNetwork:
        """A network that runs this quantised mapping with the target's arithmetic."""
        n, d = self.encoder_weight.shape
        encoder = ChipEncoder(self.input_shape, n, self.target.max_input_spikes).double()
        readout = RidgeReadout(self.readout_weight.shape[1], self.readout_weight.shape[0]).double()
        with torch.no_grad():
            encoder.out.weight.copy_(self.encoder_weight)
            encoder.out.bias.copy_(self.encoder_bias)
            readout.weight.copy_(self.readout_weight)
            readout.bias.copy_(self.readout_bias)
            readout.fitted.fill_(True)
        chip = ChipMaelstrom(self)
        return MaelstromNetwork(encoder, chip, readout, readout.n_classes, self.features, self.trace_tau, False).eval()


def _decay_codes(tau: Tensor, dt: float, target: Target, what: str, problems: list[str]) -> tuple[Tensor, Tensor]:
    """Quantise per-step decays ``1 - dt/tau`` to the target's representation: (codes, factors)."""
    exact = 1.0 - dt / tau
    spec, kind = target.decay, target.decay["kind"]
    if kind == "float":
        codes, factors = exact, exact
    elif kind == "fraction":
        full = 2 ** int(spec["bits"])
        codes = torch.round(dt / tau * full)
        bad = codes[(codes < 0) | (codes > full - 1)]
        if bad.numel():
            problems.append(f"{what} decay code {int(bad[0])} outside 0..{full - 1}")
        codes = codes.clamp(0, full - 1)
        factors = (full - codes) / full
    else:
        codes = torch.round(torch.log2(tau / dt))
        lo, hi = int(spec["shift_min"]), int(spec["shift_max"])
        bad = codes[(codes < lo) | (codes > hi)]
        if bad.numel():
            t = float(tau[(codes < lo) | (codes > hi)][0])
            problems.append(f"{what} time constant {t:.4g} s needs bit shift {int(bad[0])}, outside {lo}..{hi}")
        codes = codes.clamp(lo, hi)
        factors = 1.0 - 2.0**-codes
    distinct = int(torch.unique(codes).numel())
    if spec.get("per_layer") and distinct > 1:
        problems.append(f"one {what} decay per layer, but the maelstrom's {what} time constants give {distinct} values")
    return codes, factors


def synapse_gain(target: Target, alpha: Tensor, beta: Tensor) -> Tensor:
    """``g = 1 - beta`` (the chip's membrane adds its current unscaled), divided by ``alpha`` when the
    target decays the current after adding its input (``state.order = "add-decay"``; ``alpha = 0``,
    which leaves no current, counts as ``2**-16``)."""
    gain = 1.0 - beta
    return gain / alpha.clamp_min(2.0**-16) if target.order == "add-decay" else gain


def check_limits(
    network: MaelstromNetwork, target: Target, w_in: Tensor, readout_w: Tensor, problems: list[str]
) -> None:
    """Add every violated size, fan and feature limit of ``target`` to ``problems``."""
    lim = target.limits
    n, d = w_in.shape
    w = network.maelstrom.weight.detach().cpu().double()
    recurrent = network.maelstrom.config.recurrent
    sizes = (("inputs", d, "inputs"), ("hidden", n, "hidden neurons"), ("outputs", network.n_classes, "outputs"))
    for key, value, noun in sizes:
        if key in lim and value > lim[key]:
            problems.append(f"{value} {noun} > {lim[key]}")
    if recurrent and lim.get("recurrent") is False:
        problems.append("recurrent connections are not supported")
    if network.maelstrom.adaptive:
        problems.append("adaptive thresholds (maelstrom.adaptation > 0) are not in this project's chip mapping")
    if network.maelstrom.delayed:
        problems.append("synaptic delays (maelstrom.max_delay > 1) are not in this project's chip mapping")
    fan_in = int(((w_in != 0).sum(1) + ((w != 0).sum(1) if recurrent else 0)).max())
    if "fan_in" in lim and fan_in > lim["fan_in"]:
        problems.append(f"fan-in {fan_in} synapses into one neuron > {lim['fan_in']}")
    fan_out = int((w != 0).sum(0).max()) if recurrent else 0
    if "fan_out" in lim and fan_out > lim["fan_out"]:
        problems.append(f"fan-out {fan_out} targets of one neuron > {lim['fan_out']}")
    targets = int((w_in != 0).any(1).sum())
    if "input_targets" in lim and targets > lim["input_targets"]:
        problems.append(f"input weights reach {targets} hidden neurons > {lim['input_targets']}")
    n_feat = readout_w.shape[1] // n
    sources = int((readout_w.reshape(-1, n_feat, n) != 0).any(0).any(0).sum())
    if "readout_sources" in lim and sources > lim["readout_sources"]:
        problems.append(f"the readout reads {sources} hidden neurons > {lim['readout_sources']}")
    cfg = network.maelstrom.config
    if target.integer and (cfg.v_leak != 0 or cfg.v_reset != 0):
        problems.append(f"v_leak={cfg.v_leak} and v_reset={cfg.v_reset} must be 0 on integer hardware")


def quantize(
    network: MaelstromNetwork,
    target: Target,
    scaling: str | None = None,
    drop_feedback: bool = False,
    strict: bool = True,
) -> QuantizedNetwork:
    """Map ``network`` to ``target``; raises :class:`ExportError` naming every violated limit.
    ``strict=False`` maps anyway (out-of-range decays clamped) and lists the violations in the
    result's ``violations``: to measure the arithmetic's cost on a network the chip cannot hold."""
    scaling = scaling or target.weight.get("scaling", "per-layer")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    m = network.maelstrom
    w_in, b_in, _ = encoder_affine(network, drop_feedback)
    w_in, b_in = w_in.cpu().double(), b_in.cpu().double()
    readout_w, readout_b = (t.detach().cpu().double() for t in readout_affine(network))
    problems: list[str] = []
    check_limits(network, target, w_in, readout_w, problems)
    dt = m.dt
    syn_code, alpha = _decay_codes(m.tau_syn.detach().cpu().double(), dt, target, "synaptic", problems)
    mem_code, beta = _decay_codes(m.tau_mem.detach().cpu().double(), dt, target, "membrane", problems)
    if target.order == "add-decay" and bool((alpha == 0).any()):
        problems.append("a synaptic decay to 0 in one step (bit shift 0) leaves no current for the membrane")
    gain = synapse_gain(target, alpha, beta)
    w_rec = m.weight.detach().cpu().double() if m.config.recurrent else w_in.new_zeros(w_in.shape[0], 0)
    rows = torch.cat([w_in, b_in[:, None], w_rec], 1) * gain[:, None]
    threshold = torch.full_like(gain, m.config.v_threshold)
    if target.integer:
        qmax = 2 ** (int(target.weight["bits"]) - 1) - 1
        peak = rows.abs().amax(1) if scaling == "per-channel" else rows.abs().max().expand_as(gain)
        scale = peak.clamp_min(1e-12) / qmax
        rows = torch.round(rows / scale[:, None])
        threshold = torch.round(threshold / scale)
        t_bits = int(target.threshold.get("bits", 64))
        if float(threshold.max()) > 2**t_bits - 1:
            problems.append(f"threshold {int(threshold.max())} needs more than {t_bits} bits")
    else:
        scale = torch.ones_like(gain)
    if problems and strict:
        raise ExportError(f"{target.name}: " + "; ".join(problems))
    d = w_in.shape[1]
    n = m.n_neurons
    features = network.features
    readout_w = readout_w.clone()
    if "current" in features:  # chip currents back to our units: i = i_chip * scale / (1 - beta), either order
        k = features.index("current")
        readout_w[:, k * n : (k + 1) * n] *= scale / (1.0 - beta)
    return QuantizedNetwork(
        target=target,
        input_shape=tuple(network.encoder.input_shape),
        dt=dt,
        encoder_weight=rows[:, :d].contiguous(),
        encoder_bias=rows[:, d].contiguous(),
        recurrent_weight=rows[:, d + 1 :].contiguous() if m.config.recurrent else None,
        threshold=threshold,
        scale=scale,
        syn_code=syn_code,
        mem_code=mem_code,
        alpha=alpha,
        beta=beta,
        readout_weight=readout_w,
        readout_bias=readout_b,
        features=features,
        trace_tau=network.trace_tau,
        scaling=scaling,
        violations=problems,
    )


class ChipEncoder(MLPEncoder):
    """The linear encoder, its input counts clipped to ``max_spikes`` per channel and step (None: not)."""

    def __init__(self, input_shape: tuple[int, ...], n_out: int, max_spikes: int | None) -> None:
        super().__init__(input_shape, n_out, hidden=(), gain=1.0)
        self.max_spikes = max_spikes

    def _frames(self, x: Tensor) -> Tensor:
        return super()._frames(x if self.max_spikes is None else x.clamp(max=self.max_spikes))


class ChipMaelstrom(nn.Module):
    """The quantised maelstrom, stepped with the target's arithmetic (see the module docstring);
    a drop-in for :class:`~spiking_maelstrom.maelstrom.Maelstrom` in a network."""

    def __init__(self, q: QuantizedNetwork) -> None:
        super().__init__()
        self.target = q.target
        self.dt = q.dt
        self.n_neurons = q.n_neurons
        self.register_buffer("weight_t", None if q.recurrent_weight is None else q.recurrent_weight.T.contiguous())
        for name in ("threshold", "syn_code", "mem_code", "alpha", "beta"):
            self.register_buffer(name, getattr(q, name).clone())
        self.decay_kind = q.target.decay["kind"]
        self.decay_full = 2 ** int(q.target.decay.get("bits", 0))
        self.min_step = bool(q.target.decay.get("min_step", 0))
        self.subtract = q.target.reset == "subtract"
        self.add_first = q.target.order == "add-decay"
        self.at_threshold = q.target.compare == ">="
        self.max_spikes = q.target.max_spikes
        bits = q.target.state
        # signed b-bit state: -2^(b-1) .. 2^(b-1) - 1
        self.limits = {k: 2 ** (int(bits[f"{k}_bits"]) - 1) for k in ("current", "voltage") if f"{k}_bits" in bits}

    def init_state(self, batch_size: int) -> CubaLIFState:
        zeros = torch.zeros(batch_size, self.n_neurons, dtype=torch.float64, device=self.threshold.device)
        return CubaLIFState(zeros, zeros.clone(), zeros.clone())

    def _decay(self, x: Tensor, code: Tensor, factor: Tensor) -> Tensor:
        if self.decay_kind == "float":
            return factor * x
        if self.decay_kind == "fraction":  # magnitude times (2^b - d), shifted right by b: rounds toward zero
            full = self.decay_full
            return torch.sign(x) * torch.floor(x.abs() * (full - code) / full)
        step = torch.floor(x / 2.0**code)  # x >> s, arithmetic shift
        if self.min_step:  # x >> s is 0 only for 0 <= x < 2**s
            step = torch.where(step == 0, torch.sign(x), step)
        return x - step

    def _saturate(self, x: Tensor, key: str) -> Tensor:
        limit = self.limits.get(key)
        return x if limit is None else x.clamp(-limit, limit - 1)

    @torch.no_grad()
    def run(
        self, currents: Tensor, state: CubaLIFState | None = None, record: bool = True, probe: Probe | None = None
    ) -> tuple[Tensor | None, CubaLIFState]:
        """``Maelstrom.run`` with the target's arithmetic (float64 state)."""
        currents = run_input(currents, self.n_neurons, self.threshold.device, torch.float64)
        state = self.init_state(currents.shape[0]) if state is None else state
        spikes = torch.empty_like(currents) if record else None
        return spikes, step_through(self.step, currents, state, spikes, probe)

    def _spikes(self, v: Tensor) -> Tensor:
        """Spikes this step: ``v > th`` (or ``>=``) once, or with ``max_spikes = M`` as many times
        as a threshold can be taken off ``v`` and still leave it firing, ``min(M, ceil(v / th) - 1)``
        (``floor(v / th)`` for ``>=``)."""
        if self.max_spikes == 1:
            return (v >= self.threshold if self.at_threshold else v > self.threshold).double()
        ratio = v / self.threshold
        count = torch.floor(ratio) if self.at_threshold else torch.ceil(ratio) - 1
        return count.clamp(0, self.max_spikes)

    @torch.no_grad()
    def step(self, current: Tensor, state: CubaLIFState) -> CubaLIFState:
        drive = current.detach().double()
        if self.weight_t is not None:
            drive = drive + state.z @ self.weight_t
        if self.add_first:
            i = self._decay(self._saturate(state.i + drive, "current"), self.syn_code, self.alpha)
        else:
            i = self._saturate(self._decay(state.i, self.syn_code, self.alpha) + drive, "current")
        v = self._saturate(self._decay(state.v, self.mem_code, self.beta) + i, "voltage")
        z = self._spikes(v)
        v = v - z * self.threshold if self.subtract else torch.where(z > 0, torch.zeros_like(v), v)
        return CubaLIFState(v=v, i=i, z=z)
