"""Reservoir simulation speed: this project's backends against Norse's LIFRecurrent (and a plain
torch loop) on the SAME weights and inputs, spikes checked to agree before timing.

Setting (after the issue's baseline): 700 input channels firing at 5 %, 10 % recurrent density,
no gradient. Prints a Markdown table; ``--json FILE`` also writes the rows.
Example: ``python benchmarks/bench_reservoir.py --neurons 500 1000 2000 4000 --batch 64 --steps 250``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections.abc import Callable
from functools import partial

import torch

from spiking_maelstrom import Maelstrom, MaelstromConfig
from spiking_maelstrom.neuron import cuba_lif_step


def _inputs(batch: int, steps: int, n_in: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(batch, steps, n_in, generator=g) < 0.05).float().to(device)


def _input_weights(n: int, n_in: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (0.6 * torch.randn(n, n_in, generator=g) / (0.05 * n_in) ** 0.5).to(device)


def ours(m: Maelstrom, w_in: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Input projected for all steps in one matmul (no feedback), then the maelstrom."""
    return m.run(x @ w_in.T)[0]


def plain_loop(m: Maelstrom, w_in: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The hand-rolled loop a user writes: per-step input and dense recurrent matmul."""
    state, out = m.init_state(x.shape[0]), []
    c = m.config
    for t in range(x.shape[1]):
        current = x[:, t] @ w_in.T + state.z @ m.weight.T
        state = cuba_lif_step(current, state, m.beta, m.alpha, c.v_threshold, c.v_reset, c.v_leak)
        out.append(state.z)
    return torch.stack(out, 1)


def norse_model(m: Maelstrom, w_in: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
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
    return lambda x: model(x.transpose(0, 1))[0].transpose(0, 1)


def _time(fn, repeats: int) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neurons", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--inputs", type=int, default=700)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="float64 makes the spike comparison exact (float32 sums in different orders)",
    )
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    x = _inputs(args.batch, args.steps, args.inputs, device).to(dtype)
    rows = []
    for n in args.neurons:
        config = MaelstromConfig(n_neurons=n, seed=0, radius_method="circular-law")
        w_in = _input_weights(n, args.inputs, device).to(dtype)
        m = Maelstrom(config, device, dtype)
        runs = {
            f"ours-{b}": partial(ours, Maelstrom(config, device, dtype, backend=b), w_in) for b in ("dense", "event")
        }
        runs["plain-loop"] = partial(plain_loop, m, w_in)
        try:
            runs["norse"] = norse_model(m, w_in)
        except ImportError:
            print("norse is not installed: skipping it (pip install --no-deps norse)")
        reference = runs["ours-dense"](x)
        for name, fn in runs.items():
            differ = int((fn(x) != reference).sum())
            seconds = _time(partial(fn, x), args.repeats)
            rows.append(
                {
                    "neurons": n,
                    "impl": name,
                    "seconds": seconds,
                    "rate_hz": float(reference.mean()) / m.dt,
                    "spikes_differing": differ,
                    "spikes": int(reference.sum()),
                    "neuron_updates_per_s": args.batch * args.steps * n / seconds,
                }
            )
    base = {(r["neurons"], r["impl"]): r["seconds"] for r in rows}
    print(
        f"device {device}, {args.dtype}, batch {args.batch}, T {args.steps}, {args.inputs} inputs at 5 %, "
        f"10 % recurrence, "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    header = (
        "N",
        "implementation",
        "seconds",
        "x vs norse",
        "x vs plain loop",
        "neuron updates/s",
        "rate Hz",
        "spikes differing",
    )
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        norse_s = base.get((r["neurons"], "norse"))
        plain_s = base[(r["neurons"], "plain-loop")]
        vs_norse = f"{norse_s / r['seconds']:.2f}" if norse_s else ""
        print(
            f"| {r['neurons']} | {r['impl']} | {r['seconds']:.3f} | {vs_norse} | {plain_s / r['seconds']:.2f} | "
            f"{r['neuron_updates_per_s']:.3g} | {r['rate_hz']:.1f} | {r['spikes_differing']} of {r['spikes']} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
