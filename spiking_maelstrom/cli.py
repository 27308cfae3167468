"""The ``maelstrom`` command line: train, evaluate and export Maelstrom networks."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .baselines import MODES as BASELINE_MODES
from .baselines import InputBaselineConfig, input_baseline_accuracy
from .checkpoint import load_checkpoint
from .crossval import CV_SCORES, cross_validate, ensemble_folds, load_fold_scores, save_fold_scores
from .data import TASKS, load_task
from .device import resolve_device
from .ensemble import Ensemble
from .evaluation import evaluate_network, load_network
from .export.netx import write_netx
from .export.nir import OUTPUTS, save_nir
from .export.quantize import SCALINGS, quantize
from .export.targets import available_targets, load_target
from .files import write_json
from .learning import RULES
from .maelstrom import MaelstromConfig
from .network import ENCODERS, FEATURES, READOUTS, NetworkConfig, build_network, network_config_for
from .plots import plot_accuracy, plot_raster, plot_test
from .trainer import LR_SCHEDULES, TrainConfig, Trainer, train_and_score

CHECKPOINT = "checkpoint.pt"


class CLIError(Exception):
    """An error reported to the user in one line."""


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show or the help says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, []) or "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _task_options(pairs: list[str]) -> dict[str, Any]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--task-option expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maelstrom",
        description="Maelstrom networks: a frozen spiking reservoir between a trainable encoder and readout.",
    )
    parser.add_argument("--version", action="version", version=f"spiking-maelstrom {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train a network and write a run directory",
        formatter_class=_HelpWithDefaults,
    )
    train.add_argument(
        "--dataset", default="randman", choices=TASKS, help="task (randman and randman-memory are embedded)"
    )
    train.add_argument("--data-dir", type=Path, help="data root for recorded data sets (unused by embedded tasks)")
    train.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, e.g. delay_steps=20 or manifold_dim=2 (repeatable)",
    )
    train.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="training epochs")
    train.add_argument("--neurons", type=int, default=MaelstromConfig.n_neurons, help="maelstrom size")
    train.add_argument(
        "--encoder-rule",
        default="dfa",
        choices=RULES,
        help="credit for the encoder: frozen (classic LSM), dfa, local",
    )
    train.add_argument(
        "--encoder", choices=ENCODERS, help="input network (default: the data set's: conv for nmnist, mlp otherwise)"
    )
    train.add_argument("--readout", default="linear", choices=READOUTS, help="output network")
    train.add_argument("--no-feedback", action="store_true", help="no top-down feedback into the encoder")
    train.add_argument("--no-recurrence", action="store_true", help="switch the maelstrom's recurrence off")
    train.add_argument(
        "--topology",
        default="random",
        choices=("random", "distance"),
        help="sparse random or distance-dependent 3-D column connectivity",
    )
    train.add_argument(
        "--spectral-radius",
        type=float,
        default=MaelstromConfig.spectral_radius,
        help="of the recurrent weights, in thresholds per spike",
    )
    train.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="samples per update")
    train.add_argument("--lr", type=float, default=TrainConfig.lr, help="readout learning rate")
    train.add_argument(
        "--encoder-lr",
        type=float,
        help=f"encoder learning rate (default: the data set's, else {TrainConfig.encoder_lr})",
    )
    train.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=TrainConfig.lr_schedule,
        help="both learning rates over the run: constant, or a half cosine down to 0 after the last epoch",
    )
    train.add_argument(
        "--weight-decay",
        type=float,
        default=TrainConfig.weight_decay,
        help="L2 penalty on the readout's and the encoder's weights (Adam's weight_decay)",
    )
    train.add_argument(
        "--weight-average",
        type=float,
        metavar="D",
        help="evaluate and save an exponential moving average of the trained weights instead of the last "
        "batch's: from the first batch's, with decay min(D, (1 + n) / (10 + n)) at the n-th batch after it",
    )
    train.add_argument("--window", type=int, default=TrainConfig.window, help="steps per backward pass")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--seed", type=int, default=0, help="seed of the maelstrom, initial weights and shuffling")
    train.add_argument("--out", type=Path, default=Path("runs/latest"), help="run directory")
    train.add_argument("--resume", action="store_true", help="continue the run in --out up to --epochs")
    train.add_argument("--quiet", action="store_true", help="no progress bars")

    train.add_argument(
        "--features",
        nargs="+",
        default=list(NetworkConfig.__dataclass_fields__["features"].default),
        choices=FEATURES,
        help="maelstrom state the readout reads (NIR export reads trace and current)",
    )
    train.add_argument(
        "--trace-tau",
        type=float,
        metavar="S",
        help=f"time constant of the spike trace the readout reads, in seconds (default: "
        f"{NetworkConfig.trace_tau} scaled to the data set's step, like the maelstrom's)",
    )
    for name in ("tau_mem", "tau_syn"):
        train.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            nargs=2,
            metavar=("LOW", "HIGH"),
            help=f"{name} range in seconds (default: {getattr(MaelstromConfig, name)} scaled to the data set's step; "
            "equal bounds give one value for all neurons, which Loihi 2 needs)",
        )

    train.add_argument(
        "--encoder-gain",
        type=float,
        default=NetworkConfig.encoder_gain,
        help="scale of the encoder's initial output weights (how hard it drives the maelstrom)",
    )
    train.add_argument(
        "--current-penalty",
        type=float,
        default=TrainConfig.current_penalty,
        help="L2 penalty on a trained encoder's currents; keeps the maelstrom out of saturation",
    )
    train.add_argument(
        "--current-target",
        type=float,
        metavar="R",
        help="hold a trained encoder's current energy at R times its initial level: the penalty's weight becomes "
        "P (E / E0 - R) with P the --current-penalty, so it also grows currents that fall (keeps local from "
        "starving the maelstrom)",
    )
    _add_folds(train, "also cross-validate the same settings on the training files: K more trainings")
    train.add_argument(
        "--members",
        type=int,
        default=1,
        metavar="M",
        help="cross-validate an ensemble of M networks per fold (seeds S to S+M-1; needs --folds); "
        "score M runs trained with those seeds on test with 'maelstrom evaluate RUN ...'",
    )

    baseline = sub.add_parser(
        "baseline",
        help="a ridge readout on the binned input alone (no maelstrom), the reference to beat",
        formatter_class=_HelpWithDefaults,
    )
    baseline.add_argument("--dataset", default="nmnist", choices=TASKS, help="task")
    baseline.add_argument("--data-dir", type=Path, help="data root for recorded data sets")
    baseline.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE", help="task option")
    baseline.add_argument(
        "--mode",
        default=InputBaselineConfig.mode,
        choices=BASELINE_MODES,
        help="online: leaky input trace read at every step; offline: bins stretched to each sample (needs its end)",
    )
    baseline.add_argument("--tau", type=float, default=InputBaselineConfig.tau, help="online trace time constant (s)")
    baseline.add_argument("--bins", type=int, default=InputBaselineConfig.bins, help="offline bins per sample")
    baseline.add_argument("--alpha", type=float, default=InputBaselineConfig.alpha, help="ridge penalty")
    _add_folds(baseline, "also cross-validate on the training files")
    baseline.add_argument("--seed", type=int, default=0, help="seed of the folds")
    baseline.add_argument("--out", type=Path, default=Path("runs/baseline"), help="run directory")
    baseline.add_argument("--quiet", action="store_true", help="no progress bars")

    evaluate = sub.add_parser(
        "evaluate",
        help="score a trained run (or several, as an ensemble) on a data set's test split, or on its saved "
        "cross-validation folds (--cv)",
        formatter_class=_HelpWithDefaults,
    )
    evaluate.add_argument(
        "run_dir",
        type=Path,
        nargs="+",
        help="run directory (or checkpoint file) written by train; several runs with the same test inputs "
        "(their training augmentation may differ) are scored as an ensemble (per-step log-probabilities added)",
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

    export = sub.add_parser(
        "export",
        help="quantise a trained run for a hardware target, check its limits, and write NIR or netx HDF5",
        formatter_class=_HelpWithDefaults,
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
    return parser


def _add_folds(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--folds", type=int, default=0, metavar="K", help=f"K-fold cross-validation: {what}")
    parser.add_argument(
        "--group-by",
        metavar="NAME",
        help="folds hold out whole groups, e.g. speaker (fsdd-shd / SHD): accuracy on voices never trained on",
    )


def _cross_validate(args: argparse.Namespace, task: Any, run: Any, seed: int | None = None) -> dict[str, Any] | None:
    """K-fold CV of ``run`` over ``task``'s training files, the folds drawn from ``seed`` (default ``--seed``)."""
    if not args.folds:
        if args.group_by:
            raise CLIError("--group-by needs --folds")
        return None
    if args.folds < 2:
        raise CLIError(f"--folds must be at least 2, got {args.folds}")
    seed = args.seed if seed is None else seed
    result = cross_validate(task, run, args.folds, seed, args.group_by, progress=not args.quiet)
    print(f"{args.folds}-fold cross-validation: {100 * result['mean']:.1f} +- {100 * result['std']:.1f} %")
    return result


def _network_config(args: argparse.Namespace, task: Any) -> NetworkConfig:
    maelstrom = dict(
        n_neurons=args.neurons,
        topology=args.topology,
        spectral_radius=args.spectral_radius,
        recurrent=not args.no_recurrence,
        seed=args.seed,
    )
    network = dict(
        readout=args.readout,
        feedback=not (args.no_feedback or args.readout == "ridge"),
        encoder_gain=args.encoder_gain,
        seed=args.seed,
    )
    if args.encoder is not None:
        network["encoder"] = args.encoder
    for name in ("tau_mem", "tau_syn"):
        if getattr(args, name) is not None:
            maelstrom[name] = tuple(getattr(args, name))
    network["features"] = tuple(args.features)
    if args.trace_tau is not None:
        network["trace_tau"] = args.trace_tau
    return network_config_for(task, maelstrom, **network)


def _load_task(name: str, data_dir: Path | None, options: dict[str, Any], progress: bool) -> Any:
    """Load a task; recorded data sets take their root from ``--data-dir`` over the saved options."""
    options = dict(options)
    if data_dir is not None:
        options.pop("data_dir", None)
    elif "data_dir" in options:
        data_dir = options.pop("data_dir")
    return load_task(name, data_dir, progress=progress, **options)


def _check_train_args(args: argparse.Namespace) -> None:
    for name in ("epochs", "neurons", "batch_size", "window"):
        value = getattr(args, name)
        if value < (0 if name == "epochs" else 1):
            raise CLIError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.weight_decay < 0:
        raise CLIError(f"--weight-decay must be >= 0, got {args.weight_decay}")
    if args.weight_average is not None and not 0 < args.weight_average < 1:
        raise CLIError(f"--weight-average is a decay per batch in (0, 1), got {args.weight_average}")
    if args.weight_average is not None and args.readout == "ridge":
        raise CLIError("--weight-average averages batches' weights: the ridge readout is fitted once")
    if args.readout == "ridge" and args.encoder_rule != "frozen":
        raise CLIError("--readout ridge is fitted in closed form: use it with --encoder-rule frozen")
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise CLIError(f"--data-dir {args.data_dir} is not a directory")
    if args.current_target is not None and (args.current_penalty <= 0 or args.encoder_rule == "frozen"):
        raise CLIError(
            f"--current-target {args.current_target} holds a trained encoder's currents: "
            "give --current-penalty > 0 (its gain) and --encoder-rule dfa or local"
        )
    if args.members < 1 or (args.members > 1 and not args.folds):
        raise CLIError(f"--members {args.members}: give a count >= 1, and more than 1 only with --folds")


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    _check_train_args(args)
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    out: Path = args.out
    checkpoint = out / CHECKPOINT
    progress = not args.quiet
    if args.resume:
        if not checkpoint.is_file():
            raise CLIError(f"--resume: no checkpoint at {checkpoint}")
        saved = load_checkpoint(checkpoint)
        task = _run_task(saved, args.data_dir, progress)
        trainer = Trainer.resume(checkpoint, task, device=device, progress=progress, epochs=args.epochs)
    else:
        task = _load_task(args.dataset, args.data_dir, _task_options(args.task_option), progress)
        network = build_network(_network_config(args, task), device=device)
        encoder_lr = task.train_defaults.get("encoder_lr", TrainConfig.encoder_lr)
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            encoder_lr=args.encoder_lr if args.encoder_lr is not None else encoder_lr,
            weight_decay=args.weight_decay,
            window=args.window,
            current_penalty=args.current_penalty,
            current_target=args.current_target,
            encoder_rule=args.encoder_rule,
            seed=args.seed,
            lr_schedule=args.lr_schedule,
            weight_average=args.weight_average,
        )
        trainer = Trainer(network, task, config, progress=progress)
    write_json(
        out / "config.json",
        {
            "network": trainer.network.config.to_dict(),
            "training": asdict(trainer.config),
            "task": task.record(),
            "device": str(device),
            "version": __version__,
        },
    )
    trainer.fit(checkpoint)
    if not checkpoint.is_file():
        trainer.save(checkpoint)
    test = trainer.evaluate(task.test)
    x, _ = task.test[0]
    with trainer.averaged() as network:
        sample = network(x[None].to(device), record=True)
    maelstrom = trainer.network.maelstrom
    plot_raster(
        sample.spikes[0],
        maelstrom.excitatory,
        maelstrom.dt,
        out / "raster.png",
        title=f"maelstrom spikes, {task.name} test sample 0",
    )
    if trainer.history:
        plot_accuracy(trainer.history, out / "accuracy.png", title=f"{task.name}, encoder rule {trainer.rule.name}")
    plot_test(test["confusion"], test["accuracy_over_time"], task.dt, out / "test.png", title=f"{task.name} test")
    last = trainer.history[-1] if trainer.history else {}
    metrics = {
        "dataset": task.name,
        "test_accuracy": test["accuracy"],
        "test_samples": test["samples"],
        "test_loss": test["loss"],
        "val_accuracy": last.get("val_accuracy"),
        "train_accuracy": last.get("train_accuracy"),
        "train_seconds": trainer.train_seconds,
        "epochs": trainer.epoch,
        "neurons": maelstrom.n_neurons,
        "encoder_rule": trainer.rule.name,
        "readout": trainer.network.config.readout,
        "feedback": trainer.network.feedback,
        "recurrent": maelstrom.config.recurrent,
        "device": str(device),
        "seed": trainer.config.seed,
        "spike_rate_hz": float(sample.spikes.mean()) / maelstrom.dt,
        "test_confusion": test["confusion"],
        "test_accuracy_over_time": test["accuracy_over_time"],
        "history": trainer.history,
    }
    folds: list[dict[str, Any]] = []

    def score_fold(fold: Any) -> float:
        folds.append(train_and_score(trainer.network.config, trainer.config, fold, device, args.members))
        folds[-1]["indices"] = list(fold.test.indices)
        return folds[-1]["accuracy"]

    # The run's own seed: a resumed run's folds are those `train --seed S --folds K` would draw.
    metrics["cv"] = _cross_validate(args, task, score_fold, trainer.config.seed)
    if args.members > 1:
        metrics["cv_members"] = args.members
    if folds:
        save_fold_scores(out / CV_SCORES, folds)
    write_json(out / "metrics.json", metrics)
    print(
        f"test accuracy {test['accuracy']:.4f} on {test['samples']} samples "
        f"({trainer.train_seconds:.1f} s training) -> {out}"
    )
    return metrics


def cmd_baseline(args: argparse.Namespace) -> dict[str, Any]:
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise CLIError(f"--data-dir {args.data_dir} is not a directory")
    task = _load_task(args.dataset, args.data_dir, _task_options(args.task_option), not args.quiet)
    config = InputBaselineConfig(mode=args.mode, tau=args.tau, bins=args.bins, alpha=args.alpha)
    start = time.perf_counter()
    accuracy = input_baseline_accuracy(task, config)
    metrics = {
        "dataset": task.name,
        "baseline": f"input alone ({config.mode})",
        "test_accuracy": accuracy,
        "test_samples": len(task.test),
        "seconds": time.perf_counter() - start,
        "config": asdict(config),
        "task": task.record(),
        "cv": _cross_validate(args, task, lambda fold: input_baseline_accuracy(fold, config)),
    }
    write_json(args.out / "metrics.json", metrics)
    print(f"input alone ({config.mode}): test accuracy {accuracy:.4f} on {len(task.test)} samples -> {args.out}")
    return metrics


def _checkpoint_path(path: Path) -> Path:
    checkpoint = path / CHECKPOINT if path.is_dir() else path
    if not checkpoint.is_file():
        raise CLIError(f"{path} holds no {CHECKPOINT}: pass a run directory written by 'maelstrom train'")
    return checkpoint


def _run_task(payload: dict[str, Any], data_dir: Path | None, progress: bool = False) -> Any:
    """A run's task as loaded now (options the run predates take their defaults)."""
    return _load_task(payload["task"]["name"], data_dir, payload["task"]["options"], progress)


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


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    if args.cv:
        return _evaluate_folds(args)
    checkpoints = [_checkpoint_path(path) for path in args.run_dir]
    payloads = [load_checkpoint(checkpoint) for checkpoint in checkpoints]
    payload = payloads[0]
    name = args.dataset or payload["task"]["name"]
    own = name == payload["task"]["name"]
    task = _run_task(payload, args.data_dir) if own else _load_task(name, args.data_dir, {}, progress=False)
    if len(payloads) > 1:
        first = _test_record(task if own else _run_task(payload, args.data_dir))
        for checkpoint, other in zip(checkpoints[1:], payloads[1:], strict=True):
            if (record := _test_record(_run_task(other, args.data_dir))) != first:
                raise CLIError(
                    f"{checkpoint} was trained on {record}, {checkpoints[0]} on {first}: "
                    "an ensemble's runs need the same test inputs"
                )
    device = resolve_device(args.device)
    networks = [load_network(p, device) for p in payloads]
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
    target = load_target(args.target)
    if args.format not in target.formats:
        raise CLIError(f"{target.name} takes {', '.join(target.formats)}, not {args.format}")
    payload = load_checkpoint(_checkpoint_path(args.run_dir))
    network = load_network(payload)
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        {"train": cmd_train, "baseline": cmd_baseline, "evaluate": cmd_evaluate, "export": cmd_export}[args.command](
            args
        )
    except (CLIError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"maelstrom: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("maelstrom: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
