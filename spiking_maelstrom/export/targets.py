"""Hardware targets as data: one TOML file per chip in the package data ``spiking_maelstrom/hardware/``,
each value cited there. A target says how weights, decays and thresholds are represented and which
limits an export must respect."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

HARDWARE_DIR = files("spiking_maelstrom.hardware")
DECAY_KINDS = ("fraction", "shift", "float")
RESETS = ("zero", "subtract")
COMPARES = (">", ">=")
ORDERS = ("decay-add", "add-decay")


@dataclass(frozen=True)
class Target:
    """What a chip (or a format) can represent. ``weight``, ``decay``, ``threshold``, ``state``,
    ``spike`` and ``limits`` are the TOML tables of the same names (see
    ``spiking_maelstrom/hardware/README.md``)."""

    name: str
    title: str
    formats: tuple[str, ...]
    weight: dict[str, Any]
    decay: dict[str, Any]
    threshold: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    spike: dict[str, Any] = field(default_factory=dict)
    reset: str = "zero"
    notes: str = ""

    @property
    def integer(self) -> bool:
        return self.weight["kind"] == "int"

    @property
    def compare(self) -> str:
        """How the membrane meets the threshold to fire: ``">"`` (the default) or ``">="``."""
        return self.spike.get("compare", ">")

    @property
    def max_spikes(self) -> int:
        """Spikes a neuron may fire in one step (default 1), each one taking a threshold off ``v``."""
        return int(self.spike.get("max_per_step", 1))

    @property
    def max_input_spikes(self) -> int | None:
        """Spikes an input channel can deliver in one step (the excess is dropped), or None: no limit."""
        return self.spike.get("input_max_per_step")

    @property
    def order(self) -> str:
        """``"decay-add"`` (default): ``i <- decay(i) + input``; ``"add-decay"``: ``i <- decay(i + input)``."""
        return self.state.get("order", "decay-add")


def available_targets() -> list[str]:
    """Names of the targets shipped in ``spiking_maelstrom/hardware/``."""
    return sorted(p.name.removesuffix(".toml") for p in HARDWARE_DIR.iterdir() if p.name.endswith(".toml"))


def _target_file(name_or_path: str | Path) -> Traversable:
    """The TOML file of a shipped target by name, or the given ``.toml`` path as it is."""
    if Path(name_or_path).suffix == ".toml":
        return Path(name_or_path)
    shipped = HARDWARE_DIR.joinpath(f"{name_or_path}.toml")
    if not shipped.is_file():
        known = ", ".join(available_targets()) or f"none found in {HARDWARE_DIR}"
        raise ValueError(f"unknown hardware target {str(name_or_path)!r}: choose one of {known}, or give a .toml path")
    return shipped


def load_target(name_or_path: str | Path) -> Target:
    """A target by name (a file in ``spiking_maelstrom/hardware/``) or by the path of a TOML file."""
    path = _target_file(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"hardware target file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"hardware target file {path} is not valid TOML: {err}") from err
    try:
        target = Target(
            name=data["name"],
            title=data["title"],
            formats=tuple(data["formats"]),
            weight=dict(data["weight"]),
            decay=dict(data["decay"]),
            threshold=dict(data["threshold"]),
            state=dict(data.get("state", {})),
            limits=dict(data.get("limits", {})),
            spike=dict(data.get("spike", {})),
            reset=data.get("reset", "zero"),
            notes=data.get("notes", ""),
        )
    except KeyError as err:
        raise ValueError(f"hardware target file {path} lacks the key {err.args[0]!r}") from err
    problems = []
    if target.weight.get("kind") not in ("int", "float"):
        problems.append("weight.kind must be 'int' or 'float'")
    if target.integer and "bits" not in target.weight:
        problems.append("weight.bits is needed for integer weights")
    if target.decay.get("kind") not in DECAY_KINDS:
        problems.append(f"decay.kind must be one of {DECAY_KINDS}")
    if target.reset not in RESETS:
        problems.append(f"reset must be one of {RESETS}")
    if target.compare not in COMPARES:
        problems.append(f"spike.compare must be one of {COMPARES}")
    if not (isinstance(target.spike.get("max_per_step", 1), int) and target.max_spikes >= 1):
        problems.append("spike.max_per_step must be an integer >= 1")
    clip = target.spike.get("input_max_per_step", 1)
    if not (isinstance(clip, int) and clip >= 1):
        problems.append("spike.input_max_per_step must be an integer >= 1")
    if target.order not in ORDERS:
        problems.append(f"state.order must be one of {ORDERS}")
    if problems:
        raise ValueError(f"hardware target file {path}: " + "; ".join(problems))
    return target
