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
FORMATS = ("nir", "netx")
SCALINGS = ("per-layer", "per-channel")


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
    """A target by name (a file in ``spiking_maelstrom/hardware/``) or by the path of a TOML file;
    its keys, types and ranges checked (``check_target_data``), a one-line ``ValueError`` naming the file."""
    path = _target_file(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"hardware target file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"hardware target file {path} is not valid TOML: {err}") from err
    problems = check_target_data(data)
    if problems:
        raise ValueError(f"hardware target file {path}: " + "; ".join(problems))
    return Target(
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


# The schema (``spiking_maelstrom/hardware/README.md``): each table's keys and what their values may be.
BITS = range(1, 65)
SHIFT = range(0, 64)
SIZE = range(0, 2**63)
COUNT = range(0, 2**31)
SPIKES = range(1, 2**15)
TABLES: dict[str, dict[str, tuple[Any, ...] | range | type]] = {
    "weight": {"kind": ("int", "float"), "bits": BITS, "scaling": SCALINGS},
    "decay": {
        "kind": DECAY_KINDS,
        "bits": BITS,
        "shift_min": SHIFT,
        "shift_max": SHIFT,
        "per_layer": bool,
        "min_step": COUNT,
    },
    "threshold": {"kind": ("int", "float"), "bits": BITS},
    "state": {"current_bits": BITS, "voltage_bits": BITS, "order": ORDERS},
    "spike": {"compare": COMPARES, "max_per_step": SPIKES, "input_max_per_step": SPIKES},
    "limits": {
        **dict.fromkeys(("inputs", "hidden", "outputs", "fan_in", "fan_out", "input_targets", "readout_sources"), SIZE),
        "recurrent": bool,
    },
}
TOP: dict[str, tuple[Any, ...] | range | type] = {"name": str, "title": str, "notes": str, "reset": RESETS}
REQUIRED = ("name", "title", "formats", "weight", "decay", "threshold")


def _bad_value(value: Any, allowed: tuple[Any, ...] | range | type) -> str | None:
    """Why ``value`` is not one of ``allowed`` (a type, an integer range or a tuple of choices), or None."""
    if isinstance(allowed, type):
        return None if isinstance(value, allowed) else f"must be a {allowed.__name__}, got {value!r}"
    if isinstance(allowed, range):
        ok = isinstance(value, int) and not isinstance(value, bool) and value in allowed
        return None if ok else f"must be an integer in {allowed.start}..{allowed.stop - 1}, got {value!r}"
    return None if isinstance(value, str) and value in allowed else f"must be one of {allowed}, got {value!r}"


def check_target_data(data: dict[str, Any]) -> list[str]:
    """Every way the parsed TOML ``data`` breaks the target schema, each naming its key (empty if none)."""
    problems = [f"lacks the key {key!r}" for key in REQUIRED if key not in data]
    known = {*TOP, *TABLES, "formats"}
    problems += [f"unknown key {key!r}" for key in data if key not in known]
    formats = data.get("formats", [])
    if not isinstance(formats, list) or not formats or any(f not in FORMATS for f in formats):
        problems.append(f"formats must be a non-empty list of {FORMATS}, got {formats!r}")
    for key, allowed in TOP.items():
        if key in data and (why := _bad_value(data[key], allowed)):
            problems.append(f"{key} {why}")
    for name, schema in TABLES.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{name} must be a table, got {table!r}")
            continue
        problems += [f"unknown key {f'{name}.{key}'!r}" for key in table if key not in schema]
        problems += [f"{name}.{k} {why}" for k, v in table.items() if k in schema and (why := _bad_value(v, schema[k]))]
    return problems or _needed(data)


def _needed(data: dict[str, Any]) -> list[str]:
    """The keys a well-typed target still needs for its kinds (e.g. integer weights need bits)."""
    weight, decay = data["weight"], data["decay"]
    if "kind" not in weight or "kind" not in decay:
        return [f"{table}.kind is needed" for table in ("weight", "decay") if "kind" not in data[table]]
    needs = [("weight", "bits", weight["kind"] == "int"), ("decay", "bits", decay["kind"] == "fraction")]
    needs += [("decay", "shift_min", decay["kind"] == "shift"), ("decay", "shift_max", decay["kind"] == "shift")]
    problems = [f"{table}.{key} is needed" for table, key, need in needs if need and key not in data[table]]
    if not problems and decay["kind"] == "shift" and decay["shift_min"] > decay["shift_max"]:
        problems.append(f"decay.shift_min {decay['shift_min']} > decay.shift_max {decay['shift_max']}")
    return problems
