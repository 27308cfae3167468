"""Print a Markdown table of the metrics of finished runs: ``python benchmarks/runs_table.py runs/*``.

Reads runs of ``maelstrom train`` and ``maelstrom baseline``; ``cv`` is the K-fold
cross-validation on the training files (mean +- std in %, ``by speaker`` when folds held out
whole speakers), when the run made one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = (
    "dataset",
    "baseline",
    "encoder_rule",
    "readout",
    "feedback",
    "recurrent",
    "neurons",
    "seed",
    "epochs",
    "test_accuracy",
    "test_samples",
    "cv",
    "val_accuracy",
    "train_seconds",
    "spike_rate_hz",
)


def _cell(value: object) -> str:
    if isinstance(value, dict):  # cross-validation
        by = f" by {value['group_by']}" if value.get("group_by") else ""
        return f"{100 * value['mean']:.1f} +- {100 * value['std']:.1f} ({value['folds']} folds{by})"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return "" if value is None else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "runs", nargs="+", type=Path, help="run directories of 'maelstrom train' or 'maelstrom baseline'"
    )
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
