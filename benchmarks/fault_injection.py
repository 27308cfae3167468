"""Fault injection: SIGKILL at random points of train, of a cache build and of export, and a full disk;
after each, the rerun (``--resume`` where a checkpoint is left) completes and no file is half written.

    python benchmarks/fault_injection.py [--kills N] [--disk-fulls M] [--seed S] [--json FILE] [--markdown FILE]

Each trial runs one command in a child process (forked from a server that imported the package once,
so a trial costs its work, not an interpreter start): ``maelstrom train`` of a tiny randman run (into
an empty folder, or replacing a finished run of another seed with ``--force``), a cache build of an
N-MNIST or SHD fixture written with the project's writers (``load_task(..., cache_dir=...)``), or
``maelstrom export`` to NIR. A kill trial sends SIGKILL after a uniform random time within the
uninterrupted command's own duration; a full-disk trial runs the command under a random file size
limit (``RLIMIT_FSIZE``, SIGXFSZ ignored, so a write past it fails with EFBIG). After the fault every
file left is checked (JSON and TOML parse, checkpoints load with ``load_checkpoint``, saved folds with
``load_fold_scores``, HDF5 caches and NIR files open, PNGs end), a train folder must not mix two runs
(config, checkpoint and metrics of one seed), then the command is rerun without fault, and its result
must be the uninterrupted run's (checkpoint weights and metrics bit-identical, cache contents and
NIR bytes equal) with no temporary file left. Prints a Markdown table; exits 1 on any failed check.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from _common import markdown_report, write_json

TRAIN = ["--neurons", "40", "--task.n_channels", "30", "--task.noise_channels", "10"]
TRAIN += ["--task.n_steps", "25", "--task.train_per_class", "5", "--task.test_per_class", "2"]
TRAIN += ["--no-feedback", "--encoder", "linear", "--quiet", "--device", "cpu"]
TARGETS = ("train", "cache-nmnist", "cache-shd", "export")
CACHE_OPTIONS = {"nmnist": {"n_steps": 40, "dt_ms": 2.0}, "shd": {"n_steps": 40}}


def job_train(out: str, epochs: str, *extra: str) -> int:
    from spiking_maelstrom.cli import main

    settings = ["--quiet", "--device", "cpu"] if "--resume" in extra else TRAIN  # a run resumes with its own
    return main(["train", *settings, "--epochs", epochs, "--out", out, *extra])


def job_cache(name: str, data: str, cache: str) -> int:
    from spiking_maelstrom import load_task

    load_task(name, data, cache_dir=cache, **CACHE_OPTIONS[name])
    return 0


def job_export(run: str, out: str) -> int:
    from spiking_maelstrom.cli import main

    return main(["export", run, "--format", "nir", "-o", out])


def _child(job: Callable[..., int], args: tuple[str, ...], log: str, fsize: int | None) -> None:
    """Run ``job(*args)`` with its output in ``log`` and, given ``fsize``, files limited to that size."""
    import torch

    torch.set_num_threads(1)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    if fsize is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    try:
        status = job(*args)
    except Exception as err:  # noqa: BLE001 - a non-CLI job's error, reported in one line like the CLI's
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        status = 2
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


class Runner:
    """Runs jobs in children of a forkserver that imported the package once."""

    def __init__(self, work: Path) -> None:
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["spiking_maelstrom.cli", "spiking_maelstrom", "torch", "h5py"])
        self.work = work
        self.count = 0

    def run(self, job: Callable[..., int], *args: str, kill_after: float | None = None, fsize: int | None = None):
        """``(exit code or -9 when killed, seconds, output)`` of ``job(*args)``."""
        self.count += 1
        log = self.work / f"log-{self.count}.txt"
        process = self.context.Process(target=_child, args=(job, args, str(log), fsize))
        start = time.perf_counter()
        process.start()
        process.join(kill_after)
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
        process.join()
        return process.exitcode, time.perf_counter() - start, log.read_text() if log.exists() else ""


def _temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith((".tmp", ".part"))


def temporary_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and _temporary(p)]


def half_written(folder: Path) -> list[str]:
    """The files under ``folder`` that do not read back whole (temporary files aside)."""
    from spiking_maelstrom.checkpoint import load_checkpoint
    from spiking_maelstrom.crossval import load_fold_scores

    bad = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not _temporary(p)):
        try:
            _read_back(path, load_checkpoint, load_fold_scores)
        except Exception as err:  # noqa: BLE001 - any failure to read it back is the finding
            bad.append(f"{path.name}: {type(err).__name__}: {err}")
    return bad


def _read_back(path: Path, load_checkpoint: Callable, load_fold_scores: Callable) -> None:
    import nir

    suffix = path.suffix
    if suffix == ".json":
        json.loads(path.read_text())
    elif suffix == ".toml":
        tomllib.loads(path.read_text())
    elif path.name == "cv_scores.pt":
        load_fold_scores(path)
    elif suffix == ".pt":
        load_checkpoint(path)
    elif suffix == ".nir":
        nir.read(path)
    elif suffix == ".h5":
        with h5py.File(path, "r") as handle:
            if "frames" in handle and not handle.attrs.get("complete", False):
                raise ValueError("cache without its complete flag")
    elif suffix == ".png" and not path.read_bytes().endswith(b"IEND\xaeB`\x82"):
        raise ValueError("PNG without its end")


def mixed(run: Path) -> bool:
    """Whether the run folder holds files of two runs (config, checkpoint and metrics of other seeds)."""
    from spiking_maelstrom.checkpoint import load_checkpoint

    seeds = set()
    if (run / "config.toml").is_file():
        seeds.add(tomllib.loads((run / "config.toml").read_text())["seed"])
    if (run / "checkpoint.pt").is_file():
        seeds.add(load_checkpoint(run / "checkpoint.pt")["train_config"]["seed"])
    if (run / "metrics.json").is_file():
        seeds.add(json.loads((run / "metrics.json").read_text())["seed"])
    return len(seeds) > 1


def train_result(run: Path) -> Any:
    from spiking_maelstrom.checkpoint import load_checkpoint

    model = load_checkpoint(run / "checkpoint.pt")["model"]
    metrics = json.loads((run / "metrics.json").read_text())
    return {k: v.numpy().tobytes() for k, v in model.items()}, metrics["test_accuracy"], metrics["test_confusion"]


def cache_result(cache: Path) -> Any:
    result = {}
    for path in sorted(cache.glob("*.h5")):
        with h5py.File(path, "r") as handle:
            result[path.name] = [handle[k][()].tobytes() for k in ("frames/index", "frames/count", "labels")]
    return result


def fixtures(root: Path) -> dict[str, Path]:
    """An N-MNIST and an SHD fixture, in their native formats, written with the project's writers."""
    from spiking_maelstrom.data.events import nmnist_events, shd_events
    from spiking_maelstrom.data.nmnist import write_nmnist_bin
    from spiking_maelstrom.data.shd import write_shd_h5

    rng = np.random.default_rng(0)
    for folder, per_class in (("Train", 12), ("Test", 3)):
        for label in range(10):
            for n in range(per_class):
                xy = rng.integers(0, 34, (2, 3000))
                events = nmnist_events(xy[0], xy[1], rng.integers(0, 2, 3000), np.sort(rng.integers(0, 80_000, 3000)))
                write_nmnist_bin(root / "nmnist" / folder / str(label) / f"{n:05d}.bin", events)
    for split, count in (("train", 120), ("test", 40)):
        samples = [shd_events(np.sort(rng.uniform(0, 0.4, 3000)), rng.integers(0, 700, 3000)) for _ in range(count)]
        labels = [i % 4 for i in range(count)]
        write_shd_h5(root / "shd" / f"shd_{split}.h5", samples, labels, [0] * count, [f"w{i}" for i in range(4)])
    return {"nmnist": root / "nmnist", "shd": root / "shd"}


class Trials:
    """The targets, their uninterrupted references, and one trial of each kind."""

    def __init__(self, runner: Runner, work: Path, rng: random.Random, epochs: int) -> None:
        self.runner, self.work, self.rng, self.epochs = runner, work, rng, str(epochs)
        self.data = fixtures(work / "data")
        self.reference: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}
        self.old_run = work / "ref-seed1"
        self._uninterrupted()

    def _uninterrupted(self) -> None:
        for target in TARGETS:
            folder = self.work / f"ref-{target}"
            status, seconds, log = self.runner.run(*self._command(target, folder))
            if status != 0:
                raise SystemExit(f"the uninterrupted {target} failed ({status}): {log}")
            self.seconds[target] = seconds
            self.reference[target] = self._result(target, folder)
        status, _, log = self.runner.run(job_train, str(self.old_run), self.epochs, "--seed", "1")
        if status != 0:
            raise SystemExit(f"the seed-1 run failed: {log}")

    def _command(self, target: str, folder: Path, extra: tuple[str, ...] = ()) -> tuple:
        if target == "train":
            return job_train, str(folder / "run"), self.epochs, *extra
        if target == "export":
            return job_export, str(self.work / "ref-train" / "run"), str(folder / "out" / "run.nir")
        name = target.removeprefix("cache-")
        return job_cache, name, str(self.data[name]), str(folder / "cache")

    def _result(self, target: str, folder: Path) -> Any:
        if target == "train":
            return train_result(folder / "run")
        if target == "export":
            return (folder / "out" / "run.nir").read_bytes()
        return cache_result(folder / "cache")

    def trial(self, number: int, target: str, fault: str) -> dict[str, Any]:
        """One fault on ``target`` and its rerun, checked."""
        folder = self.work / f"trial-{number}"
        folder.mkdir()
        replacing = target == "train" and number % 2 == 1
        if replacing:  # the new run replaces a finished run of seed 1
            shutil.copytree(self.old_run, folder / "run")
        extra = ("--force",) if replacing else ()
        if fault == "kill":
            delay = self.rng.uniform(0, self.seconds[target])
            status, _, log = self.runner.run(*self._command(target, folder, extra), kill_after=delay)
            detail = f"{delay:.2f} s"
        else:
            limit = int(2 ** self.rng.uniform(8, 18))
            status, _, log = self.runner.run(*self._command(target, folder, extra), fsize=limit)
            detail = f"{limit} B"
        row = {"trial": number, "target": target, "fault": fault, "at": detail, "status": status}
        row["one_line_error"] = status == 2 and "Traceback" not in log and log.strip().count("\n") < 2
        if status not in (0, -signal.SIGKILL):
            row["log"] = log[-600:]
        row["left_temporary"] = len(temporary_files(folder))
        row["half_written_after_fault"] = half_written(folder)
        row["mixed"] = target == "train" and mixed(folder / "run")
        rerun = self._rerun_extra(target, folder)
        status, _, log = self.runner.run(*self._command(target, folder, rerun))
        row["rerun"] = " ".join(rerun) or "same"
        row["rerun_completed"] = status == 0
        row["half_written_after_rerun"] = half_written(folder)
        row["temporary_after_rerun"] = len(temporary_files(folder))
        row["same_result"] = status == 0 and self._result(target, folder) == self.reference[target]
        if not row["rerun_completed"]:
            row["rerun_log"] = log[-2000:]
        return row

    def _rerun_extra(self, target: str, folder: Path) -> tuple[str, ...]:
        """How the command is rerun after a fault: train continues a checkpoint with --resume and
        replaces anything else that the folder holds with --force."""
        run = folder / "run"
        if target != "train" or not run.is_dir():
            return ()
        if (run / "checkpoint.pt").is_file() and not (run / "metrics.json").is_file():
            return ("--resume",)
        return ("--force",) if any((run / n).is_file() for n in ("config.toml", "metrics.json")) else ()


def ok(row: dict[str, Any]) -> bool:
    """Whether the trial passed: nothing half written or mixed, the rerun complete, the same and clean; a
    command that failed (exit 2) said why in one line. (A crash at exit, e.g. HDF5's after a failed
    write, is reported, not failed: the files are what counts.)"""
    clean = not row["half_written_after_fault"] and not row["half_written_after_rerun"] and not row["mixed"]
    rerun = row["rerun_completed"] and row["same_result"] and row["temporary_after_rerun"] == 0
    return clean and rerun and (row["status"] != 2 or row["one_line_error"])


COLUMNS = (
    "target",
    "fault",
    "trials",
    "killed",
    "one-line error",
    "crashed (signal)",
    "completed anyway",
    "temp files left by the fault",
    "reruns: resume / force / same",
    "reruns completed",
    "half-written files",
    "mixed folders",
    "temp files after rerun",
    "same result",
)


def _cells(target: str, fault: str, group: list[dict[str, Any]]) -> list[Any]:
    statuses = [r["status"] for r in group]
    reruns = [sum(r["rerun"] == k for r in group) for k in ("--resume", "--force", "same")]
    return [
        target,
        fault,
        len(group),
        statuses.count(-signal.SIGKILL),
        sum(r["one_line_error"] for r in group),
        sum(s < 0 and s != -signal.SIGKILL for s in statuses),
        statuses.count(0),
        sum(r["left_temporary"] for r in group),
        " / ".join(map(str, reruns)),
        sum(r["rerun_completed"] for r in group),
        sum(len(r["half_written_after_fault"]) + len(r["half_written_after_rerun"]) for r in group),
        sum(r["mixed"] for r in group),
        sum(r["temporary_after_rerun"] for r in group),
        sum(r["same_result"] for r in group),
    ]


def table(rows: list[dict[str, Any]]) -> None:
    """One line per target and fault."""
    print("| " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---:|" * (len(COLUMNS) - 2))
    for target in TARGETS:
        for fault in ("kill", "full disk"):
            if group := [r for r in rows if r["target"] == target and r["fault"] == fault]:
                print("| " + " | ".join(map(str, _cells(target, fault, group))) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50, help="SIGKILL trials, spread over the targets")
    parser.add_argument("--disk-fulls", type=int, default=8, help="full-disk trials, spread over the targets")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times and size limits")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the train target")
    parser.add_argument("--json", type=Path, help="also write every trial's row to this JSON file")
    parser.add_argument("--markdown", type=Path, help="also write the report to this Markdown file")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fault-injection-") as scratch, markdown_report(args.markdown):
        work = Path(scratch)
        trials = Trials(Runner(work), work, rng, args.epochs)
        faults = ["kill"] * args.kills + ["full disk"] * args.disk_fulls
        rows = [trials.trial(n, TARGETS[n % len(TARGETS)], fault) for n, fault in enumerate(faults)]
        seconds = time.perf_counter() - start
        failed = [r for r in rows if not ok(r)]
        took = ", ".join(f"{t} {s:.1f} s" for t, s in trials.seconds.items())
        print(f"Fault injection: {args.kills} kills and {args.disk_fulls} full disks, seed {args.seed}, ", end="")
        print(f"{seconds:.0f} s; the commands uninterrupted: {took}; train {args.epochs} epochs.")
        print()
        table(rows)
        print()
        print(f"{len(rows) - len(failed)} of {len(rows)} trials passed every check.")
    if args.json is not None:
        write_json(args.json, {"seed": args.seed, "seconds": seconds, "failed": len(failed), "rows": rows})
    if failed:
        print(json.dumps(failed, indent=2, default=str), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
