"""Continual learning on the real data: every learner and the BPTT reference on every scenario.

``python benchmarks/continual.py --data ../shared/data --out runs/continual-bench`` runs, for each data
set (``--datasets``: nmnist on nmnist-small, shd on fsdd-shd, a stand-in for SHD; randman needs no
data) and scenario (``--scenarios``), each learner (``--learners``):

* the maelstrom's, through ``maelstrom continual`` on the data set's default recipe (one run
  directory each, ``OUT/DATA--SCENARIO--LEARNER``; a finished one is read back, so a sweep resumes):
  ``stream-ridge``, ``stream-ridge-no-recurrence`` (its ablation: the same maelstrom with its
  recurrent weights off), ``stream-ridge-trained`` (its encoder first trained on experience 0 by the
  recipe's rule, ``--epochs``, then frozen), ``joint`` (ridge, all at once), ``naive`` and
  ``replay`` (the recipe's encoder rule and gradient readout, ``--epochs`` per experience) and
  ``joint-trained`` (those, all at once);
* the reference users would otherwise train: an snnTorch recurrent SNN of the same size trained by
  BPTT with surrogate gradients (``bench_training.BPTTNet``: linear -> RSynaptic with all-to-all
  trainable recurrence -> linear on the spike rate; Adam, lr ``--bptt-lr``), ``--epochs`` per
  experience: ``bptt-naive``, ``bptt-replay`` (the same experience-balanced buffer,
  ``strategies.replay_buffer``) and ``bptt-joint``. On task-incremental scenarios its output layer
  is multi-headed in van de Ven et al.'s sense: only the experience's own classes' outputs are
  active, in training and test; its joint run trains on all classes and is tested the same way.

Same scenarios (``continual.make_scenario``, seed ``--seed``), same test samples. It prints a
Markdown table (ACC, BWT, FWT after the last experience, training seconds, the learner's memory)
and writes it with every matrix to ``OUT/continual.{md,json}``. Strategies a scenario cannot run
(replay or a trained joint on task-incremental) are left out.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from bench_training import BPTTNet
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader

from spiking_maelstrom.config import DEFAULT_RECIPES, read_config
from spiking_maelstrom.continual import SCENARIOS, make_scenario, summary
from spiking_maelstrom.continual.strategies import replay_buffer, replay_orders, sample_bytes
from spiking_maelstrom.data import load_task
from spiking_maelstrom.data.task import validation_split
from spiking_maelstrom.files import atomic_write
from spiking_maelstrom.maelstrom import Maelstrom
from spiking_maelstrom.network import network_config_for

DATA = {"nmnist": "nmnist-small", "shd": "fsdd-shd", "randman": None}
MAELSTROM = (
    "stream-ridge",
    "stream-ridge-no-recurrence",
    "stream-ridge-trained",
    "joint",
    "naive",
    "replay",
    "joint-trained",
)
BPTT = ("bptt-naive", "bptt-replay", "bptt-joint")
LEARNERS = (*MAELSTROM, *BPTT)


def refused(scenario: str, learner: str) -> bool:
    return scenario == "task-incremental" and learner in ("replay", "joint-trained", "bptt-replay")


def maelstrom_run(data: str, scenario: str, learner: str, args: argparse.Namespace) -> dict[str, Any]:
    run = args.out / f"{data}--{scenario}--{learner}"
    done = json.loads((run / "continual.json").read_text()) if (run / "continual.json").is_file() else {}
    if done.get("finished"):
        return done | {"learner": learner}
    strategy = learner.removesuffix("-trained").removesuffix("-no-recurrence")
    command = [sys.executable, "-m", "spiking_maelstrom.cli", "continual", "--dataset", data, "--out", str(run)]
    command += ["--scenario", scenario, "--strategy", strategy, "--experiences", str(args.experiences)]
    command += ["--seed", str(args.seed), "--quiet", "--force", "--buffer-size", str(args.buffer_size)]
    if DATA[data]:
        command += ["--data-dir", str(args.data / DATA[data])]
    recipe = read_config(DEFAULT_RECIPES[data]) if data in DEFAULT_RECIPES else {}
    rule = recipe.get("train", {}).get("encoder_rule", "dfa")
    if learner in ("naive", "replay", "joint-trained", "stream-ridge-trained"):
        command += ["--epochs", str(args.epochs)]
    if learner == "joint-trained":
        command += ["--readout", "linear", "--encoder-rule", rule]
    if learner == "stream-ridge-trained":
        command += ["--continual.first_rule", rule]
    if learner == "stream-ridge-no-recurrence":
        command += ["--no-recurrence"]
    subprocess.run(command + shlex.split(args.train_args), check=True, stdout=sys.stderr)
    return json.loads((run / "continual.json").read_text()) | {"learner": learner}


class BPTTLearner:
    """The BPTT reference on a scenario: learn experience ``i`` (or all), score experience ``j``."""

    def __init__(self, scenario: Any, learner: str, args: argparse.Namespace) -> None:
        task = scenario.task
        config = network_config_for(task, maelstrom={"n_neurons": args.neurons, "seed": args.seed})
        m = Maelstrom(config.maelstrom)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            n_in = math.prod(task.input_shape)
            self.model = BPTTNet(n_in, args.neurons, task.n_classes, m.alpha, m.beta, "rsynaptic", True)
        self.scenario, self.learner, self.args = scenario, learner, args
        self.orders = replay_orders(scenario, args.seed)
        self.learned = 0

    def _heads(self, index: int) -> list[int] | None:
        return list(self.scenario.experiences[index].classes) if self.scenario.task_labels else None

    def learn(self, index: int) -> None:
        if self.learner == "bptt-joint":
            data, heads = ConcatDataset([e.train for e in self.scenario.experiences]), None
        else:
            task = self.scenario.experience_task(index)
            data, heads = task.train, self._heads(index)
            buffer = replay_buffer(self.scenario, self.orders, self.learned, self.args.buffer_size)
            if self.learner == "bptt-replay" and buffer is not None:
                data = ConcatDataset([data, buffer])
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.args.bptt_lr)
        generator = torch.Generator().manual_seed(self.args.seed * 1000 + index)
        for _ in range(self.args.bptt_epochs):
            self.epoch(data, heads, optimizer, generator)
        self.learned = index + 1

    def epoch(self, data: Any, heads: list[int] | None, optimizer: Any, generator: torch.Generator) -> None:
        self.model.train()
        for x, y in DataLoader(data, batch_size=32, shuffle=True, generator=generator):
            logits = self.model(x)
            logits = logits if heads is None else logits[:, heads]
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(logits, y).backward()
            optimizer.step()

    @torch.no_grad()
    def evaluate(self, index: int) -> float:
        self.model.eval()
        task, heads = self.scenario.experience_task(index), self._heads(index)
        correct = 0
        for x, y in DataLoader(task.test, batch_size=64):
            logits = self.model(x)
            correct += int(((logits if heads is None else logits[:, heads]).argmax(-1) == y).sum())
        return correct / len(task.test)

    def memory_bytes(self) -> int:
        if self.learner != "bptt-replay" or not self.learned:
            return 0
        return len(replay_buffer(self.scenario, self.orders, self.learned, self.args.buffer_size)) * sample_bytes(
            self.scenario.task
        )


def bptt_run(data: str, scenario_kind: str, learner: str, args: argparse.Namespace) -> dict[str, Any]:
    path = args.out / f"{data}--{scenario_kind}--{learner}.json"
    settings = {"bptt_lr": args.bptt_lr, "bptt_epochs": args.bptt_epochs, "neurons": args.neurons}
    done = json.loads(path.read_text()) if path.is_file() else {}
    if all(done.get(key) == value for key, value in settings.items()):
        return done
    task = load_task(data, args.data / DATA[data]) if DATA[data] else load_task(data)
    scenario = make_scenario(task, scenario_kind, args.experiences, args.seed)
    torch.manual_seed(args.seed)
    model = BPTTLearner(scenario, learner, args)
    initial = [model.evaluate(j) for j in range(len(scenario))]
    matrix, seconds, memory = [], [], []
    for index in range(1 if learner == "bptt-joint" else len(scenario)):
        start = time.perf_counter()
        model.learn(index)
        seconds.append(time.perf_counter() - start)
        matrix.append([model.evaluate(j) for j in range(len(scenario))])
        memory.append(model.memory_bytes())
        print(f"{data} {scenario_kind} {learner} after {index}: {matrix[-1]}", file=sys.stderr)
    result = {
        "learner": learner,
        "strategy": learner,
        "scenario": scenario_kind,
        "dataset": data,
        "matrix": matrix,
        "initial": initial,
    }
    result |= summary(matrix, initial, joint=learner == "bptt-joint")
    result |= {"seconds": seconds, "train_seconds": sum(seconds), "learner_bytes": memory} | settings
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    return result


def tune_bptt(data: str, args: argparse.Namespace) -> str:
    """The BPTT reference's learning rate and epochs, chosen on validation: ``bptt-joint`` on the
    class-incremental scenario of a seeded 80/20 split of the training files, scored after each epoch."""
    task = load_task(data, args.data / DATA[data]) if DATA[data] else load_task(data)
    train, validation = validation_split(task.train, 0.2, args.seed)
    held_out = replace(task, train=train, test=validation)
    scenario = make_scenario(held_out, "class-incremental", args.experiences, args.seed)
    everything = ConcatDataset([e.train for e in scenario.experiences])
    lines = [f"| {data} lr | " + " | ".join(str(e + 1) for e in range(args.bptt_epochs)) + " |"]
    lines.append("|---|" + "---:|" * args.bptt_epochs)
    for lr in args.tune_bptt:
        torch.manual_seed(args.seed)
        learner = BPTTLearner(scenario, "bptt-joint", args)
        optimizer = torch.optim.Adam(learner.model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(args.seed * 1000)
        scores = []
        for epoch in range(args.bptt_epochs):
            learner.epoch(everything, None, optimizer, generator)
            scores.append(sum(learner.evaluate(j) for j in range(len(scenario))) / len(scenario))
            print(f"{data} bptt lr {lr} epoch {epoch + 1}: validation {100 * scores[-1]:.1f} %", file=sys.stderr)
        lines.append(f"| {lr:g} | " + " | ".join(f"{100 * s:.1f}" for s in scores) + " |")
    return "\n".join(lines) + "\n"


def table(results: list[dict[str, Any]]) -> str:
    def points(value: float | None, signed: bool = False) -> str:
        return "" if value is None else f"{100 * value:{'+' if signed else ''}.1f}"

    head = "| data | scenario | learner | ACC % | BWT | FWT | train s | learner MB |"
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        mb = max(r["learner_bytes"]) / 2**20
        cells = [points(r["acc"]), points(r["bwt"], True), points(r["fwt"], True), f"{r['train_seconds']:.0f}"]
        lines.append(
            f"| {r['dataset']} | {r['scenario']} | {r.get('learner', r['strategy'])} | "
            + " | ".join(cells)
            + f" | {mb:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder holding the data sets")
    parser.add_argument("--out", type=Path, default=Path("runs/continual-bench"), help="runs and tables")
    parser.add_argument("--datasets", nargs="+", default=["shd", "nmnist"], choices=list(DATA))
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=LEARNERS)
    parser.add_argument("--experiences", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per experience of the trained learners")
    parser.add_argument("--buffer-size", type=int, default=200, help="replayed samples (maelstrom and BPTT)")
    parser.add_argument("--neurons", type=int, default=1000, help="the BPTT network's size (the recipes': 1000)")
    parser.add_argument("--bptt-lr", type=float, default=3e-3)
    parser.add_argument("--bptt-epochs", type=int, default=5, help="epochs per experience of the BPTT reference")
    parser.add_argument(
        "--tune-bptt",
        type=float,
        nargs="+",
        metavar="LR",
        help="instead of the sweep: validation accuracy of bptt-joint after each of --bptt-epochs, per learning rate",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-args", default="", help="settings added to every 'maelstrom continual' run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.tune_bptt:
        text = "".join(tune_bptt(data, args) for data in args.datasets)
        print(text, end="")
        with atomic_write(args.out / "bptt-tuning.md") as tmp:
            tmp.write_text(text)
        return
    results = []
    for data in args.datasets:
        for scenario in args.scenarios:
            for learner in args.learners:
                if refused(scenario, learner):
                    continue
                run = maelstrom_run if learner in MAELSTROM else bptt_run
                results.append(run(data, scenario, learner, args))
                with atomic_write(args.out / "continual.json") as tmp:
                    tmp.write_text(json.dumps(results, indent=1))
    text = table(results)
    print(text, end="")
    with atomic_write(args.out / "continual.md") as tmp:
        tmp.write_text(text)


if __name__ == "__main__":
    main()
