"""What each memory mechanism costs in simulation time: ``Maelstrom.run`` (backend ``auto``, what
users get) on the same input currents, for the default maelstrom, recurrence off, spike-frequency
adaptation and synaptic delays, side by side in one run.

``python benchmarks/bench_mechanisms.py --neurons 1000 --batch 32 --steps 85`` prints the milliseconds
per step (best of ``--repeats``), the spike rate and each variant's time relative to the default.
Adaptation and delays leave the fused CPU kernel for the ``event`` product and a Python loop over
the steps (delays: the rows of W split by delay gathered for every spike still in flight, about
``max_delay`` times the work of the last step's spikes).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from _common import best_time, environment, markdown_report, print_environment, write_json

from spiking_maelstrom import Maelstrom, MaelstromConfig

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no recurrence": {"recurrent": False},
    "adaptation 0.2": {"adaptation": 0.2},
    "delays up to 4 steps": {"max_delay": 4},
    "delays up to 8 steps": {"max_delay": 8},
    "adaptation + delays 4": {"adaptation": 0.2, "max_delay": 4},
}


def measure(name: str, neurons: int, currents: torch.Tensor, repeats: int, device: torch.device) -> dict[str, Any]:
    m = Maelstrom(MaelstromConfig(n_neurons=neurons, seed=0, **VARIANTS[name]), device=device)
    spikes, _ = m.run(currents)  # warm-up (compiles the kernel, builds the caches)
    seconds = best_time(lambda: m.run(currents), repeats, device)
    steps = currents.shape[1]
    rate = float(spikes.mean()) / m.dt
    return {"variant": name, "ms_per_step": 1e3 * seconds / steps, "rate_hz": rate, "engine": m.engine.name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neurons", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=85)
    parser.add_argument("--drive", type=float, default=1.5, help="input currents uniform in [0, drive)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    currents = (args.drive * torch.rand(args.batch, args.steps, args.neurons, generator=g)).to(device)
    env = environment(device)
    rows = [measure(name, args.neurons, currents, args.repeats, device) for name in VARIANTS]
    base = rows[0]["ms_per_step"]
    with markdown_report(args.markdown):
        print_environment(env, "not measured")
        print(f"- N = {args.neurons}, batch {args.batch}, {args.steps} steps\n")
        print("| variant | ms per step | x default | spike rate (Hz at 1 ms) |")
        print("|---|---|---|---|")
        for row in rows:
            row["x_default"] = row["ms_per_step"] / base
            print(f"| {row['variant']} | {row['ms_per_step']:.2f} | {row['x_default']:.2f} | {row['rate_hz']:.1f} |")
    if args.json:
        write_json(args.json, {"environment": env, "rows": rows})


if __name__ == "__main__":
    main()
