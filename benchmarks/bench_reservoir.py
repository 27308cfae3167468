"""Reservoir simulation speed: this project's backends against Norse (LIFRecurrent), snnTorch
(RSynaptic, RLeaky) and a plain torch loop, on the SAME weights and inputs, with the spikes
checked before timing and the time a bare GEMM / memory sweep of the same work takes (the floor).

Setting (after the issue's baseline): 700 input channels firing at 5 %, 10 % recurrent density,
no gradient, spikes of every step recorded. Every implementation gets the input ``x [B, T, 700]``
and returns the spikes ``[B, T, N]``; the input projection is inside the timed call for all.

Implementations (``--peers`` picks the peers; ours are always run):

- ``ours-dense``, ``ours-event``, ``ours-sparse``, ``ours-fused``, ``ours-auto`` (CPU) and
  ``ours-graph`` (CUDA): ``Maelstrom.run`` with the dense backend (one ``addmm`` with all of W^T
  per step), the event backend (``embedding_bag``: each sample sums the rows of W^T of the neurons
  that spiked), the sparse backend (W as a CSR matrix times the spikes), the fused backend (the
  event product and the neuron update in one compiled numba kernel per run, one sample per
  thread; the rows of W^T read as CSR, dense only for a small and dense W: ``fused_cpu.dense_rows``),
  auto (what users get by default: fused on the CPU, the sparse product on busy steps) or the
  graph backend (the dense steps captured in CUDA graphs of 64 steps and replayed: no per-step
  Python or launch overhead).
- ``plain-loop``: the hand-written loop (per-step input projection and dense recurrent matmul,
  then ``cuba_lif_step``).
- ``norse``: ``norse.torch.LIFRecurrent`` with our per-neuron time constants; the same dynamics.
  Its API projects the input inside every step (one extra [B, 700] x [700, N] matmul per step).
- ``snntorch``: ``snntorch.RSynaptic`` (all-to-all ``nn.Linear`` recurrence, bias zeroed) mapped
  to our dynamics exactly: snnTorch's membrane adds the synaptic current unscaled
  (``mem = beta mem + syn``) while ours adds ``(1 - beta) i``, so the rows of W and of W_in into
  neuron ``j`` are scaled by ``1 - beta_j`` (then ``syn = (1 - beta) i`` and ``mem = v``); its
  ``reset_mechanism="zero"`` resets one step late (a neuron that crossed at step t is zeroed at
  t + 1, losing that step's input), so the module runs with ``reset_mechanism="none"`` and the
  caller zeroes the membrane of the neurons that spiked (``mem * (1 - spk)``), as ours does.
- ``snntorch-zero``: the same RSynaptic with snnTorch's own ``reset_mechanism="zero"`` (delayed
  reset; its state function is also evaluated twice per step, so two recurrent matmuls): stock
  usage, a different model, spikes reported but not expected to agree.
- ``snntorch-rleaky``: ``snntorch.RLeaky`` (first order: no synaptic current), input and
  recurrent rows scaled by ``(1 - beta_j) / (1 - alpha_j)`` (the synaptic filter's DC gain),
  reset by the caller as above: a different model, for timing; spikes not expected to agree.

Spike check: every implementation is first run in ``--check-dtype`` (default float64, on the first
``--check-batch`` samples) and its spikes compared with ours-dense in the same dtype; in float64 the
summation orders of dense and sparse paths cannot flip a spike in practice, so models that
run our dynamics must agree exactly (``--tolerance``: allowed fraction of differing spikes, default
0; the script exits with status 1 when one does not). The timed run (``--dtype``, default
float32) is compared too: there the summation order differs between implementations, and the
recurrence amplifies any flip, so differences are expected and reported only.

Columns: seconds (best of ``--repeats``), neuron updates/s (``B T N / s``), synaptic events/s
(recurrent: each spike times its neuron's out-degree, from that implementation's own spikes), peak
memory added by the run over what was resident before it (see ``_common.PeakMemory``; the run
includes the recorded spikes), model MB (tensors the implementation holds: weights, decays),
floor and floor/time, speed-up against each peer. Floors: ``dense`` = a tight loop of T
``addmm([B, N] x [N, N])`` with no neuron update (on CUDA captured in one CUDA graph, so it is the
kernels' time alone); ``event`` = a pure read, step by step, of the rows of W^T the event
path adds up (one row per spike of the previous step, summed per sample by ``embedding_bag``,
which reads each row and writes one [N] row per sample: the event backend's own product alone,
so its floor/time is the share of the run spent outside that product); ``sparse`` = T reads of W's CSR arrays
(values and column indices), the memory the sparse product must stream each step. ``ours-fused``
and ``ours-auto`` are held to the dense floor: the GEMM of the same arithmetic, which they are
meant to beat.
Also reported per N: the same T steps as one big GEMM
``[B T, N] x [N, N]`` (in row chunks), the compute limit without the step-by-step dependency.

Example (the issue's table; the lead runs it)::

    python benchmarks/bench_reservoir.py --neurons 500 1000 2000 4000 8000 --batch 64 --steps 250 \\
        --json results/bench_reservoir.json
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from _common import (
    MB,
    PeakMemory,
    best_time,
    environment,
    fmt_count,
    markdown_report,
    print_environment,
    sync,
    tensor_bytes,
    write_json,
)
from torch import Tensor

from spiking_maelstrom import Maelstrom, MaelstromConfig
from spiking_maelstrom.maelstrom import MaelstromParameters, draw_parameters
from spiking_maelstrom.neuron import cuba_lif_step

PEERS = ("plain-loop", "norse", "snntorch", "snntorch-zero", "snntorch-rleaky")
OURS = {
    "cpu": ("ours-dense", "ours-auto", "ours-event", "ours-sparse", "ours-fused"),
    "cuda": ("ours-dense", "ours-graph"),
}
BACKEND = {name: name.removeprefix("ours-") for name in {*OURS["cpu"], *OURS["cuda"]}}
FLOOR = {"event": "event", "sparse": "sparse"}  # the other backends are held to the dense floor
EXACT = {*BACKEND, "plain-loop", "norse", "snntorch"}  # run our dynamics
GEMM_ROWS = 4096  # row chunk of the big-GEMM floor


def _inputs(batch: int, steps: int, n_in: int, device: torch.device) -> Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(batch, steps, n_in, generator=g) < 0.05).float().to(device)


def _input_weights(n: int, n_in: int, device: torch.device) -> Tensor:
    g = torch.Generator().manual_seed(1)
    return (0.6 * torch.randn(n, n_in, generator=g) / (0.05 * n_in) ** 0.5).to(device)


@dataclass
class Impl:
    """One implementation: ``run(x [B, T, n_in]) -> spikes [B, T, N]`` and what it holds."""

    run: Callable[[Tensor], Tensor]
    tensors: list[Tensor]
    floor: str = "dense"
    keep: list[object] = field(default_factory=list)  # modules the closure needs alive


def _ours(m: Maelstrom, w_in: Tensor) -> Impl:
    """Input projected for all steps in one matmul (no feedback), then the maelstrom."""
    held = [*m.buffers(), w_in]
    if m.backend == "sparse":
        held.append(m.engine.sparse_weight(m))
    if not m.weight.is_cuda and m.backend in ("fused", "auto"):
        weights = (m.engine.fused if m.backend == "auto" else m.engine).weights(m)
        held += list(weights) if len(weights) == 3 else []  # the CSR copy of W^T (dense rows are W itself)
    return Impl(lambda x: m.run(x @ w_in.T)[0], held, FLOOR.get(m.backend, "dense"), [m])


def _plain_loop(m: Maelstrom, w_in: Tensor) -> Impl:
    """The hand-rolled loop a user writes: per-step input and dense recurrent matmul."""
    weight, beta, alpha, c = m.weight, m.beta, m.alpha, m.config

    def run(x: Tensor) -> Tensor:
        state, out = m.init_state(x.shape[0]), []
        for t in range(x.shape[1]):
            current = x[:, t] @ w_in.T + state.z @ weight.T
            state = cuba_lif_step(current, state, beta, alpha, c.v_threshold, c.v_reset, c.v_leak)
            out.append(state.z)
        return torch.stack(out, 1)

    return Impl(run, [weight, beta, alpha, w_in], keep=[m])


def _norse(m: Maelstrom, w_in: Tensor) -> Impl:
    """Norse's ``LIFRecurrent`` on the same weights and per-neuron time constants (same dynamics)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from norse.torch import LIFParameters, LIFRecurrent
    c = m.config
    p = LIFParameters(
        tau_syn_inv=1.0 / m.tau_syn,
        tau_mem_inv=1.0 / m.tau_mem,
        v_leak=torch.tensor(c.v_leak),
        v_th=torch.tensor(c.v_threshold),
        v_reset=torch.tensor(c.v_reset),
    )
    model = LIFRecurrent(w_in.shape[1], m.n_neurons, p=p, dt=m.dt, autapses=True).to(w_in.device, w_in.dtype)
    with torch.no_grad():
        model.input_weights.copy_(w_in)
        model.recurrent_weights.copy_(m.weight)
    held = [*model.parameters(), *model.buffers(), p.tau_syn_inv, p.tau_mem_inv]
    return Impl(lambda x: model(x.transpose(0, 1))[0].transpose(0, 1), held, keep=[model])


def _snntorch(m: Maelstrom, w_in: Tensor, variant: str) -> Impl:
    """snnTorch ``RSynaptic`` / ``RLeaky`` on our weights (see the module docstring for the mapping)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import snntorch as snn
    c = m.config
    if c.v_leak != 0.0 or c.v_reset != 0.0:
        raise ValueError("snnTorch has no leak potential and resets to zero: needs v_leak = v_reset = 0")
    n, dtype = m.n_neurons, m.weight.dtype
    gain = 1.0 - m.beta
    if variant == "snntorch-rleaky":
        gain = gain / (1.0 - m.alpha)
        lif = snn.RLeaky(beta=m.beta.clone(), linear_features=n, threshold=c.v_threshold, reset_mechanism="none")
    else:
        reset = "zero" if variant == "snntorch-zero" else "none"
        lif = snn.RSynaptic(
            alpha=m.alpha.clone(),
            beta=m.beta.clone(),
            linear_features=n,
            threshold=c.v_threshold,
            reset_mechanism=reset,
            learn_recurrent=False,
        )
    lif = lif.to(w_in.device, dtype)
    with torch.no_grad():
        lif.recurrent.weight.copy_(gain[:, None] * m.weight)
        lif.recurrent.bias.zero_()
    w_scaled = gain[:, None] * w_in
    caller_resets = variant != "snntorch-zero"
    synaptic = variant != "snntorch-rleaky"

    def run(x: Tensor) -> Tensor:
        batch, steps = x.shape[:2]
        cur = x @ w_scaled.T
        spk = syn = mem = torch.zeros(batch, n, device=x.device, dtype=dtype)
        out = []
        for t in range(steps):
            # snnTorch's Heaviside returns float32 spikes: cast for its float64 recurrent layer.
            if synaptic:
                spk, syn, mem = lif(cur[:, t], spk.to(dtype), syn, mem)
            else:
                spk, mem = lif(cur[:, t], spk.to(dtype), mem)
            if caller_resets:
                mem = mem * (1.0 - spk)
            out.append(spk)
        return torch.stack(out, 1)

    return Impl(run, [*lif.parameters(), *lif.buffers(), w_scaled], keep=[lif])


def build(name: str, params: MaelstromParameters, config: MaelstromConfig, w_in: Tensor) -> Impl:
    """Implementation ``name`` on ``params`` in the dtype and device of ``w_in``."""
    m = Maelstrom(config, w_in.device, w_in.dtype, backend=BACKEND.get(name, "dense"), parameters=params)
    if name in BACKEND:
        return _ours(m, w_in)
    if name == "plain-loop":
        return _plain_loop(m, w_in)
    if name == "norse":
        return _norse(m, w_in)
    return _snntorch(m, w_in, name)


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def dense_floor(batch: int, steps: int, n: int, rate: float, device: torch.device, dtype: torch.dtype, repeats: int):
    """Seconds for T ``addmm([B, N] x [N, N])`` in a tight loop, and for the same rows as one GEMM."""
    g = torch.Generator().manual_seed(2)
    wt = torch.randn(n, n, generator=g).to(device, dtype)
    z = (torch.rand(batch, n, generator=g) < max(rate, 1e-3)).to(device, dtype)
    bias, out = torch.zeros(batch, n, device=device, dtype=dtype), torch.empty(batch, n, device=device, dtype=dtype)

    def loop() -> None:
        for _ in range(steps):
            torch.addmm(bias, z, wt, out=out)

    if device.type == "cuda":
        loop()  # warm-up (cuBLAS workspace) before capture
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            loop()
        loop_s = best_time(graph.replay, repeats, device)
    else:
        loop_s = best_time(loop, repeats, device)
    rows = batch * steps
    chunk = min(rows, GEMM_ROWS)
    a = (torch.rand(chunk, n, generator=g) < max(rate, 1e-3)).to(device, dtype)
    c = torch.empty(chunk, n, device=device, dtype=dtype)
    sizes = [chunk] * (rows // chunk) + ([rows % chunk] if rows % chunk else [])

    def gemm() -> None:
        for size in sizes:
            torch.mm(a[:size], wt, out=c[:size])

    return loop_s, best_time(gemm, repeats, device)


def event_floor(spikes: Tensor, weight_t: Tensor, repeats: int) -> tuple[float, int]:
    """Seconds to read, step by step, the rows of ``W^T`` the event path adds up for ``spikes``
    (step t reads, per sample, the rows of the neurons that spiked at t - 1), and the row count."""
    batch = spikes.shape[0]
    bags = []
    for z in spikes.detach().bool()[:, :-1].unbind(1):  # the spikes read at steps 1..T-1
        sample, neuron = z.nonzero(as_tuple=True)
        if neuron.numel():
            offsets = torch.searchsorted(sample, torch.arange(batch, device=sample.device))
            bags.append((neuron, offsets))
    rows = sum(int(neuron.numel()) for neuron, _ in bags)
    embedding_bag = torch.nn.functional.embedding_bag

    def sweep() -> None:
        for neuron, offsets in bags:
            embedding_bag(neuron, weight_t, offsets, mode="sum")

    return (best_time(sweep, repeats, weight_t.device), rows) if bags else (0.0, 0)


def sparse_floor(csr: Tensor, steps: int, repeats: int) -> float:
    """Seconds for ``steps`` reads of a CSR matrix's values and column indices."""
    values, columns = csr.values(), csr.col_indices()

    def sweep() -> None:
        for _ in range(steps):
            values.sum()
            columns.sum()

    return best_time(sweep, repeats, values.device)


def _compare(spikes: Tensor, reference: Tensor, prefix: str = "") -> dict:
    """Spike counts and agreement of boolean ``spikes`` with ``reference`` (ours-dense):
    ``differing`` positions, and ``agreement`` = spikes in both / spikes in either (1 = identical)."""
    both = int((spikes & reference).sum())
    either = int((spikes | reference).sum())
    return {
        f"{prefix}differing": either - both,
        f"{prefix}spikes": int(spikes.sum()),
        f"{prefix}reference_spikes": int(reference.sum()),
        f"{prefix}agreement": both / either if either else 1.0,
        f"{prefix}fraction": (either - both) / max(1, reference.numel()),
    }


def synaptic_events(spikes: Tensor, out_degree: Tensor) -> int:
    """Recurrent synaptic events: each spike times the out-degree of the neuron that fired."""
    return int((spikes.sum((0, 1)).double() * out_degree.double()).sum())


@torch.no_grad()
def run_case(n: int, args: argparse.Namespace, device: torch.device, peers: list[str]) -> tuple[dict, list[dict]]:
    """Check, time and measure every implementation at ``N = n``; returns the case row and the rows."""
    dtype = getattr(torch, args.dtype)
    config = MaelstromConfig(n_neurons=n, seed=0, radius_method="circular-law")
    params = draw_parameters(config)
    out_degree = (params.weight != 0).sum(0).to(device)  # W[post, pre]: column j = targets of j
    names = [*OURS[device.type], *peers]
    w_in32 = _input_weights(n, args.inputs, device)
    x_full = _inputs(args.batch, args.steps, args.inputs, device)
    rows = {name: {"neurons": n, "impl": name, "same_model": name in EXACT} for name in names}

    if args.check_dtype != "none":
        check_dtype = getattr(torch, args.check_dtype)
        x = x_full[: args.check_batch].to(check_dtype)
        w_in = w_in32.to(check_dtype)
        reference = None
        for name in names:
            impl = build(name, params, config, w_in)
            spikes = impl.run(x).bool()
            del impl
            if reference is None:
                reference = spikes
            rows[name].update(_compare(spikes, reference, "check_"))
            del spikes
            _free()
        del reference
        _free()

    x = x_full.to(dtype)
    w_in = w_in32.to(dtype)
    reference = None
    case: dict = {"neurons": n}
    for name in names:
        impl = build(name, params, config, w_in)
        model_bytes = tensor_bytes(impl.tensors)
        with PeakMemory(device) as memory:
            spikes = impl.run(x)
        spikes_bool = spikes.bool()
        if reference is None:
            reference = spikes_bool
            rate = float(spikes.mean())
            case.update(rate_hz=rate / config.dt, spikes=int(spikes.sum()), synaptic_events=0)
            case["synaptic_events"] = synaptic_events(spikes, out_degree)
        if name == "ours-event":
            case["event_floor_s"], case["event_rows"] = event_floor(spikes, impl.keep[0].weight_t, args.repeats)
            case["event_rows_per_step"] = case["event_rows"] / max(1, args.steps - 1)
        if name == "ours-sparse":
            sparse = impl.keep[0]
            case["sparse_floor_s"] = sparse_floor(sparse.engine.sparse_weight(sparse), args.steps, args.repeats)
        events = synaptic_events(spikes, out_degree)
        rows[name].update(_compare(spikes_bool, reference))
        del spikes, spikes_bool
        _free()
        seconds = best_time(lambda impl=impl: impl.run(x), args.repeats, device)
        rows[name].update(
            seconds=seconds,
            neuron_updates_per_s=args.batch * args.steps * n / seconds,
            synaptic_events=events,
            synaptic_events_per_s=events / seconds,
            peak_mb=memory.delta / MB,
            model_mb=model_bytes / MB,
            floor=impl.floor,
        )
        del impl
        _free()
    del reference, params
    _free()

    loop_s, gemm_s = dense_floor(args.batch, args.steps, n, case["rate_hz"] * config.dt, device, dtype, args.repeats)
    flops = 2.0 * args.batch * args.steps * n * n
    bytes_per = torch.finfo(dtype).bits // 8
    case.update(
        dense_floor_s=loop_s,
        dense_floor_gflops=flops / loop_s / 1e9,
        big_gemm_s=gemm_s,
        big_gemm_gflops=flops / gemm_s / 1e9,
    )
    if case.get("event_floor_s"):
        case["event_floor_gbps"] = case["event_rows"] * n * bytes_per / case["event_floor_s"] / 1e9
    out = []
    for name in names:
        r = rows[name]
        r["floor_s"] = case.get(f"{r['floor']}_floor_s", 0.0)
        r["floor_fraction"] = r["floor_s"] / r["seconds"]
        for peer in ("norse", "snntorch", "plain-loop"):
            if peer in rows:
                r[f"x_vs_{peer}"] = rows[peer]["seconds"] / r["seconds"]
        out.append(r)
    return case, out


def _ratio(r: dict, peer: str) -> str:
    value = r.get(f"x_vs_{peer}")
    return f"{value:.2f}" if value is not None else ""


def _agreement(r: dict, check: str) -> str:
    """``differing positions / spikes of ours-dense (agreement %)`` for the check and the timed run."""

    def one(prefix: str) -> str:
        return (
            f"{r[prefix + 'differing']:,} / {r[prefix + 'reference_spikes']:,} ({100 * r[prefix + 'agreement']:.1f} %)"
        )

    timed = "timed: " + one("")
    return f"{check}: {one('check_')}; {timed}" if "check_differing" in r else timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neurons", type=int, nargs="+", default=[500, 1000, 2000, 4000, 8000])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--inputs", type=int, default=700)
    parser.add_argument("--repeats", type=int, default=2, help="timings are the best of this many runs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--peers", nargs="*", choices=PEERS, default=list(PEERS))
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="dtype of the timed runs")
    parser.add_argument(
        "--check-dtype",
        choices=("float64", "float32", "none"),
        default="float64",
        help="dtype of the spike check before timing (float64: dense and sparse sums agree)",
    )
    parser.add_argument("--check-batch", type=int, default=16, help="samples in the spike check (first of the batch)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="largest fraction of differing spikes in the check allowed to implementations of our dynamics",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--markdown", help="also write the printed tables to this Markdown file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    env = environment(device)
    peers = list(dict.fromkeys(args.peers))
    cases, rows = [], []
    for n in args.neurons:
        case, case_rows = run_case(n, args, device, peers)
        cases.append(case)
        rows.extend(case_rows)
        print(f"N={n}: done", file=sys.stderr, flush=True)
    sync(device)
    memory_method = PeakMemory(device).method
    check = "none" if args.check_dtype == "none" else f"{args.check_dtype} (batch {min(args.check_batch, args.batch)})"

    with markdown_report(args.markdown):
        print_environment(env, memory_method)
        print(
            f"- setting: {args.dtype} timed runs, batch {args.batch}, T {args.steps}, {args.inputs} inputs at 5 %, "
            f"10 % recurrent density, spikes recorded, best of {args.repeats}; spike check: {check}"
        )
        print()
        print("Floors per N (no neuron update; see the docstring):")
        print()
        print(
            "| N | rate Hz | spikes | synaptic events | rows read/step (event) | dense floor: T addmm s | GFLOP/s | "
            "one big GEMM s | GFLOP/s | event floor: row sweep s | GB/s | sparse floor: CSR sweep s |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in cases:
            print(
                f"| {c['neurons']} | {c['rate_hz']:.1f} | {c['spikes']:,} | {fmt_count(c['synaptic_events'])} | "
                f"{c.get('event_rows_per_step', 0):.0f} | {c['dense_floor_s']:.3f} | {c['dense_floor_gflops']:.1f} | "
                f"{c['big_gemm_s']:.3f} | {c['big_gemm_gflops']:.1f} | {c.get('event_floor_s', 0):.3f} | "
                f"{c.get('event_floor_gbps', 0):.3g} | {c.get('sparse_floor_s', 0):.3f} |"
            )
        print()
        print(
            "Simulation (x vs P: P's seconds / this row's seconds, >1 = faster than P; floor/time: 1 = at the floor; "
            "peak MB: added by the run, model MB: weights held; spikes differing: positions differing from "
            "ours-dense / ours-dense's spikes (agreement = spikes in both / spikes in either)):"
        )
        print()
        header = (
            "N",
            "implementation",
            "seconds",
            "neuron updates/s",
            "synaptic events/s",
            "peak MB",
            "model MB",
            "floor",
            "floor/time",
            "x vs norse",
            "x vs snntorch",
            "x vs plain loop",
            "spikes differing (agreement)",
        )
        print("| " + " | ".join(header) + " |")
        print("|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")
        for r in rows:
            print(
                f"| {r['neurons']} | {r['impl']} | {r['seconds']:.3f} | {fmt_count(r['neuron_updates_per_s'])} | "
                f"{fmt_count(r['synaptic_events_per_s'])} | {r['peak_mb']:.1f} | {r['model_mb']:.1f} | "
                f"{r['floor']} {r['floor_s']:.3f} s | {r['floor_fraction']:.2f} | {_ratio(r, 'norse')} | "
                f"{_ratio(r, 'snntorch')} | {_ratio(r, 'plain-loop')} | {_agreement(r, args.check_dtype)} |"
            )
        failed = [
            f"{r['impl']} at N={r['neurons']} ({r['check_differing']} differing)"
            for r in rows
            if r["same_model"] and r.get("check_fraction", 0.0) > args.tolerance
        ]
        print()
        print(
            "Implementations of our dynamics: every ours-*, plain-loop, norse, "
            "snntorch (exact mapping). snntorch-zero (snnTorch's delayed reset) and snntorch-rleaky "
            "(no synaptic current) are other models: their spikes are not expected to agree."
        )
        if failed:
            print(f"SPIKE CHECK FAILED (tolerance {args.tolerance}): " + "; ".join(failed))
        elif args.check_dtype != "none":
            print(f"Spike check passed: every implementation of our dynamics within tolerance {args.tolerance}.")
    if args.json:
        payload = {"environment": env, "memory_method": memory_method, "args": vars(args)}
        write_json(args.json, {**payload, "cases": cases, "rows": rows})
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
