"""Loading files runs no code from them: checkpoints and saved folds are read with torch's
restricted unpickler, and a file carrying a pickled payload is refused with a one-line error."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch

from spiking_maelstrom.checkpoint import load_checkpoint
from spiking_maelstrom.cli import main
from spiking_maelstrom.crossval import load_fold_scores

TINY = [f"--task-option={o}" for o in ("n_channels=30", "noise_channels=10", "n_steps=25", "train_per_class=5")]
REFUSED = "holds objects other than tensors and plain data, or is no torch file, and was not loaded"


class Touch:
    """Unpickling it (with a full unpickler) calls ``marker.touch()``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return Path.touch, (self.marker,)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run with the checkpoint's optional parts (weight average, homeostasis) and saved folds."""
    run = tmp_path_factory.mktemp("trained") / "run"
    extra = ["--weight-average", "0.9", "--current-penalty", "0.1", "--current-target", "1", "--folds", "2"]
    args = ["train", *TINY, *extra, "--epochs", "1", "--neurons", "30", "--out", str(run), "--quiet", "--device", "cpu"]
    assert main(args) == 0
    return run


def _malicious(form: str, real: Path, path: Path, marker: Path) -> Path:
    """A file at ``path`` whose payload touches ``marker`` when unpickled: the payload as the whole
    file, as one extra entry in the ``real`` file's dictionary, or as a bare pickle."""
    if form == "top-level":
        torch.save(Touch(marker), path)
    elif form == "extra key":
        torch.save({**torch.load(real, weights_only=True), "extra": Touch(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Touch(marker), protocol=2))
    return path


FORMS = ("top-level", "extra key", "bare pickle")


def test_the_checkpoints_and_folds_the_project_writes_are_tensors_and_plain_data(trained):
    for name in ("checkpoint.pt", "cv_scores.pt"):
        assert isinstance(torch.load(trained / name, weights_only=True), dict)
    payload = load_checkpoint(trained / "checkpoint.pt")
    assert payload["weight_average"] is not None and payload["homeostasis"] is not None


@pytest.mark.parametrize("form", FORMS)
def test_a_checkpoint_with_a_payload_is_refused_in_one_line_and_the_payload_never_runs(form, trained, tmp_path):
    marker = tmp_path / "marker"
    path = _malicious(form, trained / "checkpoint.pt", tmp_path / "evil.pt", marker)
    with pytest.raises(ValueError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message == f"{path} is not readable: it {REFUSED}"
    assert not marker.exists()


@pytest.mark.parametrize("form", FORMS)
def test_saved_folds_with_a_payload_are_refused_in_one_line_and_the_payload_never_runs(form, trained, tmp_path):
    marker = tmp_path / "marker"
    path = _malicious(form, trained / "cv_scores.pt", tmp_path / "cv_scores.pt", marker)
    with pytest.raises(ValueError, match=REFUSED) as caught:
        load_fold_scores(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("command", ["evaluate", "export", "resume", "evaluate --cv"])
def test_the_cli_refuses_a_run_with_a_payload_in_one_line(command, form, trained, tmp_path, capsys):
    run, marker = tmp_path / "run", tmp_path / "marker"
    shutil.copytree(trained, run)
    name = "cv_scores.pt" if command == "evaluate --cv" else "checkpoint.pt"
    _malicious(form, trained / name, run / name, marker)
    argv = {
        "evaluate": ["evaluate", str(run), "--device", "cpu"],
        "export": ["export", str(run), "--format", "nir", "-o", str(tmp_path / "run.nir")],
        "resume": ["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet", "--device", "cpu"],
        "evaluate --cv": ["evaluate", "--cv", str(run)],
    }[command]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"maelstrom: error: {run / name} is not readable: it {REFUSED}\n"
    assert not marker.exists() and not (tmp_path / "run.nir").exists()
