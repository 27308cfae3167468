"""What the maelstrom adds: every recipe trained as it is and with the maelstrom taken apart.

``python benchmarks/ablations.py --data ../shared/data --out runs/ablations`` trains each packaged
recipe (or those named with ``--recipes``) in three variants, same seeds, through ``maelstrom train``:

* ``full``: the recipe as it is;
* ``no-recurrence``: ``--no-recurrence``, the same maelstrom with its recurrent weights off;
* ``input-only``: ``--no-recurrence --features current``, the readout reads the maelstrom's input
  stage alone: the synaptic filter of the encoder's drive, no spikes, no recurrence.

Test accuracy always; with ``--cv`` each run's K-fold cross-validation too (the recipe's own
``[cv]``, or 5 folds). It prints a Markdown table (with what the maelstrom adds: full minus the
better ablation) and writes it, with the numbers, to ``OUT/ablations.{md,json}``. A finished run
(its ``metrics.json`` there) is read back, not trained again, so an interrupted sweep resumes.
``--train-args "..."`` adds settings to every run (e.g. ``"--neurons 200"`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from spiking_maelstrom.config import recipe_path
from spiking_maelstrom.files import atomic_write

VARIANTS = {
    "full": [],
    "no-recurrence": ["--no-recurrence"],
    "input-only": ["--no-recurrence", "--features", "current"],
}
DATA = {"nmnist": "nmnist-small", "nmnist-pairs": "nmnist-small", "shd": "fsdd-shd", "shd-pairs": "fsdd-shd"}
RECIPES = sorted(p.stem for p in Path(recipe_path("nmnist-local")).parent.glob("*.toml"))


def train(recipe: str, variant: str, data: Path, out: Path, cv: bool, extra: list[str]) -> dict:
    """The metrics of ``recipe`` trained as ``variant`` (read back when the run is already there)."""
    run = out / f"{recipe}--{variant}"
    if (run / "metrics.json").is_file():
        return json.loads((run / "metrics.json").read_text())
    task = tomllib.loads(recipe_path(recipe).read_text())["task"]["name"]
    folds = tomllib.loads(recipe_path(recipe).read_text()).get("cv", {}).get("folds", 5) if cv else 0
    command = [sys.executable, "-m", "spiking_maelstrom.cli", "train", "--config", recipe, "--out", str(run)]
    command += ["--data-dir", str(data / DATA[task]), "--cv.folds", str(folds), "--quiet", "--force"]
    if not folds:
        command += ["--cv.group_by", "none"]
    subprocess.run(command + extra + VARIANTS[variant], check=True, stdout=sys.stderr)
    return json.loads((run / "metrics.json").read_text())


def cell(metrics: dict | None, key: str) -> str:
    if metrics is None:
        return ""
    if key == "cv":
        cv = metrics.get("cv")
        return "" if not cv else f"{100 * cv['mean']:.1f} +- {100 * cv['std']:.1f}"
    return f"{100 * metrics['test_accuracy']:.1f}"


def table(results: dict[str, dict[str, dict]], cv: bool) -> str:
    keys = ["test"] + (["cv"] if cv else [])
    head = ["recipe"] + [f"{v} {k}" for v in VARIANTS for k in keys] + ["adds (test)", "seconds full / off"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for recipe, runs in results.items():
        cells = [cell(runs.get(v), k) for v in VARIANTS for k in keys]
        scores = {v: runs[v]["test_accuracy"] for v in VARIANTS if v in runs}
        adds = ""
        if "full" in scores and len(scores) > 1:
            adds = f"{100 * (scores['full'] - max(s for v, s in scores.items() if v != 'full')):+.1f}"
        seconds = " / ".join(f"{runs[v]['train_seconds']:.0f}" for v in ("full", "no-recurrence") if v in runs)
        lines.append("| " + " | ".join([recipe, *cells, adds, seconds]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder holding the data sets")
    parser.add_argument("--out", type=Path, default=Path("runs/ablations"), help="where the runs and tables go")
    parser.add_argument("--recipes", nargs="+", default=RECIPES, choices=RECIPES, metavar="RECIPE")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--cv", action="store_true", help="cross-validate each run too (K more trainings)")
    parser.add_argument("--train-args", default="", help="settings added to every 'maelstrom train' run")
    args = parser.parse_args()
    extra = shlex.split(args.train_args)
    results = {r: {v: train(r, v, args.data, args.out, args.cv, extra) for v in args.variants} for r in args.recipes}
    text = table(results, args.cv)
    print(text, end="")
    with atomic_write(args.out / "ablations.md") as tmp:
        tmp.write_text(text)
    with atomic_write(args.out / "ablations.json") as tmp:
        tmp.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
