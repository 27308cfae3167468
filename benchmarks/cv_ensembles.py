"""Print a Markdown table of every ensemble of finished runs, scored by cross-validation alone:
``python benchmarks/cv_ensembles.py runs/a runs/b runs/c``.

Each run must come from ``maelstrom train --folds K`` with the same ``--folds``, ``--seed`` and
``--group-by`` (the same held-out samples per fold; its other settings are free). For every
combination of the runs, the members' saved held-out scores are added per fold (what ``maelstrom
evaluate --cv`` does for one combination); the table lists the combinations best first (mean over
the folds, then fewer members, then the smaller spread). Members are thus chosen on the training
files, before the test split is looked at; score the chosen ensemble on test with ``maelstrom
evaluate RUN ...``. Choosing the best of many combinations flatters its CV figure a little.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from spiking_maelstrom.crossval import CV_SCORES, ensemble_folds, load_fold_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help=f"run directories holding {CV_SCORES}")
    args = parser.parse_args()
    folds = {run.name: load_fold_scores(run / CV_SCORES) for run in args.runs}
    rows = []
    for size in range(1, len(folds) + 1):
        for combo in itertools.combinations(folds, size):
            cv = ensemble_folds({name: folds[name] for name in combo})
            rows.append(((-cv["mean"], size, cv["std"]), combo, cv))
    print("| members | CV mean +- std (%) | folds (%) |")
    print("|---|---:|---|")
    for _, combo, cv in sorted(rows):
        per_fold = " / ".join(f"{100 * a:.1f}" for a in cv["accuracy"])
        print(f"| {' + '.join(combo)} | {100 * cv['mean']:.2f} +- {100 * cv['std']:.2f} | {per_fold} |")


if __name__ == "__main__":
    main()
