"""Runs as files: one run configuration (task + network + training + cross-validation), read from
TOML, overridden from the command line with the same names, and written back resolved and complete
so that ``maelstrom train --config RUN/config.toml`` reproduces the run.

Layers, later winning: the dataclasses' defaults, the task's own (``Task.network_defaults`` /
``train_defaults``: its shapes and encoder), the data set's default recipe (``DEFAULT_RECIPES``: its
best single-network settings), the ``--config`` file, the command line. TOML because the Python
standard library reads it (``tomllib``: plain data, no code path) and the hardware targets and
``pyproject.toml`` use it; it has no null, so an unset optional setting is left out of the file
(the file's header names them).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import tomli_w

from ._version import __version__
from .data import TASKS, Task, load_task, task_settings
from .maelstrom import MaelstromConfig
from .network import NetworkConfig, network_config_for
from .settings import MISSING, Setting, coerce, flatten, merge, nest, settings_of
from .trainer import TrainConfig

# Set from the task (shapes, step) and from the run's one seed, never on their own.
DERIVED = frozenset(
    {"network.input_shape", "network.n_classes", "network.seed", "network.maelstrom.seed", "network.maelstrom.dt"}
    | {"train.seed"}
)
# Each recorded data set's best single network (recipes/, docs/RESULTS.md): what a first run gets.
DEFAULT_RECIPES = {"nmnist": "nmnist-local", "shd": "fsdd-dfa", "shd-pairs": "fsdd-pairs"}
RECIPE_SUFFIX = ".toml"


@dataclass
class CVConfig:
    """K-fold cross-validation of the run's settings on its training files, after the run itself."""

    folds: Annotated[int, "K-fold cross-validation: K more trainings on the training files (0: none)"] = 0
    group_by: Annotated[
        str | None, "folds hold out whole groups, e.g. speaker (SHD layout): accuracy on voices never trained on"
    ] = None
    members: Annotated[int, "cross-validate an ensemble of M networks per fold (seeds S to S+M-1; needs folds)"] = 1

    def __post_init__(self) -> None:
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"folds must be 0 (none) or at least 2, got {self.folds}")
        if self.group_by is not None and not self.folds:
            raise ValueError("cv.group_by needs cv.folds (with cv.folds 0, give cv.group_by none)")
        if self.members < 1 or (self.members > 1 and not self.folds):
            raise ValueError(f"members {self.members}: give a count >= 1, and more than 1 only with folds")


@dataclass
class TaskConfig:
    """The data: a task ``name`` (one of ``data.TASKS``) and its typed ``options`` (the builder's
    keyword parameters, ``data.task_settings``; in a file, beside ``name`` in ``[task]``)."""

    name: str = "randman"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ValueError(f"unknown dataset {self.name!r}: choose one of {', '.join(TASKS)}")
        known = {s.key: s for s in task_settings(self.name)}
        if unknown := sorted(set(self.options) - set(known)):
            raise ValueError(f"unknown option(s) for {self.name}: {unknown}; known: {sorted(known)}")
        self.options = {k: coerce(v, known[k].type, f"task.{k}") for k, v in self.options.items()}
        data_dir = self.options.get("data_dir")
        if data_dir is not None and not Path(data_dir).is_dir():
            raise ValueError(f"task.data_dir {data_dir} is not a directory")

    def load(self) -> Task:
        options = dict(self.options)
        return load_task(self.name, options.pop("data_dir", None), **options)


@dataclass
class RunConfig:
    """A whole run. ``seed`` seeds everything (maelstrom, initial weights, batch order, folds);
    ``device`` is auto, cpu, cuda or cuda:N."""

    task: TaskConfig
    network: NetworkConfig
    train: TrainConfig
    cv: CVConfig = field(default_factory=CVConfig)
    seed: Annotated[int, "seed of the maelstrom, initial weights, shuffling and folds"] = 0
    device: Annotated[str, "auto, cpu, cuda or cuda:N"] = "auto"

    def __post_init__(self) -> None:
        self.train.check_readout(self.network.readout)
        seeds = {self.network.seed, self.network.maelstrom.seed, self.train.seed}
        if seeds != {self.seed}:
            raise ValueError(f"the run's seed {self.seed} must seed the network, maelstrom and training, got {seeds}")

    def to_toml(self) -> str:
        """The resolved config as TOML, a valid ``--config`` input; unset (None) settings are named in
        the header and left out (TOML has no null)."""
        tree = config_tree(self)
        unset = [k for k, v in flatten(tree, LEAVES).items() if v is None]
        header = f"# Resolved run config (spiking-maelstrom {__version__}): maelstrom train --config FILE reruns it.\n"
        if unset:
            header += f"# Unset: {', '.join(unset)}.\n"
        return header + "\n" + tomli_w.dumps(_without_none(tree))


def _without_none(tree: dict[str, Any]) -> dict[str, Any]:
    return {k: _without_none(v) if isinstance(v, dict) else v for k, v in tree.items() if v is not None}


def config_tree(run: RunConfig) -> dict[str, Any]:
    """The run as nested plain data under the settings' keys (``DERIVED`` keys left out)."""
    flat = {
        "seed": run.seed,
        "device": run.device,
        "task.name": run.task.name,
        **{f"task.{k}": _plain(v) for k, v in run.task.options.items()},
        **{f"cv.{k}": v for k, v in asdict(run.cv).items()},
        **flatten({"network": asdict(run.network), "train": asdict(run.train)}, LEAVES),
    }
    return nest({k: _plain(v) for k, v in flat.items() if k not in DERIVED})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def run_settings() -> list[Setting]:
    """Every settable key of a run, task options of every task included (``task.shift``, ...)."""
    top = list(settings_of(RunConfig, skip=frozenset({"task", "network", "train", "cv"})))
    return [
        *top,
        Setting("task.name", str, TaskConfig.name, f"task: {', '.join(TASKS)}"),
        *_task_option_settings(),
        *settings_of(NetworkConfig, "network.", DERIVED),
        *settings_of(TrainConfig, "train.", DERIVED),
        *settings_of(CVConfig, "cv."),
    ]


def _task_option_settings() -> list[Setting]:
    """One setting per task option name, with each task's default in its help."""
    users: dict[str, list[Setting]] = {}
    for name in TASKS:
        for s in task_settings(name):
            users.setdefault(s.key, []).append(replace(s, help=name))
    return [
        Setting(f"task.{key}", same[0].type, MISSING, "option of " + ", ".join(f"{s.help} ({s.default})" for s in same))
        for key, same in users.items()
    ]


LEAVES = {s.key for s in run_settings()}


def read_config(path: str | Path) -> dict[str, Any]:
    """A config file (or a recipe's name, e.g. ``nmnist-local``) as nested data, its keys checked."""
    path = recipe_path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"config {path} is not readable TOML ({err})") from None
    if unknown := sorted(set(flatten(data, LEAVES)) - LEAVES):
        raise ValueError(f"config {path}: unknown setting(s) {unknown}")
    return data


def recipe_path(name_or_path: str | Path) -> Path:
    """``name_or_path`` itself if it is a file, else the packaged recipe of that name."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix:
        if not path.is_file():
            raise ValueError(f"config {path} does not exist")
        return path
    recipe = resources.files("spiking_maelstrom") / "recipes" / f"{name_or_path}{RECIPE_SUFFIX}"
    if not recipe.is_file():
        raise ValueError(f"no config file {path} and no recipe of that name (recipes: {', '.join(recipes())})")
    return Path(str(recipe))


def recipes() -> list[str]:
    """The names of the packaged recipes."""
    folder = resources.files("spiking_maelstrom") / "recipes"
    return sorted(p.name.removesuffix(RECIPE_SUFFIX) for p in folder.iterdir() if p.name.endswith(RECIPE_SUFFIX))


def checked(tree: dict[str, Any]) -> dict[str, Any]:
    """``tree`` with every leaf coerced to its setting's type (a one-line error naming the key)."""
    types = {s.key: s.type for s in run_settings()}
    flat = flatten(tree, LEAVES)
    if unknown := sorted(set(flat) - set(types)):
        raise ValueError(f"unknown setting(s) {unknown}")
    return nest({k: coerce(v, types[k], k) for k, v in flat.items()})


def layered(
    config: dict[str, Any] | None, given: dict[str, Any], implied: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The run's settings: the ``given`` ones (command line) over those a command ``implied`` (e.g. a
    continual strategy's readout), over the ``config`` file's, or, without a file, over the named data
    set's default recipe (``DEFAULT_RECIPES``); each leaf type-checked."""
    if config is None:
        name = given.get("task", {}).get("name", TaskConfig.name)
        config = read_config(DEFAULT_RECIPES[name]) if name in DEFAULT_RECIPES else {}
    return checked(merge(merge(config, implied or {}), given))


def resolve(tree: dict[str, Any]) -> tuple[RunConfig, Task]:
    """Build and validate the run that ``tree`` (from ``layered``) describes, and load its task;
    all that can be checked without the data is checked before it is read."""
    seed = tree.get("seed", RunConfig.seed)
    network = dict(tree.get("network", {}))
    maelstrom = {**network.pop("maelstrom", {}), "seed": seed}
    TrainConfig(**tree.get("train", {})).check_readout(network.get("readout", NetworkConfig.readout))
    MaelstromConfig(**maelstrom)
    cv = CVConfig(**tree.get("cv", {}))
    options = dict(tree.get("task", {}))
    task = TaskConfig(options.pop("name", TaskConfig.name), options).load()
    run = RunConfig(
        task=TaskConfig(task.name, dict(task.options)),
        network=network_config_for(task, maelstrom, **network, seed=seed),
        train=TrainConfig(**{**task.train_defaults, **tree.get("train", {}), "seed": seed}),
        cv=cv,
        seed=seed,
        device=tree.get("device", RunConfig.device),
    )
    return run, task


def run_of_checkpoint(payload: dict[str, Any], cv: CVConfig, device: str, source: str | Path) -> RunConfig:
    """The run a checkpoint was trained with (for ``--resume``), with ``cv`` and ``device`` as given now."""
    try:
        train = TrainConfig(**payload["train_config"])
    except TypeError as err:  # an unknown or missing key: not a config this version wrote
        raise ValueError(f"{source}: its train_config is not one this version reads ({err})") from None
    known = {s.key for s in task_settings(payload["task"]["name"])}
    options = {k: v for k, v in payload["task"]["options"].items() if k in known}
    return RunConfig(
        task=TaskConfig(payload["task"]["name"], options),
        network=NetworkConfig.from_dict(payload["network_config"]),
        train=train,
        cv=cv,
        seed=train.seed,
        device=device,
    )
