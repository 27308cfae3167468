"""The ``maelstrom`` command line: run directories, evaluation, resume, one-line errors."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from spiking_maelstrom import load_network
from spiking_maelstrom.checkpoint import load_checkpoint
from spiking_maelstrom.cli import main

TINY = [
    "--task-option",
    "n_channels=30",
    "--task-option",
    "noise_channels=10",
    "--task-option",
    "n_steps=25",
    "--task-option",
    "train_per_class=5",
    "--task-option",
    "test_per_class=2",
]


def _train(out, *extra):
    args = ["train", *TINY, "--epochs", "1", "--neurons", "50", "--out", str(out), "--quiet", "--device", "cpu"]
    return main([*args, *extra])


def test_train_writes_a_complete_run_directory(tmp_path):
    run = tmp_path / "run"
    assert _train(run, "--encoder-rule", "local", "--seed", "3") == 0
    names = {p.name for p in run.iterdir()}
    assert {"config.toml", "metrics.json", "checkpoint.pt", "accuracy.png", "raster.png", "test.png"} <= names
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("test_accuracy", "train_seconds", "epochs", "neurons", "encoder_rule", "device"):
        assert key in metrics
    assert metrics["neurons"] == 50 and metrics["encoder_rule"] == "local" and metrics["epochs"] == 1
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_samples"] == 20
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["seed"] == 3 and config["task"]["n_channels"] == 30
    assert sum(map(sum, metrics["test_confusion"])) == 20 and len(metrics["test_accuracy_over_time"]) == 25
    for png in ("raster.png", "test.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_scores_the_run_and_writes_json(tmp_path, capsys):
    run = tmp_path / "run"
    _train(run)
    trained = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    args = ["--json", str(tmp_path / "e.json"), "--plot", str(tmp_path / "e.png"), "--device", "cpu"]
    assert main(["evaluate", str(run), "--dataset", "randman", *args]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "e.json").read_text())
    assert printed["accuracy"] == written["accuracy"] == trained["test_accuracy"]
    assert written["samples"] == 20
    assert written["confusion"] == trained["test_confusion"] and "confusion" not in printed
    assert written["accuracy_over_time"] == trained["test_accuracy_over_time"]
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_to_more_epochs(tmp_path):
    run = tmp_path / "run"
    _train(run)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet", "--device", "cpu"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and [h["epoch"] for h in metrics["history"]] == [1, 2]


def test_resumed_cross_validation_draws_the_runs_own_folds(tmp_path):
    from spiking_maelstrom.crossval import load_fold_scores

    _train(tmp_path / "at-once", "--seed", "3", "--folds", "2")
    _train(tmp_path / "later", "--seed", "3")
    resume = ["train", "--out", str(tmp_path / "later"), "--resume", "--epochs", "1", "--folds", "2"]
    assert main([*resume, "--quiet", "--device", "cpu"]) == 0
    at_once, later = (load_fold_scores(tmp_path / r / "cv_scores.pt") for r in ("at-once", "later"))
    assert [f["indices"] for f in later] == [f["indices"] for f in at_once]
    assert all(torch.equal(a["scores"], b["scores"]) for a, b in zip(later, at_once, strict=True))


def test_current_target_reaches_the_trainer_and_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert _train(run, "--encoder-rule", "local", "--current-penalty", "0.1", "--current-target", "2") == 0
    config = tomllib.loads((run / "config.toml").read_text())["train"]
    assert config["current_target"] == 2.0 and config["current_penalty"] == 0.1
    saved = load_checkpoint(run / "checkpoint.pt")["homeostasis"]
    assert saved["initial"] > 0 and saved["energy"] > 0  # it measured the batches


def test_weight_decay_reaches_the_optimiser_and_shrinks_the_weights(tmp_path):
    norms = {}
    for decay in ("0", "10"):
        run = tmp_path / decay
        assert _train(run, "--weight-decay", decay, "--epochs", "3") == 0
        assert tomllib.loads((run / "config.toml").read_text())["train"]["weight_decay"] == float(decay)
        weights = load_checkpoint(run / "checkpoint.pt")["model"]
        norms[decay] = float(weights["readout.1.weight"].norm())
    assert norms["10"] < 0.9 * norms["0"]


def test_weight_average_is_what_the_run_scores_and_saves(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, "--weight-average", "0.9", "--epochs", "2") == 0
    assert tomllib.loads((run / "config.toml").read_text())["train"]["weight_average"] == 0.9
    saved = load_checkpoint(run / "checkpoint.pt")
    assert not torch.equal(saved["model"]["readout.1.weight"], saved["live_model"]["readout.1.weight"])
    trained = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == trained["test_accuracy"]


def test_trace_tau_sets_the_readouts_trace_and_is_rebuilt_from_the_run(tmp_path):
    runs = {tau: tmp_path / tau for tau in ("0.01", "0.2")}
    for tau, run in runs.items():
        assert _train(run, "--trace-tau", tau) == 0
        assert tomllib.loads((run / "config.toml").read_text())["network"]["trace_tau"] == float(tau)
    traces = [load_network(run / "checkpoint.pt").trace_decay for run in runs.values()]
    assert traces == pytest.approx([1 - 1e-3 / 0.01, 1 - 1e-3 / 0.2])


def test_ridge_baseline_run(tmp_path):
    run = tmp_path / "ridge"
    assert _train(run, "--readout", "ridge", "--encoder-rule", "frozen") == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["readout"] == "ridge" and metrics["feedback"] is False


BAD_ARGUMENTS = [
    (["train", "--neurons", "0"], "n_neurons must be >= 1"),
    (["train", "--readout", "ridge", "--encoder-rule", "dfa"], "ridge readout is closed-form"),
    (["train", "--dataset", "nmnist", "--data-dir", "/nonexistent/data"], "/nonexistent/data is not a directory"),
    (["train", "--task-option", "colour"], "KEY=VALUE"),
    (["train", "--task-option", "colour=3"], "unknown option"),
    (["train", "--device", "cuda:7"], "cuda"),
    (["evaluate", "/nonexistent/run"], "holds no checkpoint.pt"),
    (["train", "--members", "3"], "more than 1 only with folds"),
    (["train", "--weight-decay", "-1"], "weight_decay must be >= 0"),
    (["train", "--trace-tau", "0.0005"], "trace_tau=0.0005 must exceed the maelstrom's dt"),
    (["train", "--weight-average", "1.5"], "weight_average is a decay per batch in (0, 1)"),
    (["train", "--readout", "ridge", "--encoder-rule", "frozen", "--weight-average", "0.9"], "fitted once"),
    (["train", "--current-target", "1"], "needs current_penalty > 0"),
    (["train", "--current-target", "1", "--current-penalty", "0.1", "--encoder-rule", "frozen"], "dfa or local"),
]


@pytest.mark.parametrize("args, message", BAD_ARGUMENTS)
def test_bad_arguments_get_a_one_line_error(args, message, capsys, tmp_path):
    if args[0] == "train":
        args = [*args, "--out", str(tmp_path / "r"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("maelstrom: error:") and message in err and err.count("\n") == 1


def test_console_script_reports_errors_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "spiking_maelstrom.cli", "evaluate", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "maelstrom: error:" in result.stderr


def test_evaluate_scores_several_runs_as_one_ensemble(tmp_path, capsys):
    """Two runs of other seeds: the ensemble adds their per-step log-probabilities."""
    import torch

    from spiking_maelstrom import load_task
    from spiking_maelstrom.checkpoint import load_checkpoint, save_checkpoint
    from spiking_maelstrom.evaluation import load_network
    from spiking_maelstrom.learning import predict

    runs = [tmp_path / "s3", tmp_path / "s4"]
    for seed, run in zip((3, 4), runs, strict=True):
        assert _train(run, "--seed", str(seed), "--no-feedback") == 0
    # A run from before an option existed records no value for it: it had the default.
    payload = load_checkpoint(runs[1] / "checkpoint.pt")
    del payload["task"]["options"]["noise_rate"]
    save_checkpoint(runs[1] / "checkpoint.pt", payload)
    capsys.readouterr()
    assert main(["evaluate", *map(str, runs), "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"] == [str(run / "checkpoint.pt") for run in runs]
    options = tomllib.loads((runs[0] / "config.toml").read_text())["task"]
    task = load_task(options.pop("name"), **options)
    x = torch.stack([task.test[i][0] for i in range(len(task.test))])
    y = torch.stack([task.test[i][1] for i in range(len(task.test))])
    summed = sum(torch.log_softmax(load_network(run / "checkpoint.pt")(x).logits, -1) for run in runs)
    assert result["accuracy"] == int((predict(summed, task.mask) == y).sum()) / len(y)
    other = tmp_path / "other"
    assert _train(other, "--task-option", "noise_channels=5") == 0
    capsys.readouterr()
    assert main(["evaluate", str(runs[0]), str(other), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "need the same test inputs" in err and err.count("\n") == 1


def test_cross_validation_of_an_ensemble_trains_every_member(tmp_path, monkeypatch):
    from spiking_maelstrom import trainer

    fitted = []
    fit = trainer.Trainer.fit
    monkeypatch.setattr(
        trainer.Trainer, "fit", lambda self, *a, **k: fitted.append(self.config.seed) or fit(self, *a, **k)
    )
    run = tmp_path / "run"
    assert _train(run, "--folds", "2", "--members", "2", "--seed", "5", "--no-feedback") == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["cv_members"] == 2 and len(metrics["cv"]["accuracy"]) == 2
    assert fitted == [5, 5, 6, 5, 6]  # the run itself, then each fold's two members


def test_evaluate_cv_scores_runs_on_their_saved_folds_alone_and_as_an_ensemble(tmp_path, capsys):
    """train --folds saves each fold's held-out scores; evaluate --cv reproduces the run's CV from
    them, adds several runs' scores per fold, and refuses runs cross-validated on other folds."""
    import torch

    from spiking_maelstrom.crossval import CV_SCORES, load_fold_scores

    runs = {rule: tmp_path / rule for rule in ("frozen", "dfa")}
    for rule, run in runs.items():
        assert _train(run, "--folds", "2", "--encoder-rule", rule, "--no-feedback") == 0
    capsys.readouterr()
    frozen = json.loads((runs["frozen"] / "metrics.json").read_text())["cv"]
    assert main(["evaluate", "--cv", str(runs["frozen"])]) == 0
    assert json.loads(capsys.readouterr().out)["cv"]["accuracy"] == frozen["accuracy"]

    assert main(["evaluate", "--cv", *map(str, runs.values()), "--json", str(tmp_path / "cv.json")]) == 0
    result = json.loads((tmp_path / "cv.json").read_text())
    folds = [load_fold_scores(run / CV_SCORES) for run in runs.values()]
    for k, accuracy in enumerate(result["cv"]["accuracy"]):
        summed = folds[0][k]["scores"].double() + folds[1][k]["scores"].double()
        assert accuracy == float((summed.argmax(-1) == folds[0][k]["labels"]).double().mean())
    assert sorted(folds[0][0]["indices"] + folds[0][1]["indices"]) == list(range(50))  # every training file once
    first = folds[0][0]
    assert first["scores"].shape == (len(first["indices"]), 10) and torch.isfinite(first["scores"]).all()

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "cv_ensembles.py"
    table = subprocess.run([sys.executable, str(script), *map(str, runs.values())], capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()[2:]
    assert len(rows) == 3  # each run alone, and the pair
    pair = next(row for row in rows if "frozen + dfa" in row)
    assert f"{100 * result['cv']['mean']:.2f} +- {100 * result['cv']['std']:.2f}" in pair

    other = tmp_path / "seed1"
    assert _train(other, "--folds", "2", "--seed", "1", "--no-feedback") == 0
    capsys.readouterr()
    for args, message in (
        ([str(runs["dfa"]), str(other)], "was cross-validated on other folds"),
        ([str(tmp_path / "nowhere")], "does not exist: cross-validation scores come from 'maelstrom train --folds K'"),
        ([str(runs["dfa"]), "--dataset", "randman"], "--cv scores the runs' own training folds"),
    ):
        assert main(["evaluate", "--cv", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_adding_members_decision_scores_is_the_ensembles_decision():
    """What evaluate --cv adds (each member's summed log-probabilities) decides as Ensemble does
    (per-step log-probabilities added, then read like one network's)."""
    import torch

    from spiking_maelstrom.learning import decision_scores, predict

    g = torch.Generator().manual_seed(0)
    logits = [3 * torch.randn(64, 20, 6, generator=g, dtype=torch.float64) for _ in range(3)]
    mask = torch.rand(20, generator=g) > 0.3
    ensemble = predict(sum(torch.log_softmax(x, -1) for x in logits), mask)
    assert torch.equal(sum(decision_scores(x, mask) for x in logits).argmax(-1), ensemble)


# Every error the command line reports: one line on stderr, exit status 2, no traceback.


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A tiny finished run, copied by the tests that change it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert _train(run, "--no-feedback") == 0
    return run


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder no file can be written in: mode 0o555, and, for root (whom modes do not stop), creating
    a file or folder in it fails as it would for anyone else (EACCES)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real_open, real_mkdir = os.open, os.mkdir

        def refused(path) -> bool:
            return Path(path).parent == folder

        def fake_open(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and refused(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *args, **kwargs)

        def fake_mkdir(path, *args, **kwargs):
            if refused(path) and not Path(path).exists():
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(os, "mkdir", fake_mkdir)
    yield folder
    folder.chmod(0o755)


@pytest.fixture(scope="module")
def nmnist_data(tmp_path_factory) -> Path:
    from .test_recorded_tasks import _nmnist_fixture

    return _nmnist_fixture(tmp_path_factory.mktemp("nmnist"), per_class=1)


def _error(argv: list[str], capsys) -> str:
    """The one line ``maelstrom ARGV`` writes to stderr, after checking that it exits with 2, no traceback."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and err.count("\n") == 1, err
    return err


def _case(name: str, tmp: Path, run: Path, read_only: Path, nmnist: Path) -> tuple[list[str], str]:
    """The command line of error case ``name`` (paths under ``tmp``) and what its message must say."""
    a_file = tmp / "a-file"
    a_file.write_text("x")
    tiny = [*TINY, "--epochs", "1", "--neurons", "20", "--quiet", "--device", "cpu"]
    nm = ["train", "--dataset", "nmnist", "--data-dir", str(nmnist), "--quiet", "--out", str(tmp / "r")]
    cases = {
        "--out is a file": (["train", *tiny, "--out", str(a_file)], f"--out {a_file} is a file, not a folder"),
        "--out below a file": (["train", *tiny, "--out", str(a_file / "r")], f"cannot write in {a_file}"),
        "--out read-only": (["train", *tiny, "--out", str(read_only / "r")], f"cannot write in {read_only}"),
        "baseline --out a file": (["baseline", "--dataset", "randman", "--out", str(a_file)], "is a file"),
        "baseline --out read-only": (["baseline", "--out", str(read_only)], f"cannot write in {read_only}"),
        "resume --out read-only": (["train", "--resume", "--out", str(read_only)], f"cannot write in {read_only}"),
        "export -o a folder": (["export", str(run), "--format", "nir", "-o", str(tmp)], f"-o/--out {tmp} is a folder"),
        "export -o read-only": (
            ["export", str(run), "--format", "nir", "-o", str(read_only / "x.nir")],
            f"cannot write in {read_only}",
        ),
        "export -o below a file": (["export", str(run), "--format", "nir", "-o", str(a_file / "x")], "Not a directory"),
        "evaluate --json a folder": (["evaluate", str(run), "--json", str(tmp)], f"--json {tmp} is a folder"),
        "evaluate --plot read-only": (["evaluate", str(run), "--plot", str(read_only / "p.png")], "cannot write in"),
        "cache read-only": ([*nm, "--task.cache_dir", str(read_only)], f"{read_only}/nmnist-train-"),
        "cache a file": ([*nm, "--task.cache_dir", str(a_file)], f"{a_file}: File exists"),
        "unknown recorded option": ([*nm, "--task.n_channels", "3"], "unknown option(s) for nmnist: ['n_channels']"),
        "mistyped recorded option": ([*nm, "--task.shift", "x"], "task.shift: expected int, got 'x'"),
        "deprecated unknown option": ([*nm, "--task-option", "colour=3"], "unknown option(s) for nmnist: ['colour']"),
        "truncated zip": (
            ["train", "--dataset", "nmnist", "--data-dir", str(tmp), "--out", str(tmp / "r"), "--quiet"],
            f"{tmp / 'Train.zip'}: unreadable zip data",
        ),
        "finished run": (["train", *tiny, "--out", str(run)], f"--out {run} holds a finished run: --force replaces it"),
        "--resume --force": (["train", "--resume", "--force", "--out", str(run)], "takes no --config or --force"),
        "unknown argument": (
            ["train", "--nope"],
            "maelstrom: error: unrecognized arguments: --nope (see maelstrom --help)",
        ),
        "bad choice": (["export", str(run), "--format", "xyz", "-o", "x"], "invalid choice: 'xyz'"),
    }
    if name == "truncated zip":
        (tmp / "Train.zip").write_bytes(b"PK\x03\x04 truncated")
    return cases[name]


ERROR_CASES = [
    "--out is a file",
    "--out below a file",
    "--out read-only",
    "baseline --out a file",
    "baseline --out read-only",
    "resume --out read-only",
    "export -o a folder",
    "export -o read-only",
    "export -o below a file",
    "evaluate --json a folder",
    "evaluate --plot read-only",
    "cache read-only",
    "cache a file",
    "unknown recorded option",
    "mistyped recorded option",
    "deprecated unknown option",
    "truncated zip",
    "finished run",
    "--resume --force",
    "unknown argument",
    "bad choice",
]


@pytest.mark.parametrize("name", ERROR_CASES)
def test_every_user_error_is_one_line_with_no_traceback(name, finished, read_only, nmnist_data, tmp_path, capsys):
    argv, message = _case(name, tmp_path, finished, read_only, nmnist_data)
    assert message in _error(argv, capsys)
    assert not (tmp_path / "r").exists() and not (tmp_path / "x.nir").exists()


def test_the_existing_error_cases_have_no_traceback_either(tmp_path, capsys):
    from .test_config import BAD_CONFIGS

    for args, message in BAD_ARGUMENTS:
        out = ["--out", str(tmp_path / "r"), "--quiet"] if args[0] == "train" else []
        assert message in _error([*args, *out], capsys)
    config = tmp_path / "bad.toml"
    for text, message in BAD_CONFIGS:
        config.write_text(text)
        assert message in _error(["train", "--config", str(config), "--out", str(tmp_path / "r"), "--quiet"], capsys)


def test_a_bug_is_one_line_saying_so_and_debug_shows_its_traceback(monkeypatch, finished, tmp_path, capsys):
    import spiking_maelstrom.cli as cli

    monkeypatch.setattr(cli, "load_target", lambda name: {}["a bug"])
    argv = ["export", str(finished), "--format", "nir", "-o", str(tmp_path / "x.nir")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("maelstrom: internal error (a bug, please report it): KeyError: 'a bug'; rerun with --debug")
    assert err.count("\n") == 1
    assert main(["--debug", *argv]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("MAELSTROM_DEBUG", "1")
    assert main(argv) == 1
    assert "Traceback" in capsys.readouterr().err


def test_the_console_script_reports_an_os_error_in_one_line(tmp_path):
    (tmp_path / "f").write_text("a file")
    result = subprocess.run(
        [sys.executable, "-m", "spiking_maelstrom.cli", "train", "--out", str(tmp_path / "f" / "r")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr == f"maelstrom: error: --out: cannot write in {tmp_path / 'f'} (Not a directory)\n"


# Run folders: a new run never mixes with the run a folder holds.


def _files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def test_a_new_run_refuses_a_folder_holding_a_run_and_force_replaces_it(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = _files(run)
    assert "holds a finished run: --force replaces it" in _error(["train", *TINY, "--out", str(run)], capsys)
    (run / "metrics.json").unlink()
    assert "holds an unfinished run: --resume continues it" in _error(["train", *TINY, "--out", str(run)], capsys)
    for name in ("checkpoint.pt", "raster.png", "accuracy.png", "test.png"):
        (run / name).unlink()
    assert "before its first checkpoint (its config.toml)" in _error(["train", "--out", str(run)], capsys)
    assert "--force starts it again" in _error(["train", "--resume", "--out", str(run)], capsys)
    shutil.rmtree(run)
    shutil.copytree(finished, run)
    assert _files(run) == before
    assert _train(run, "--force", "--seed", "9") == 0
    assert tomllib.loads((run / "config.toml").read_text())["seed"] == 9
    assert json.loads((run / "metrics.json").read_text())["seed"] == 9


def test_a_run_killed_before_its_first_checkpoint_leaves_none_of_the_run_it_replaced(finished, tmp_path, monkeypatch):
    from spiking_maelstrom import trainer

    run = tmp_path / "run"
    shutil.copytree(finished, run)

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Trainer, "fit", killed)
    assert _train(run, "--force", "--seed", "9") == 130
    assert sorted(p.name for p in run.iterdir()) == ["config.toml"]
    assert tomllib.loads((run / "config.toml").read_text())["seed"] == 9


def test_a_resume_killed_after_a_checkpoint_leaves_no_metrics_of_fewer_epochs(finished, tmp_path, monkeypatch):
    from spiking_maelstrom import trainer

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    save = trainer.Trainer.save

    def killed_after_saving(self, path):
        save(self, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Trainer, "save", killed_after_saving)
    resume = ["train", "--out", str(run), "--resume", "--epochs", "3", "--quiet", "--device", "cpu"]
    assert main(resume) == 130
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2
    assert not (run / "metrics.json").exists() and not (run / "test.png").exists()
    monkeypatch.setattr(trainer.Trainer, "save", save)
    assert main(resume) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3
