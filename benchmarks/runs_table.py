"""Print a Markdown table of the metrics of finished runs: ``python benchmarks/runs_table.py runs/*``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = (
    "dataset",
    "encoder_rule",
    "readout",
    "feedback",
    "recurrent",
    "neurons",
    "seed",
    "epochs",
    "test_accuracy",
    "test_samples",
    "val_accuracy",
    "train_seconds",
    "spike_rate_hz",
)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return "" if value is None else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories written by 'maelstrom train'")
    args = parser.parse_args()
    print("| run | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for run in args.runs:
        path = run / "metrics.json"
        if not path.is_file():
            continue
        metrics = json.loads(path.read_text())
        print(f"| {run.name} | " + " | ".join(_cell(metrics.get(c)) for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
