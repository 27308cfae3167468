"""The wheel: built from the repository, installed outside it, and used from there to export a trained
hardware-ready run to every shipped hardware target (the targets are package data of the wheel)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spiking_maelstrom import MaelstromConfig, NetworkConfig, Task, TrainConfig, Trainer, __version__, build_network
from spiking_maelstrom.data.synthetic import Randman, randman_dataset
from spiking_maelstrom.export import load_nir
from spiking_maelstrom.export.targets import available_targets, load_target

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
N_NEURONS, N_INPUTS, N_CLASSES, N_STEPS = 50, 14, 4, 20
INSTALLED = """import importlib.metadata, json, spiking_maelstrom
from spiking_maelstrom.export.targets import available_targets
print(json.dumps({"file": spiking_maelstrom.__file__, "version": spiking_maelstrom.__version__,
                  "metadata": importlib.metadata.version("spiking-maelstrom"), "targets": available_targets()}))"""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command to completion and return its output; fail the test with its output if it fails."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _pip(*args: str, cwd: Path) -> None:
    _run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "-q"], cwd)


def _build_wheel(work: Path) -> Path:
    """A wheel built offline from a copy of the sources (so no build/ or egg-info lands in the repo)."""
    src = work / "src"
    shutil.copytree(REPO / "spiking_maelstrom", src / "spiking_maelstrom", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    _pip("wheel", "--no-build-isolation", "-w", str(work / "dist"), ".", cwd=src)
    (wheel,) = (work / "dist").glob("spiking_maelstrom-*.whl")
    return wheel


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The wheel installed, without its dependencies, into a folder of its own."""
    work = tmp_path_factory.mktemp("wheel")
    _pip("install", "--target", str(work / "site"), str(_build_wheel(work)), cwd=work)
    return work / "site"


@pytest.fixture(scope="module")
def hardware_run(tmp_path_factory) -> Path:
    """A trained run that every target takes: 14 inputs (Xylo: 16), 4 classes (Xylo Audio 2: 8
    outputs), 50 neurons (Xylo Audio 3: 128 per input and readout), a linear encoder without
    feedback, a ridge readout of the trace, one membrane and one synaptic time constant (Loihi 2)."""
    randman = Randman(n_classes=N_CLASSES, n_channels=10, seed=0)
    train, test = (randman_dataset(s, randman, 4, N_STEPS, noise_channels=N_INPUTS - 10) for s in ("train", "test"))
    task = Task("randman", train, test, (N_INPUTS,), N_CLASSES, torch.ones(N_STEPS, dtype=torch.bool))
    maelstrom = MaelstromConfig(n_neurons=N_NEURONS, seed=1, tau_mem=(0.02, 0.02), tau_syn=(0.005, 0.005))
    config = NetworkConfig(
        (N_INPUTS,), N_CLASSES, maelstrom, encoder="linear", readout="ridge", features=("trace",), feedback=False
    )
    trainer = Trainer(build_network(config), task, TrainConfig(encoder_rule="frozen", val_fraction=0.0))
    trainer.fit()
    run = tmp_path_factory.mktemp("run")
    trainer.save(run / "checkpoint.pt")
    return run


def _outside(site: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working directory outside the repository and an environment that imports only the wheel."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return cwd, {**os.environ, "PYTHONPATH": str(site)}


def test_the_installed_wheel_is_imported_with_its_version_and_targets(site, tmp_path):
    cwd, env = _outside(site, tmp_path)
    installed = json.loads(_run([sys.executable, "-c", INSTALLED], cwd, env))
    assert Path(installed["file"]).is_relative_to(site)
    assert installed["version"] == installed["metadata"] == __version__
    assert installed["targets"] == available_targets()


def test_the_installed_wheel_exports_to_every_target(site, hardware_run, tmp_path):
    cwd, env = _outside(site, tmp_path)
    for name in available_targets():
        fmt = "netx" if "netx" in load_target(name).formats else "nir"
        out = tmp_path / f"{name}.{fmt}"
        command = ["-m", "spiking_maelstrom.cli", "export", str(hardware_run), "--format", fmt, "--target", name]
        report = json.loads(_run([sys.executable, *command, "-o", str(out)], cwd, env))
        assert (report["target"], report["format"]) == (name, fmt) and out.is_file()
        if fmt == "nir":
            assert load_nir(out).maelstrom.n_neurons == N_NEURONS
