"""The ``maelstrom`` command line: train, evaluate, simulate and export Maelstrom networks, and learn continually.

A thin layer: ``train`` and ``baseline`` take their settings from the config dataclasses
(``config.run_settings``: ``--train.epochs``, ``--network.maelstrom.n_neurons``, ... and the short
forms in ``SHORT``), a ``--config`` file or recipe under them; the commands do their work in
``runs``, ``baselines``, ``trainer``, ``continual``, ``simulation`` and ``export``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NoReturn

import torch

from . import __version__
from .baselines import InputBaselineConfig, input_baseline_accuracy
from .checkpoint import load_checkpoint
from .config import (
    DEFAULT_RECIPES,
    LEAVES,
    CVConfig,
    RunConfig,
    TaskConfig,
    checked,
    layered,
    read_config,
    recipes,
    resolve,
    run_of_checkpoint,
    run_settings,
)
from .continual import CONTINUAL, ContinualConfig, ContinualTrainer, make_scenario
from .continual.trainer import CHECKPOINT as CONTINUAL_CHECKPOINT
from .continual.trainer import PLOT as CONTINUAL_PLOT
from .continual.trainer import continual_config, continual_of_checkpoint
from .crossval import CV_SCORES, cross_validate, ensemble_folds, load_fold_scores
from .data import TASKS, task_settings
from .device import resolve_device
from .diagnostics import MeasureConfig
from .ensemble import Ensemble
from .evaluation import evaluate_network, load_network
from .export.netx import write_netx
from .export.nir import OUTPUTS, save_nir
from .export.quantize import SCALINGS, quantize
from .export.targets import available_targets, load_target
from .files import probe_writable, write_json
from .network import NetworkConfig, build_network
from .plots import plot_test
from .progress import verbosity
from .runs import CHECKPOINT, METRICS, clear_run, held_run, resume, start, train_run
from .settings import Setting, add_settings, coerce, flatten, nest, settings_of
from .simulation import MEASURES, SIMULATION_FILES, SimulateConfig, simulate, sweep

# Short forms of the most used settings (today's README spellings).
SHORT = {
    "--dataset": "task.name",
    "--data-dir": "task.data_dir",
    "--seed": "seed",
    "--device": "device",
    "--epochs": "train.epochs",
    "--batch-size": "train.batch_size",
    "--lr": "train.lr",
    "--encoder-lr": "train.encoder_lr",
    "--lr-schedule": "train.lr_schedule",
    "--weight-decay": "train.weight_decay",
    "--weight-average": "train.weight_average",
    "--window": "train.window",
    "--encoder-rule": "train.encoder_rule",
    "--current-penalty": "train.current_penalty",
    "--current-target": "train.current_target",
    "--neurons": "network.maelstrom.n_neurons",
    "--topology": "network.maelstrom.topology",
    "--spectral-radius": "network.maelstrom.spectral_radius",
    "--tau-mem": "network.maelstrom.tau_mem",
    "--tau-syn": "network.maelstrom.tau_syn",
    "--encoder": "network.encoder",
    "--encoder-gain": "network.encoder_gain",
    "--readout": "network.readout",
    "--features": "network.features",
    "--trace-tau": "network.trace_tau",
    "--folds": "cv.folds",
    "--group-by": "cv.group_by",
    "--members": "cv.members",
}
BASELINE_TASK = "nmnist"
CONTINUAL_SHORT = {
    "--scenario": "continual.scenario",
    "--strategy": "continual.strategy",
    "--experiences": "continual.experiences",
    "--buffer-size": "continual.buffer_size",
}
SIMULATE_SHORT = {
    "--steps": "simulate.steps",
    "--samples": "simulate.samples",
    "--hold": "simulate.hold",
    "--delays": "simulate.delays",
    "--sweep": "simulate.sweep",
}
SWITCHES = {"--no-feedback": "network.feedback", "--no-recurrence": "network.maelstrom.recurrent"}


DEBUG_ENV = "MAELSTROM_DEBUG"
# The user's errors (arguments, data, paths, permissions, a full disk; torch's own, e.g. out of memory):
# one line. Anything else is a bug: one line saying so, the traceback under --debug or MAELSTROM_DEBUG=1.
USER_ERRORS = (ValueError, OSError, RuntimeError)


class CLIError(Exception):
    """An error reported to the user in one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _task_options(pairs: list[str]) -> dict[str, Any]:
    """The deprecated ``--task-option KEY=VALUE`` spelling, as ``task.KEY`` settings."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--task-option expects KEY=VALUE, got {pair!r} (the new spelling: --task.KEY VALUE)")
        try:
            options[f"task.{key}"] = json.loads(value)
        except json.JSONDecodeError:
            options[f"task.{key}"] = value
    return options


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, as flat dotted keys."""
    given = {k: v for k, v in vars(args).items() if k in LEAVES}
    task_options = _task_options(getattr(args, "task_option", None) or [])
    if unknown := sorted(k for k in task_options if k not in LEAVES):
        name = given.get("task.name", TaskConfig.name)
        raise CLIError(f"unknown option(s) for {name}: {[k.removeprefix('task.') for k in unknown]}")
    return {**task_options, **given}


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The run's settings, one group per section (top, task, network, network.maelstrom, train, cv)."""
    sections: dict[str, list[Setting]] = {}
    for s in run_settings():
        sections.setdefault(s.key.rpartition(".")[0] or "run", []).append(s)
    for section, settings in sections.items():
        add_settings(parser.add_argument_group(f"{section} settings"), settings, SHORT)
    for switch, key in SWITCHES.items():
        parser.add_argument(
            switch, dest=key, action="store_const", const="false", default=argparse.SUPPRESS, help=f"--{key} false"
        )
    parser.add_argument(
        "--task-option", action="append", metavar="KEY=VALUE", help="deprecated spelling of --task.KEY VALUE"
    )


def _parser(width: int | None = None) -> argparse.ArgumentParser:
    """The command line; ``width`` fixes the help's line width (for ``cli_reference``)."""
    parser = _Parser(
        prog="maelstrom",
        description="Maelstrom networks: a frozen spiking reservoir between a trainable encoder and readout.",
    )
    parser.add_argument("--version", action="version", version=f"spiking-maelstrom {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help=f"show the traceback of an error (also: {DEBUG_ENV}=1 in the environment)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _baseline_parser(sub)
    _evaluate_parser(sub)
    _continual_parser(sub)
    _simulate_parser(sub)
    _export_parser(sub)
    if width is not None:
        for each in (parser, *sub.choices.values()):
            each.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=width)
    return parser


REFERENCE_INTRO = """# Command line

Generated from the parser by `spiking_maelstrom.cli.cli_reference` (`tests/test_docs.py` checks that
it is current). Every setting of a run is one field of a config dataclass (`config.RunConfig`:
`network` is `NetworkConfig`, `network.maelstrom` `MaelstromConfig`, `train` `TrainConfig`, `cv`
`CVConfig`, `task` the task's options), with the same name on the command line and in a TOML file:
`--train.epochs 20` is `epochs = 20` under `[train]`, `--network.maelstrom.n_neurons 1000` is
`n_neurons = 1000` under `[network.maelstrom]`, `--task.shift 2` is `shift = 2` under `[task]`.
Dashes may replace underscores (`--train.encoder-rule`); the most used settings have short forms
(`--epochs`, `--neurons`, `--dataset`, ...). Lists take several values (`--network.features trace
current`), booleans `true` or `false`, optional settings `none`.

Layers, later winning: the dataclasses' defaults; the task's own (its shapes, its encoder); the data
set's default recipe (`nmnist`: `nmnist-local`, `shd`: `fsdd-dfa`), or instead the `--config` file;
the command line. A run writes its resolved config to `RUN/config.toml`:
`maelstrom train --config RUN/config.toml --out RUN2` reruns it. The recipes are in `recipes/`.
"""


def cli_reference() -> str:
    """The command line's help as Markdown: ``docs/cli.md``."""
    parser = _parser(width=100)
    subcommands = parser._subparsers._group_actions[0].choices  # argparse keeps the subcommands only here
    pages = [REFERENCE_INTRO, "```text", parser.format_help().rstrip(), "```"]
    for name, sub in subcommands.items():
        pages += [f"\n## maelstrom {name}\n", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(pages) + "\n"


FORCE_HELP = (
    "replace the run that --out holds (without it, a folder holding a run, finished or not, is refused): "
    "its files are removed, its metrics first, before the new run writes its own"
)


def _train_parser(sub: Any) -> None:
    train = sub.add_parser(
        "train",
        usage="maelstrom train [--config FILE|RECIPE] [--out DIR] [--resume | --force] [--quiet] [--KEY VALUE ...]",
        help="train a network and write a run directory",
        description="Train a network and write a run directory. Settings layer up: the dataclasses' defaults, "
        "the data set's default recipe (or, instead, the --config file), then the options given here.",
    )
    train.add_argument(
        "--config",
        metavar="FILE|RECIPE",
        help=f"a TOML run config (e.g. RUN/config.toml, which reruns RUN) or a recipe: {', '.join(recipes())}",
    )
    train.add_argument("--out", type=Path, default=Path("runs/latest"), help="run directory [default: runs/latest]")
    train.add_argument("--resume", action="store_true", help="continue the run in --out up to --epochs")
    train.add_argument("--force", action="store_true", help=FORCE_HELP)
    train.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    _add_run_options(train)


def _baseline_parser(sub: Any) -> None:
    baseline = sub.add_parser(
        "baseline", help="a ridge readout on the binned input alone (no maelstrom), the reference to beat"
    )
    tasks = [s for s in run_settings() if s.key.startswith("task.") or s.key == "seed"]
    cv = settings_of(CVConfig, "cv.", frozenset({"cv.members"}))
    add_settings(baseline, [*tasks, *cv], SHORT, defaults={"task.name": BASELINE_TASK})
    add_settings(baseline, list(settings_of(InputBaselineConfig)))
    baseline.add_argument(
        "--task-option", action="append", metavar="KEY=VALUE", help="deprecated spelling of --task.KEY VALUE"
    )
    baseline.add_argument("--out", type=Path, default=Path("runs/baseline"), help="run directory")
    baseline.add_argument("--force", action="store_true", help=FORCE_HELP)
    baseline.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")


def _continual_parser(sub: Any) -> None:
    continual = sub.add_parser(
        "continual",
        usage="maelstrom continual [--scenario S] [--strategy S] [--experiences E] [--out DIR] [--resume | --force] "
        "[--KEY VALUE ...]",
        help="learn a task's experiences one after another (continual learning) and write the accuracy matrix",
        description="Cut the run's task into experiences (a scenario) and learn them one after another with a "
        f"strategy; after each experience RUN/{CONTINUAL} (the accuracy matrix R[i][j], ACC, BWT, FWT, time, memory), "
        f"RUN/{CONTINUAL_PLOT} and RUN/{CONTINUAL_CHECKPOINT} are written. The run's settings layer as in train, "
        "with the strategy's needs (stream-ridge, joint: a ridge readout on a frozen encoder) beneath those given.",
    )
    add_settings(
        continual.add_argument_group("continual settings"),
        list(settings_of(ContinualConfig, "continual.")),
        CONTINUAL_SHORT,
    )
    continual.add_argument("--config", metavar="FILE|RECIPE", help="a TOML run config or a recipe, as in train")
    continual.add_argument("--out", type=Path, default=Path("runs/continual"), help="run directory")
    continual.add_argument("--resume", action="store_true", help="continue the run in --out at its next experience")
    continual.add_argument("--force", action="store_true", help="replace the run that --out holds")
    continual.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    _add_run_options(continual)


def _simulate_settings() -> list[Setting]:
    """``simulate``'s own settings: the measures' (the run's seed seeds them) and ``SimulateConfig``'s."""
    measures = settings_of(MeasureConfig, "simulate.", frozenset({"simulate.seed"}))
    return [*measures, *settings_of(SimulateConfig, "simulate.")]


def _simulate_parser(sub: Any) -> None:
    simulate_ = sub.add_parser(
        "simulate",
        usage="maelstrom simulate [--run RUN | --config FILE|RECIPE] [--input generated|task] [--sweep R ...] "
        "[--out DIR] [--force] [--KEY VALUE ...]",
        help="run a maelstrom, record its spikes and measure what it remembers, separates and amplifies",
        description="Run a maelstrom (fresh from the run settings, as train builds it, or the one in a trained "
        f"--run) and write DIR/{MEASURES} (memory capacity, kernel and generalisation rank, separation, "
        "one-spike perturbation growth, firing statistics), the recorded spikes (HDF5), a raster and the "
        "measures' plots. Memory capacity and separation read the generated input; the ranks, perturbation "
        "and firing statistics read --input. --sweep R ... also trains the network at each spectral radius "
        "and draws memory capacity and validation accuracy against it.",
    )
    add_settings(simulate_.add_argument_group("simulate settings"), _simulate_settings(), SIMULATE_SHORT)
    source = simulate_.add_mutually_exclusive_group()
    source.add_argument("--run", type=Path, metavar="RUN", help="simulate the maelstrom of this trained run")
    source.add_argument("--config", metavar="FILE|RECIPE", help="a TOML run config or a recipe, as in train")
    simulate_.add_argument(
        "--input",
        choices=("generated", "task"),
        help="what the ranks, perturbation and firing statistics read: the generated input or the task's test "
        "samples through the encoder [default: task when --dataset, --config or --run is given, else generated]",
    )
    simulate_.add_argument("--out", type=Path, default=Path("runs/simulate"), help="simulation directory")
    simulate_.add_argument("--force", action="store_true", help="replace the simulation that --out holds")
    simulate_.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    _add_run_options(simulate_)


def _evaluate_parser(sub: Any) -> None:
    evaluate = sub.add_parser(
        "evaluate",
        help="score a trained run (or several, as an ensemble) on a data set's test split, or on its saved "
        "cross-validation folds (--cv)",
    )
    evaluate.add_argument(
        "run_dir",
        type=Path,
        nargs="+",
        help="run directory (or checkpoint file) written by train; several runs with the same test inputs "
        "(their training augmentation may differ) are scored as an ensemble (per-step log-probabilities added); "
        "a run of 'maelstrom continual' alone is scored on every experience of its scenario",
    )
    evaluate.add_argument(
        "--cv",
        action="store_true",
        help="score the runs' cross-validation folds instead (their held-out scores, saved by train --folds as "
        f"{CV_SCORES}); several runs cross-validated on the same folds are scored as an ensemble",
    )
    evaluate.add_argument("--dataset", choices=TASKS, help="task to score on (default: the run's own)")
    evaluate.add_argument("--data-dir", type=Path, help="data root for recorded data sets")
    evaluate.add_argument(
        "--json",
        type=Path,
        help="also write the result to this JSON file, with the confusion matrix and the accuracy over time",
    )
    evaluate.add_argument(
        "--plot",
        type=Path,
        help="also write a PNG of the confusion matrix and of the accuracy of the decision so far at each step",
    )
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def _export_parser(sub: Any) -> None:
    export = sub.add_parser(
        "export",
        help="quantise a trained run for a hardware target, check its limits, and write NIR or netx HDF5",
    )
    export.add_argument("run_dir", type=Path, help="run directory (or checkpoint file) written by train")
    export.add_argument("--format", required=True, choices=("nir", "netx"), help="file format")
    export.add_argument(
        "--target", default="float", help=f"hardware target: {', '.join(available_targets())}, or a .toml path"
    )
    export.add_argument("-o", "--out", type=Path, required=True, help="file to write")
    export.add_argument("--scaling", choices=SCALINGS, help="weight scale sharing (default: the target's)")
    export.add_argument(
        "--output", default="scores", choices=OUTPUTS, help="the readout's scores, or the maelstrom's spikes alone"
    )
    export.add_argument(
        "--drop-feedback", action="store_true", help="leave the feedback out (the uniform prior replaces it)"
    )


def _out_folder(path: Path, flag: str = "--out") -> None:
    """A one-line error unless ``path`` is, or can be made, a folder to write in (checked before long work)."""
    if path.exists() and not path.is_dir():
        raise CLIError(f"{flag} {path} is a file, not a folder")
    _probe(path, flag)


def _out_file(path: Path | None, flag: str) -> None:
    """A one-line error unless ``path`` (where given) can be written as a file (checked before long work)."""
    if path is None:
        return
    if path.is_dir():
        raise CLIError(f"{flag} {path} is a folder: give the file to write")
    _probe(path.parent, flag)


def _probe(folder: Path, flag: str) -> None:
    try:
        probe_writable(folder)
    except OSError as err:
        raise CLIError(f"{flag}: cannot write in {err.filename} ({err.strerror})") from None


HELD = {"finished": "a finished run", "unstarted": "a run stopped before its first checkpoint (its config.toml)"}


def _new_out(args: argparse.Namespace) -> None:
    """``--out`` of a new run: a folder to write in, holding no run unless ``--force``."""
    _out_folder(args.out)
    held = None if args.force else held_run(args.out)
    if held == "unfinished":
        raise CLIError(f"--out {args.out} holds an unfinished run: --resume continues it, --force replaces it")
    if held is not None:
        raise CLIError(f"--out {args.out} holds {HELD[held]}: --force replaces it, or choose another --out")


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    given = _given(args)
    if args.resume:
        if args.config or args.force:
            raise CLIError("--resume continues the run in --out with its own config: it takes no --config or --force")
        _out_folder(args.out)
        run, task, trainer = resume(args.out, flatten(checked(nest(given)), LEAVES))
    else:
        _new_out(args)
        config = read_config(args.config) if args.config else None
        name = given.get("task.name", TaskConfig.name)
        if config is None and name in DEFAULT_RECIPES:
            print(f"{name}: the recipe {DEFAULT_RECIPES[name]} under the settings given (--config FILE replaces it)")
        run, task = resolve(layered(config, nest(given)))
        trainer = start(run, task)
    metrics = train_run(run, task, trainer, args.out, resumed=args.resume)
    print(
        f"test accuracy {metrics['test_accuracy']:.4f} on {metrics['test_samples']} samples "
        f"({metrics['train_seconds']:.1f} s training) -> {args.out}"
    )
    return metrics


CONTINUAL_FILES = (CONTINUAL, CONTINUAL_PLOT, CONTINUAL_CHECKPOINT)
CONTINUAL_RESUMABLE = ("task.data_dir", "task.cache_dir", "device")


def _continual_resumed(args: argparse.Namespace, given: dict[str, Any]) -> ContinualTrainer:
    if args.config or args.force:
        raise CLIError("--resume continues the run in --out with its own config: it takes no --config or --force")
    refused = sorted(k for k in given if k not in CONTINUAL_RESUMABLE)
    refused += sorted(k for k in vars(args) if k.startswith("continual."))
    if refused:
        raise CLIError(f"--resume continues {args.out} with its own settings: it takes no {', '.join(refused)}")
    checkpoint = args.out / CONTINUAL_CHECKPOINT
    if not checkpoint.is_file():
        raise CLIError(f"--resume: no continual checkpoint at {checkpoint}")
    payload, config = continual_of_checkpoint(checkpoint)
    data_dir = Path(given["task.data_dir"]) if given.get("task.data_dir") else None
    return _continual_trainer(payload, config, data_dir, given.get("device", "auto"), checkpoint)


def _continual_trainer(
    payload: dict[str, Any], config: ContinualConfig, data_dir: Path | None, device: str, checkpoint: Path
) -> ContinualTrainer:
    """The continual run a checkpoint holds, on its own scenario made again."""
    task = _run_task(payload, data_dir)
    scenario = make_scenario(task, config.scenario, config.experiences, payload["train_config"]["seed"])
    return ContinualTrainer.resume(payload, scenario, device, checkpoint)


def _continual_started(args: argparse.Namespace, given: dict[str, Any]) -> ContinualTrainer:
    _out_folder(args.out)
    held = [name for name in CONTINUAL_FILES if (args.out / name).is_file()]
    if held and not args.force:
        raise CLIError(f"--out {args.out} holds a continual run: --resume continues it, --force replaces it")
    settings = settings_of(ContinualConfig, "continual.")
    config = ContinualConfig(
        **{
            s.key.removeprefix("continual."): coerce(getattr(args, s.key), s.type, s.key)
            for s in settings
            if s.key in args
        }
    )
    file = read_config(args.config) if args.config else None
    tree = layered(file, nest(given), config.implied())
    config.check(tree.get("network", {}).get("readout", NetworkConfig.readout))
    run, task = resolve(tree)
    scenario = make_scenario(task, config.scenario, config.experiences, run.seed)
    for name in CONTINUAL_FILES:
        (args.out / name).unlink(missing_ok=True)
    return ContinualTrainer(run, config, scenario)


def cmd_continual(args: argparse.Namespace) -> dict[str, Any]:
    given = _given(args)
    trainer = _continual_resumed(args, given) if args.resume else _continual_started(args, given)
    results = trainer.fit(args.out)
    bwt = "" if results["bwt"] is None else f", BWT {100 * results['bwt']:+.1f}"
    print(
        f"{results['strategy']} on {results['dataset']} {results['scenario']} ({results['experiences']} experiences): "
        f"ACC {100 * results['acc']:.1f} %{bwt} ({results['train_seconds']:.1f} s) -> {args.out}"
    )
    return results


def _simulate_configs(args: argparse.Namespace, seed: int) -> tuple[MeasureConfig, SimulateConfig]:
    values = {s.key: coerce(getattr(args, s.key), s.type, s.key) for s in _simulate_settings() if s.key in args}
    own = {k.removeprefix("simulate."): v for k, v in values.items()}
    sim = {k: own.pop(k) for k in list(own) if k in SimulateConfig.__dataclass_fields__}
    return MeasureConfig(**own, seed=seed), SimulateConfig(**sim)


def _simulated_run(args: argparse.Namespace, given: dict[str, Any]) -> tuple[RunConfig, Any, Any]:
    """The run ``simulate`` reads, its task and its network: a trained ``--run``'s, or one built
    fresh from the settings (as ``train`` would build it)."""
    if args.run is None:
        run, task = resolve(layered(read_config(args.config) if args.config else None, nest(given)))
        torch.manual_seed(run.seed)
        return run, task, build_network(run.network, resolve_device(run.device))
    if refused := sorted(k for k in given if k not in ("task.data_dir", "device")):
        raise CLIError(f"--run simulates {args.run} as it was trained: it takes no {', '.join(refused)}")
    checkpoint = _checkpoint_path(args.run)
    payload = load_checkpoint(checkpoint)
    data_dir = Path(given["task.data_dir"]) if "task.data_dir" in given else None
    device = given.get("device", "auto")
    run = run_of_checkpoint(payload, CVConfig(), device, checkpoint)
    return run, _run_task(payload, data_dir), load_network(payload, resolve_device(device), checkpoint)


def cmd_simulate(args: argparse.Namespace) -> dict[str, Any]:
    given = _given(args)
    _out_folder(args.out)
    if not args.force and (args.out / MEASURES).is_file():
        raise CLIError(f"--out {args.out} holds a simulation: --force replaces it, or choose another --out")
    seed = int(coerce(given.get("seed", RunConfig.seed), int, "seed"))
    measures, settings = _simulate_configs(args, seed)
    from_task = args.input == "task" or (args.input is None and ("task.name" in given or args.config or args.run))
    run, task, network = _simulated_run(args, given)
    measures = replace(measures, seed=run.seed)
    for name in SIMULATION_FILES:
        (args.out / name).unlink(missing_ok=True)
    result = simulate(network, measures, settings, args.out, task if from_task else None)
    growth = result["perturbation_growth"]
    print(
        f"{result['neurons']} neurons on {result['input']} input: memory capacity {result['memory_capacity']:.2f}, "
        f"kernel rank {result['kernel_rank']}, generalisation rank {result['generalisation_rank']} "
        f"(of {result['rank_inputs']}), {result['rate_hz']:.1f} Hz, perturbation {growth:.2f} spikes late "
        f"-> {args.out}"
    )
    if settings.sweep:
        points = sweep(run.network, run.train, task, measures, settings.sweep, args.out)
        best = max(points, key=lambda p: p["validation_accuracy"])
        print(
            f"sweep: best validation accuracy {best['validation_accuracy']:.4f} at spectral radius "
            f"{best['spectral_radius']:g} -> {args.out}"
        )
        result["sweep"] = points
    return result


def cmd_baseline(args: argparse.Namespace) -> dict[str, Any]:
    tree = checked(nest({"task.name": BASELINE_TASK, **_given(args)}))
    _new_out(args)
    cv = CVConfig(**tree.get("cv", {}))
    options = dict(tree["task"])
    task = TaskConfig(options.pop("name"), options).load()
    config = InputBaselineConfig(
        **{
            s.key: coerce(getattr(args, s.key), s.type, s.key)
            for s in settings_of(InputBaselineConfig)
            if s.key in args
        }
    )
    start_time = time.perf_counter()
    accuracy = input_baseline_accuracy(task, config)
    cross = None
    if cv.folds:
        seed = tree.get("seed", 0)
        cross = cross_validate(task, lambda f: input_baseline_accuracy(f, config), cv.folds, seed, cv.group_by)
    metrics = {
        "dataset": task.name,
        "baseline": f"input alone ({config.mode})",
        "test_accuracy": accuracy,
        "test_samples": len(task.test),
        "seconds": time.perf_counter() - start_time,
        "config": asdict(config),
        "task": task.record(),
        "cv": cross,
    }
    clear_run(args.out)
    write_json(args.out / METRICS, metrics)
    print(f"input alone ({config.mode}): test accuracy {accuracy:.4f} on {len(task.test)} samples -> {args.out}")
    return metrics


def _checkpoint_path(path: Path) -> Path:
    checkpoint = path / CHECKPOINT if path.is_dir() else path
    if not checkpoint.is_file():
        raise CLIError(f"{path} holds no {CHECKPOINT}: pass a run directory written by 'maelstrom train'")
    return checkpoint


def _task(name: str, options: dict[str, Any], data_dir: Path | None) -> Any:
    """Task ``name`` with ``options``, read from ``data_dir`` where given and the task reads files."""
    if data_dir is not None and "data_dir" in {s.key for s in task_settings(name)}:
        options = {**options, "data_dir": str(data_dir)}
    return TaskConfig(name, options).load()


def _run_task(payload: dict[str, Any], data_dir: Path | None) -> Any:
    """A run's task as loaded now (options the run predates take their defaults)."""
    return _task(payload["task"]["name"], payload["task"]["options"], data_dir)


def _test_record(task: Any) -> dict[str, Any]:
    """What defines ``task``'s test inputs: its record less where its files are and less the
    options that touch training data alone (augmentation)."""
    record = task.record()
    ignored = ("data_dir", "cache_dir", *task.training_only)
    record["options"] = {k: v for k, v in record["options"].items() if k not in ignored}
    return record


def _evaluate_folds(args: argparse.Namespace) -> dict[str, Any]:
    """``evaluate --cv``: the runs' saved cross-validation scores, added per fold."""
    if args.dataset or args.data_dir:
        raise CLIError("--cv scores the runs' own training folds: it takes no --dataset or --data-dir")
    runs = {str(path): load_fold_scores(path / CV_SCORES if path.is_dir() else path) for path in args.run_dir}
    result = {"cv": ensemble_folds(runs), "runs": list(runs)}
    print(json.dumps(result, indent=2))
    if args.json is not None:
        write_json(args.json, result)
    return result


def _evaluate_continual(args: argparse.Namespace, checkpoints: list[Path], payload: dict[str, Any]) -> dict[str, Any]:
    """``evaluate`` of a continual run: every experience of its own scenario, scored as it learned
    them (task-incremental: each through its own head)."""
    if len(checkpoints) > 1:
        raise CLIError(f"{checkpoints[0]} is a continual run: score it alone (or pass --dataset)")
    if args.plot is not None:
        raise CLIError(f"--plot: {checkpoints[0]} is a continual run; its continual.png is beside it")
    start = time.perf_counter()
    config = continual_config(payload, checkpoints[0])
    trainer = _continual_trainer(payload, config, args.data_dir, args.device, checkpoints[0])
    accuracies = trainer.evaluate_all()
    result = {
        "dataset": trainer.scenario.task.name,
        "scenario": config.scenario,
        "strategy": config.strategy,
        "learned": len(trainer.matrix),
        "accuracy_per_experience": accuracies,
        "accuracy": sum(accuracies) / len(accuracies),
        "seconds": time.perf_counter() - start,
        "checkpoint": str(checkpoints[0]),
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        write_json(args.json, result)
    return result


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    _out_file(args.json, "--json")
    _out_file(args.plot, "--plot")
    if args.cv:
        return _evaluate_folds(args)
    checkpoints = [_checkpoint_path(path) for path in args.run_dir]
    payloads = [load_checkpoint(checkpoint) for checkpoint in checkpoints]
    payload = payloads[0]
    if "continual" in payload and args.dataset is None:
        return _evaluate_continual(args, checkpoints, payload)
    if "continual" in payload and continual_config(payload, checkpoints[0]).scenario == "task-incremental":
        raise CLIError(f"--dataset: {checkpoints[0]} has one head per experience and no readout of its own to score")
    name = args.dataset or payload["task"]["name"]
    own = name == payload["task"]["name"]
    task = _run_task(payload, args.data_dir) if own else _task(name, {}, args.data_dir)
    if len(payloads) > 1:
        first = _test_record(task if own else _run_task(payload, args.data_dir))
        for checkpoint, other in zip(checkpoints[1:], payloads[1:], strict=True):
            if (record := _test_record(_run_task(other, args.data_dir))) != first:
                raise CLIError(
                    f"{checkpoint} was trained on {record}, {checkpoints[0]} on {first}: "
                    "an ensemble's runs need the same test inputs"
                )
    device = resolve_device(args.device)
    networks = [load_network(p, device, source) for p, source in zip(payloads, checkpoints, strict=True)]
    for checkpoint, network in zip(checkpoints, networks, strict=True):
        if tuple(task.input_shape) != tuple(network.encoder.input_shape) or task.n_classes != network.n_classes:
            raise CLIError(
                f"{name} has inputs {task.input_shape} and {task.n_classes} classes; {checkpoint} was trained on "
                f"{network.encoder.input_shape} with {network.n_classes} classes"
            )
    model = networks[0] if len(networks) == 1 else Ensemble(networks)
    start = time.perf_counter()
    result = evaluate_network(model, task.test, task.mask, payload["train_config"]["batch_size"])
    paths = [str(checkpoint) for checkpoint in checkpoints]
    result = {
        "dataset": name,
        **result,
        "seconds": time.perf_counter() - start,
        "checkpoint": paths[0] if len(paths) == 1 else paths,
    }
    details = ("confusion", "accuracy_over_time")
    print(json.dumps({k: v for k, v in result.items() if k not in details}, indent=2))
    if args.json is not None:
        write_json(args.json, result)
    if args.plot is not None:
        plot_test(result["confusion"], result["accuracy_over_time"], task.dt, args.plot, title=f"{name} test")
    return result


def cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    _out_file(args.out, "-o/--out")
    target = load_target(args.target)
    if args.format not in target.formats:
        raise CLIError(f"{target.name} takes {', '.join(target.formats)}, not {args.format}")
    checkpoint = _checkpoint_path(args.run_dir)
    payload = load_checkpoint(checkpoint)
    network = load_network(payload, source=checkpoint)
    # The input the exported network expects: frames through the task's front end, if it had one.
    front_end = payload["task"].get("front_end")
    notes = {"host_front_end": json.dumps(front_end)} if front_end else None
    mapping = quantize(network, target, args.scaling, args.drop_feedback)
    if args.format == "netx":
        write_netx(mapping, args.out, readout=args.output == "scores", attributes=notes)
    else:
        plain = network if not target.integer else mapping.dequantized(network)
        save_nir(plain, args.out, output=args.output, drop_feedback=args.drop_feedback, metadata=notes)
    result = {"file": str(args.out), "format": args.format, "target": target.name, **mapping.summary()}
    if front_end:
        result["host_front_end"] = front_end
    print(json.dumps(result, indent=2))
    return result


def _message(err: BaseException) -> str:
    """``err`` in one line, naming the path where it is an operating system error about one."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}{f' -> {err.filename2}' if err.filename2 else ''}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _report(err: Exception) -> int:
    """Print ``err`` in one line (a bug says so); returns the exit status: 2 for the user's errors, 1 for bugs."""
    if isinstance(err, (CLIError, *USER_ERRORS)):
        print(f"maelstrom: error: {_message(err)}", file=sys.stderr)
        return 2
    print(
        f"maelstrom: internal error (a bug, please report it): {type(err).__name__}: {_message(err)}; "
        f"rerun with --debug (or {DEBUG_ENV}=1) to see the traceback",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = {
        "train": cmd_train,
        "baseline": cmd_baseline,
        "evaluate": cmd_evaluate,
        "continual": cmd_continual,
        "simulate": cmd_simulate,
        "export": cmd_export,
    }
    try:
        with verbosity(not getattr(args, "quiet", False)):
            command[args.command](args)
    except KeyboardInterrupt:
        print("maelstrom: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            traceback.print_exc()
        return _report(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
