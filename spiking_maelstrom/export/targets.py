"""Hardware targets as data: one TOML file per chip in the project's ``hardware/`` folder, each
value cited there. A target says how weights, decays and thresholds are represented and which
limits an export must respect."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HARDWARE_DIR = Path(__file__).resolve().parents[2] / "hardware"
DECAY_KINDS = ("fraction", "shift", "float")
RESETS = ("zero", "subtract")


@dataclass(frozen=True)
class Target:
    """What a chip (or a format) can represent. ``weight``, ``decay``, ``threshold``, ``state`` and
    ``limits`` are the TOML tables of the same names (see ``hardware/README.md``)."""

    name: str
    title: str
    formats: tuple[str, ...]
    weight: dict[str, Any]
    decay: dict[str, Any]
    threshold: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    reset: str = "zero"
    notes: str = ""

    @property
    def integer(self) -> bool:
        return self.weight["kind"] == "int"


def available_targets() -> list[str]:
    """Names of the targets in ``hardware/``."""
    return sorted(p.stem for p in HARDWARE_DIR.glob("*.toml"))


def load_target(name_or_path: str | Path) -> Target:
    """A target by name (a file in ``hardware/``) or by the path of a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = HARDWARE_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(available_targets()) or f"none found in {HARDWARE_DIR}"
            raise ValueError(
                f"unknown hardware target {str(name_or_path)!r}: choose one of {known}, or give a .toml path"
            )
    if not path.is_file():
        raise FileNotFoundError(f"hardware target file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
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
    if problems:
        raise ValueError(f"hardware target file {path}: " + "; ".join(problems))
    return target
