"""Runs as files: the resolved config reruns the run; recipes, layers and the command line agree."""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields

import pytest

from spiking_maelstrom.cli import main
from spiking_maelstrom.config import (
    DEFAULT_RECIPES,
    LEAVES,
    RunConfig,
    TaskConfig,
    layered,
    read_config,
    recipe_path,
    recipes,
    resolve,
    run_settings,
)
from spiking_maelstrom.network import NetworkConfig
from spiking_maelstrom.settings import coerce, flatten
from spiking_maelstrom.trainer import TrainConfig

from .conftest import SHARED_DATA

TINY = ["--task.n_channels", "30", "--task.noise_channels", "10", "--task.n_steps", "25"]
TINY += ["--task.train_per_class", "5", "--task.test_per_class", "2", "--quiet", "--device", "cpu"]


def _metrics(run):
    return json.loads((run / "metrics.json").read_text())


def test_the_resolved_config_reruns_the_run_to_the_same_metrics(tmp_path):
    first, again = tmp_path / "r1", tmp_path / "r2"
    assert main(["train", *TINY, "--epochs", "2", "--neurons", "60", "--seed", "4", "--out", str(first)]) == 0
    assert main(["train", "--config", str(first / "config.toml"), "--out", str(again), "--quiet"]) == 0
    assert (first / "config.toml").read_text() == (again / "config.toml").read_text()
    a, b = _metrics(first), _metrics(again)
    assert a["test_accuracy"] == b["test_accuracy"] and a["test_confusion"] == b["test_confusion"]
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a["history"]]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in b["history"]]


def test_the_command_line_overrides_the_config_file_with_the_same_names(tmp_path):
    config = tmp_path / "mine.toml"
    config.write_text('[train]\nepochs = 3\nencoder_rule = "local"\n[network.maelstrom]\nn_neurons = 40\n')
    tree = layered(read_config(config), {"train": {"epochs": "1"}, "network": {"maelstrom": {"n_neurons": 50}}})
    assert tree["train"] == {"epochs": 1, "encoder_rule": "local"} and tree["network"]["maelstrom"]["n_neurons"] == 50
    run = tmp_path / "run"
    assert main(["train", *TINY, "--config", str(config), "--train.epochs", "1", "--out", str(run)]) == 0
    written = tomllib.loads((run / "config.toml").read_text())
    assert written["train"]["epochs"] == 1 and written["train"]["encoder_rule"] == "local"
    assert written["network"]["maelstrom"]["n_neurons"] == 40 and _metrics(run)["neurons"] == 40


def test_every_field_is_a_setting_except_those_the_task_and_seed_set():
    keys = {s.key for s in run_settings()}
    for prefix, cls in (("network.", NetworkConfig), ("train.", TrainConfig)):
        for f in fields(cls):
            if f.name != "maelstrom":
                assert f"{prefix}{f.name}" in keys or f.name in ("input_shape", "n_classes", "seed")
    once_unreachable = {"network.encoder_hidden", "network.readout_hidden", "network.ridge_alpha"}
    assert once_unreachable | {"train.readout_init", "train.val_fraction", "task.balance", "cv.folds"} <= keys


@pytest.mark.parametrize(
    "value, annotation, expected",
    [
        ("3", int, 3),
        (3, float, 3.0),
        ("none", float | None, None),
        ("false", bool, False),
        (["0.1", "0.2"], tuple[float, float], (0.1, 0.2)),
        (["8", "4"], tuple[int, ...], (8, 4)),
        ('{"EE": 0.2}', dict[str, float] | None, {"EE": 0.2}),
    ],
)
def test_values_are_coerced_to_their_fields_types(value, annotation, expected):
    assert coerce(value, annotation, "key") == expected


@pytest.mark.parametrize(
    "value, annotation",
    [("x", int), (1.5, int), (True, int), ("maybe", bool), (["1"], tuple[float, float]), (3, str)],
)
def test_a_value_of_the_wrong_type_names_its_key(value, annotation):
    with pytest.raises(ValueError, match="train.epochs: expected"):
        coerce(value, annotation, "train.epochs")


BAD_CONFIGS = [
    ("[train]\nepocs = 3\n", "unknown setting(s) ['train.epocs']"),
    ("[train\n", "is not readable TOML"),
    ('[train]\nepochs = "many"\n', "train.epochs: expected int"),
    ("[network]\ninput_shape = [3]\n", "unknown setting(s) ['network.input_shape']"),
]


@pytest.mark.parametrize("text, message", BAD_CONFIGS)
def test_a_bad_config_file_gets_a_one_line_error_naming_it(tmp_path, capsys, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_resume_refuses_settings_that_differ_from_the_runs_own(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--neurons", "40", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--neurons", "80", "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "it takes no network.maelstrom.n_neurons" in err and err.count("\n") == 1
    assert _metrics(run)["epochs"] == 1


def test_a_recorded_data_sets_default_is_its_recipe_and_a_config_file_replaces_it():
    for name, recipe in DEFAULT_RECIPES.items():
        assert read_config(recipe)["task"]["name"] == name
        default = layered(None, {"task": {"name": name}})
        assert default == layered(read_config(recipe), {})
    own = layered({"task": {"name": "nmnist"}}, {})
    assert own == {"task": {"name": "nmnist"}}


@pytest.mark.parametrize("name", recipes())
def test_every_recipe_is_a_valid_config_that_says_what_it_reached(name):
    tree = read_config(name)
    assert set(flatten(tree, LEAVES)) <= LEAVES
    task = dict(tree.get("task", {}))
    TaskConfig(task.pop("name", "randman"), task)
    comment = recipe_path(name).read_text().splitlines()[0]
    assert comment.startswith("# ") and "%" in comment and "docs/RESULTS.md" in comment


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"needs the real data in {SHARED_DATA}")
@pytest.mark.parametrize("name", recipes())
def test_every_recipe_resolves_on_the_real_data(name, tmp_path):
    tree = read_config(name)
    root = SHARED_DATA / ("nmnist-small" if tree["task"]["name"] == "nmnist" else "fsdd-shd")
    tree["task"].update(data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    run, task = resolve(layered(tree, {}))
    assert isinstance(run, RunConfig) and run.network.n_classes == task.n_classes
    assert tomllib.loads(run.to_toml())["task"]["name"] == task.name


def test_resume_of_a_checkpoint_with_a_foreign_train_config_is_a_one_line_error(tmp_path, capsys):
    from spiking_maelstrom.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--neurons", "40", "--out", str(run)]) == 0
    payload = load_checkpoint(run / "checkpoint.pt")
    payload["train_config"]["colour"] = "blue"
    save_checkpoint(run / "checkpoint.pt", payload)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "train_config is not one this version reads" in err and err.count("\n") == 1
