"""Property-based fuzzing of the readers that are not event-data readers: NIR files, hardware
targets, run configs, checkpoints (and the CLI commands that load them) and saved folds. Each
input gives a valid result or a clear error: a ``ValueError`` (or a subclass) on one line that
names the file, never another exception type or a hang.

There is no netx reader in the package (``export/netx.py`` only writes; lava-dl reads), so netx
files are not fuzzed here. CI runs a few examples per reader; ``MAELSTROM_FUZZ_EXAMPLES=10000``
runs more (shared with the event-data readers' fuzz file).
"""

from __future__ import annotations

import contextlib
import io
import os
import tomllib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tomli_w
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spiking_maelstrom import MaelstromConfig, NetworkConfig, build_network
from spiking_maelstrom.checkpoint import load_checkpoint
from spiking_maelstrom.cli import main
from spiking_maelstrom.config import LEAVES, checked, layered, read_config
from spiking_maelstrom.crossval import CV_SCORES_FORMAT, ensemble_folds, load_fold_scores
from spiking_maelstrom.evaluation import load_network
from spiking_maelstrom.export import load_nir, save_nir
from spiking_maelstrom.export.quantize import quantize
from spiking_maelstrom.export.targets import HARDWARE_DIR, available_targets, load_target

EXAMPLES = int(os.environ.get("MAELSTROM_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None,
)
TRAIN = ["--neurons", "30", "--epochs", "1", "--task.n_channels", "20", "--task.noise_channels", "5"]
TRAIN += ["--task.n_steps", "15", "--task.train_per_class", "3", "--task.test_per_class", "1", "--quiet"]

# Plain TOML values: what a file may hold where a setting is expected.
SCALARS = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["int", "float", "fraction", "shift", "zero", "subtract", "nir", "netx", "per-layer"]),
)
TOML_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def clear(call: Callable[[], Any], *names: str | Path) -> Any:
    """``call()``'s result, or None if it raised a one-line ``ValueError`` naming each of ``names``;
    any other exception fails the test."""
    try:
        return call()
    except ValueError as err:
        message = str(err)
        assert "\n" not in message.strip(), message
        for name in names:
            assert str(name) in message, message
        return None


def mutate_bytes(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    """``data`` cut to ``cut`` bytes (none if ``cut`` is past the end) with bit ``b`` of byte ``i``
    flipped for each ``(i, b)`` in ``flips`` (``i`` taken modulo the length)."""
    out = bytearray(data[:cut])
    for i, bit in flips:
        if out:
            out[i % len(out)] ^= 1 << bit
    return bytes(out)


CUTS = st.integers(min_value=0, max_value=2**20)
FLIPS = st.lists(st.tuples(st.integers(min_value=0, max_value=2**20), st.integers(0, 7)), max_size=8)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One folder for the files every example writes (hypothesis reuses a test's fixtures)."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained run (its checkpoint and config)."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", *TRAIN, "--out", str(out)]) == 0
    return out


def linear_network(n: int = 30) -> Any:
    """A small network NIR and the hardware targets can hold (linear encoder, no feedback)."""
    maelstrom = MaelstromConfig(n_neurons=n, seed=0)
    return build_network(NetworkConfig((2, 3), 3, maelstrom, encoder="linear", feedback=False, readout="linear")).eval()


# --- NIR ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nir_file(tmp_path_factory) -> Path:
    return save_nir(linear_network(), tmp_path_factory.mktemp("nir") / "net.nir")


@FUZZ
@given(data=st.binary(max_size=4096))
def test_nir_random_bytes(scratch, data):
    path = scratch / "random.nir"
    path.write_bytes(data)
    clear(lambda: load_nir(path), path)


@FUZZ
@given(cut=CUTS, flips=FLIPS)
def test_nir_truncated_or_flipped(scratch, nir_file, cut, flips):
    path = scratch / "flipped.nir"
    path.write_bytes(mutate_bytes(nir_file.read_bytes(), cut, flips))
    clear(lambda: load_nir(path), path)


def _datasets(path: Path) -> list[str]:
    with h5py.File(path, "r") as f:
        names: list[str] = []
        f.visit(names.append)
    return sorted(names)


ARRAYS = st.one_of(
    st.builds(
        lambda shape, dtype, fill: np.full(shape, fill).astype(dtype),
        st.lists(st.integers(0, 4), max_size=3).map(tuple),
        st.sampled_from(["float32", "float64", "int64", "int8", "bool", "complex64"]),
        st.floats(allow_nan=True, width=32) | st.integers(-3, 3),
    ),
    st.text(st.characters(exclude_characters="\x00"), max_size=8),  # HDF5 cannot store a NUL in a string
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["delete", "replace"]), ARRAYS), max_size=4))
def test_nir_mutated_hdf5(scratch, nir_file, edits):
    """A valid HDF5 file from a real export with groups and arrays deleted or replaced by others of
    random shape and type."""
    path = scratch / "mutated.nir"
    path.write_bytes(nir_file.read_bytes())
    with h5py.File(path, "r+") as f:
        for index, action, value in edits:
            names: list[str] = []
            f.visit(names.append)
            if not names:
                break
            name = sorted(names)[index % len(names)]
            del f[name]
            if action == "replace":
                f[name] = value
    clear(lambda: load_nir(path), path)


# --- hardware targets ---------------------------------------------------------------------------


def shipped_targets() -> list[dict[str, Any]]:
    return [tomllib.loads(HARDWARE_DIR.joinpath(f"{n}.toml").read_text()) for n in available_targets()]


TARGET_KEYS = ["name", "title", "formats", "notes", "reset", "weight", "decay", "threshold", "state", "limits"]
TABLE_KEYS = ["kind", "bits", "scaling", "shift_min", "shift_max", "per_layer", "current_bits", "voltage_bits"]
TABLE_KEYS += ["inputs", "hidden", "outputs", "fan_in", "fan_out", "input_targets", "readout_sources", "recurrent"]
KEYS = st.sampled_from(TARGET_KEYS + TABLE_KEYS) | st.text(min_size=1, max_size=6)
NUMBERS = st.sampled_from([0, 1, -1, 7, 8, 16, 64, 65, 2**31, 2**62, -(2**62), 10**18]) | st.integers(-100, 100)


def mutate_tree(tree: dict[str, Any], edits: list[tuple[list[str], str, Any]]) -> dict[str, Any]:
    """``tree`` with each edit applied: at the path, the key deleted or set to the value (a path
    into a non-table stops where it is)."""
    tree = {k: dict(v) if isinstance(v, dict) else v for k, v in tree.items()}
    for path, action, value in edits:
        node = tree
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                break
            node = node[part]
        if action == "delete":
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return tree


EDITS = st.lists(
    st.tuples(st.lists(KEYS, min_size=1, max_size=2), st.sampled_from(["delete", "set"]), TOML_VALUES | NUMBERS),
    max_size=5,
)


@FUZZ
@given(text=st.text(max_size=400))
@example(text='name = "x"\ntitle = "x"\nformats = 3\n[weight]\nkind = "float"\n[decay]\nkind = "float"\n[threshold]')
def test_target_random_text(scratch, text):
    path = scratch / "random.toml"
    path.write_text(text, encoding="utf-8")
    clear(lambda: load_target(path), path)


@pytest.fixture(scope="module")
def small_network() -> Any:
    return linear_network()


@FUZZ
@given(base=st.sampled_from(shipped_targets()), edits=EDITS)
def test_target_mutated_tree(scratch, small_network, base, edits):
    """A shipped target with keys deleted, set to values of any type or size, or added; a target
    that loads must quantise a small network or refuse it with an ``ExportError``."""
    path = scratch / "mutated.toml"
    path.write_text(tomli_w.dumps(mutate_tree(base, edits)), encoding="utf-8")
    target = clear(lambda: load_target(path), path)
    if target is not None:
        clear(lambda: quantize(small_network, target, strict=False))


# --- run configs ---------------------------------------------------------------------------------

SETTING_PATHS = st.sampled_from(sorted(LEAVES)).map(lambda key: key.split("."))
CONFIG_EDITS = st.lists(
    st.tuples(SETTING_PATHS | st.lists(KEYS, min_size=1, max_size=3), st.just("set"), TOML_VALUES | NUMBERS),
    max_size=6,
)


def nested(edits: list[tuple[list[str], str, Any]]) -> dict[str, Any]:
    """A tree with each edit's value at its path (a later edit through an earlier leaf replaces it)."""
    tree: dict[str, Any] = {}
    for path, _, value in edits:
        node = tree
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return tree


@FUZZ
@given(edits=CONFIG_EDITS)
def test_config_random_tree(scratch, edits):
    path = scratch / "run.toml"
    path.write_text(tomli_w.dumps(nested(edits)), encoding="utf-8")
    tree = clear(lambda: read_config(path), path)
    if tree is not None:
        clear(lambda: layered(tree, {}))
        clear(lambda: checked(tree))


@FUZZ
@given(text=st.text(max_size=400))
def test_config_random_text(scratch, text):
    path = scratch / "random-run.toml"
    path.write_text(text, encoding="utf-8")
    clear(lambda: read_config(path), path)


# --- checkpoints --------------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=4096))
def test_checkpoint_random_bytes(scratch, data):
    path = scratch / "random.pt"
    path.write_bytes(data)
    clear(lambda: load_checkpoint(path), path)


@FUZZ
@given(cut=CUTS, flips=FLIPS)
def test_checkpoint_truncated_or_flipped(scratch, run, cut, flips):
    path = scratch / "flipped.pt"
    path.write_bytes(mutate_bytes((run / "checkpoint.pt").read_bytes(), cut, flips))
    clear(lambda: load_network(path), path)


PAYLOAD_KEYS = ["network_config", "train_config", "task", "model", "live_model", "epoch", "history"]
PAYLOAD_KEYS += ["maelstrom", "name", "options", "batch_size", "n_neurons", "input_shape", "n_classes", "features"]
PAYLOAD_KEYS += ["encoder", "readout", "readout.weight", "maelstrom.weight", "encoder.out.weight", "trace_tau"]
TENSORS = st.builds(
    lambda shape, dtype: torch.zeros(shape, dtype=dtype),
    st.lists(st.integers(0, 4), max_size=3).map(tuple),
    st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool]),
)
PAYLOAD_EDITS = st.lists(
    st.tuples(
        st.lists(st.sampled_from(PAYLOAD_KEYS) | st.text(max_size=4), min_size=1, max_size=3),
        st.sampled_from(["delete", "set"]),
        TOML_VALUES | TENSORS | st.none(),
    ),
    min_size=1,
    max_size=4,
)


def mutated_checkpoint(real: Path, path: Path, edits: list[tuple[list[str], str, Any]]) -> Path:
    """``real``'s payload with ``edits`` (``mutate_tree`` one level deeper), saved at ``path``."""
    payload = torch.load(real, weights_only=True)
    payload = {k: mutate_tree(v, []) if isinstance(v, dict) else v for k, v in payload.items()}
    torch.save(mutate_tree(payload, edits), path)
    return path


@FUZZ
@given(edits=PAYLOAD_EDITS)
def test_checkpoint_mutated_payload(scratch, run, edits):
    """The right format key with inner keys missing or of the wrong type or shape."""
    path = mutated_checkpoint(run / "checkpoint.pt", scratch / "mutated.pt", edits)
    clear(lambda: load_network(path), path)


@settings(FUZZ, max_examples=max(EXAMPLES // 5, 5))
@given(edits=PAYLOAD_EDITS, command=st.sampled_from(["evaluate", "export"]))
def test_cli_on_mutated_checkpoint(scratch, run, edits, command):
    """``maelstrom evaluate`` and ``export`` on a mutated run: success or exit 2 with one line."""
    folder = scratch / "cli-run"
    folder.mkdir(exist_ok=True)
    mutated_checkpoint(run / "checkpoint.pt", folder / "checkpoint.pt", edits)
    extra = ["--format", "nir", "--target", "float", "-o", str(scratch / "cli.nir")] if command == "export" else []
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main([command, str(folder), *extra])
    err = stderr.getvalue()
    assert code in (0, 2), err
    if code == 2:
        assert err.count("\n") == 1 and "Traceback" not in err, err


# --- saved folds --------------------------------------------------------------------------------

FOLDS = st.lists(
    st.dictionaries(
        st.sampled_from(["indices", "labels", "scores"]) | st.text(max_size=3),
        TOML_VALUES | TENSORS | st.none(),
        max_size=4,
    ),
    max_size=3,
)


@FUZZ
@given(folds=FOLDS | TOML_VALUES)
def test_fold_scores_mutated(scratch, folds):
    path = scratch / "cv_scores.pt"
    torch.save({"format": CV_SCORES_FORMAT, "folds": folds}, path)
    loaded = clear(lambda: load_fold_scores(path), path)
    if loaded is not None:
        clear(lambda: ensemble_folds({"a": loaded, "b": loaded}))


@FUZZ
@given(data=st.binary(max_size=4096))
def test_fold_scores_random_bytes(scratch, data):
    path = scratch / "cv_scores.pt"
    path.write_bytes(data)
    clear(lambda: load_fold_scores(path), path)


# --- what the fuzzers found: each failed on main before its fix -------------------------------------


def _target_file(path: Path, **changes: Any) -> Path:
    data = tomllib.loads(HARDWARE_DIR.joinpath("xylo-audio2.toml").read_text())
    for key, value in changes.items():
        table, _, leaf = key.rpartition("__")
        (data[table] if table else data)[leaf] = value
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"weight__bits": 10**18}, "weight.bits"),  # 2 ** bits in quantize: a hang
        ({"decay__shift_max": -1}, "decay.shift_max"),
        ({"limits__hidden": "many"}, "limits.hidden"),
        ({"limits__recurrent": 1}, "limits.recurrent"),
        ({"weight": "int8"}, "weight must be a table"),  # dict("int8"): ValueError with no file
        ({"formats": 3}, "formats"),  # tuple(3): TypeError
        ({"name": 7}, "name"),
        ({"wieght": {}}, "unknown key 'wieght'"),
        ({"decay__kind": "fraction"}, "decay.bits is needed"),  # KeyError in quantize
        ({"spike__compare": "<"}, "spike.compare"),
        ({"spike__max_per_step": 0}, "spike.max_per_step"),
        ({"state__order": "sideways"}, "state.order"),
    ],
)
def test_target_schema_errors_name_the_key_and_the_file(tmp_path, changes, named):
    path = _target_file(tmp_path / "t.toml", **changes)
    with pytest.raises(ValueError, match="hardware target file") as err:
        load_target(path)
    assert named in str(err.value) and str(path) in str(err.value)


def test_every_shipped_target_fits_the_schema():
    assert all(load_target(name).name == name for name in available_targets())


def test_target_file_that_is_not_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "t.toml"
    path.write_bytes(b"name = '\xff'")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_target(path)


def _payload(run: Path, edits: list[tuple[list[str], str, Any]]) -> dict[str, Any]:
    return torch.load(mutated_checkpoint(run / "checkpoint.pt", run.parent / "edited.pt", edits), weights_only=True)


@pytest.mark.parametrize(
    ("edits", "named"),
    [
        ([(["network_config"], "delete", None)], "'network_config'"),  # KeyError
        ([(["task", "name"], "set", 3)], "'task.name'"),
        ([(["train_config", "batch_size"], "delete", None)], "'train_config.batch_size'"),  # KeyError in evaluate
        ([(["model", "readout.1.weight"], "set", torch.zeros(2, 2))], "readout.1.weight"),  # RuntimeError, many lines
        ([(["model", "readout.1.bias"], "delete", None)], "readout.1.bias"),
        ([(["network_config", "encoder"], "set", 5)], "network_config"),
        ([(["network_config", "colour"], "set", "red")], "network_config"),  # TypeError
        ([(["network_config", "maelstrom", "n_neurons"], "set", 3000)], "n_neurons"),  # drew and eigen-decomposed 3,000
        ([(["live_model"], "set", "weights")], "'live_model'"),
    ],
)
def test_checkpoint_payload_errors_are_one_line_naming_the_file(run, edits, named):
    payload = _payload(run, edits)
    path = run.parent / "edited.pt"
    for call in (lambda: load_network(path), lambda: load_network(payload, source=path)):
        with pytest.raises(ValueError) as err:
            call()
        assert "\n" not in str(err.value) and str(path) in str(err.value) and named in str(err.value), err.value


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_cli_on_a_checkpoint_lacking_a_key_is_a_one_line_error(run, tmp_path, capsys, command):
    folder = tmp_path / "run"
    folder.mkdir()
    mutated_checkpoint(run / "checkpoint.pt", folder / "checkpoint.pt", [(["task"], "delete", None)])
    extra = ["--format", "nir", "--target", "float", "-o", str(tmp_path / "x.nir")] if command == "export" else []
    assert main([command, str(folder), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lacks the key 'task'" in err, err


@pytest.mark.parametrize(
    ("folds", "named"),
    [
        (None, "'folds' must be a non-empty list"),  # KeyError / None returned
        ([{"indices": [0], "labels": torch.tensor([1])}], "fold 0 must hold"),
        ([{"indices": [0, 1], "labels": torch.tensor([1]), "scores": torch.zeros(2, 3)}], "labels"),
        ([{"indices": [0], "labels": torch.tensor([1]), "scores": torch.zeros(1)}], "scores"),  # argmax on 1-D
        ([{"indices": "0", "labels": torch.tensor([1]), "scores": torch.zeros(1, 3)}], "indices"),
    ],
)
def test_fold_scores_errors_name_the_file_and_the_fold(tmp_path, folds, named):
    path = tmp_path / "cv_scores.pt"
    torch.save({"format": CV_SCORES_FORMAT, **({} if folds is None else {"folds": folds})}, path)
    with pytest.raises(ValueError, match=named) as err:
        load_fold_scores(path)
    assert str(path) in str(err.value)


def test_nir_graph_that_does_not_rebuild_names_the_file(scratch, nir_file):
    path = scratch / "no-dt.nir"
    path.write_bytes(nir_file.read_bytes())
    with h5py.File(path, "r+") as f:
        del f["node/metadata/dt"]
        f["node/metadata/dt"] = np.zeros(2)  # float() of an array: TypeError
    with pytest.raises(ValueError, match="does not rebuild a network") as err:
        load_nir(path)
    assert str(path) in str(err.value)


def test_target_unknown_key_with_a_newline_stays_on_one_line(tmp_path):
    path = _target_file(tmp_path / "t.toml", **{"weight__a\nb": 1})
    with pytest.raises(ValueError, match=r"unknown key 'weight.a\\nb'"):
        load_target(path)
