"""Accuracy cost of each hardware target's quantisation and integer arithmetic, on a run's test split.

    python benchmarks/bench_quantization.py runs/hw-nmnist [--data-dir DIR] [--targets loihi2 xylo-audio2]

For every target and weight scaling, the network is mapped with ``quantize(strict=False)`` and
simulated with the target's arithmetic (``QuantizedNetwork.to_network``); rows whose mapping
violates a limit say which (the chip could not hold that network: the number is the arithmetic's
cost alone). Prints a Markdown table; ``--json`` also writes the rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spiking_maelstrom.checkpoint import load_checkpoint
from spiking_maelstrom.data import load_task
from spiking_maelstrom.evaluation import evaluate_network, load_network
from spiking_maelstrom.export.quantize import SCALINGS, quantize
from spiking_maelstrom.export.targets import available_targets, load_target
from spiking_maelstrom.files import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="run directory written by 'maelstrom train'")
    parser.add_argument("--data-dir", type=Path, help="data root (default: the run's)")
    parser.add_argument("--targets", nargs="+", default=available_targets(), help="targets to map to")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    payload = load_checkpoint(args.run_dir / "checkpoint.pt")
    options = dict(payload["task"]["options"])
    data_dir = args.data_dir or options.pop("data_dir", None)
    options.pop("data_dir", None)
    task = load_task(payload["task"]["name"], data_dir, **options)
    network = load_network(payload)
    batch = payload["train_config"]["batch_size"]
    base = evaluate_network(network, task.test, task.mask, batch)["accuracy"]
    rows = [{"target": "(float network)", "scaling": "", "accuracy": base, "delta": 0.0, "violations": ""}]
    for name in args.targets:
        target = load_target(name)
        for scaling in SCALINGS if target.integer else (None,):
            mapping = quantize(network, target, scaling, strict=False)
            acc = evaluate_network(mapping.to_network(), task.test, task.mask, batch)["accuracy"]
            rows.append(
                {
                    "target": name,
                    "scaling": mapping.scaling if target.integer else "float",
                    "accuracy": acc,
                    "delta": acc - base,
                    "violations": "; ".join(mapping.violations),
                }
            )
    print(f"run {args.run_dir} ({payload['task']['name']}, {len(task.test)} test samples)\n")
    print("| target | scaling | test accuracy | change | limits violated |")
    print("|---|---|---|---|---|")
    for r in rows:
        acc, delta = 100 * r["accuracy"], 100 * r["delta"]
        print(f"| {r['target']} | {r['scaling']} | {acc:.1f}% | {delta:+.1f} | {r['violations']} |")
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
