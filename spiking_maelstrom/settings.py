"""Settings from dataclasses: every field of a config dataclass as a dotted key (``train.epochs``),
typed from its annotation, documented by its ``Annotated`` help string, settable from a TOML table
and from the command line with the same name.

A small generic layer, so that adding a setting is one field in one dataclass: nothing here names
a field. Values are checked against the annotation (``coerce``); what a value means is checked
by the dataclass's own ``__post_init__``.
"""

from __future__ import annotations

import argparse
import json
import types
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

NONE_WORDS = ("none", "null")
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


@dataclass(frozen=True)
class Setting:
    """One settable leaf: its dotted ``key``, ``type`` (annotation without ``Annotated``), ``default``
    (``MISSING`` if none) and ``help``."""

    key: str
    type: Any
    default: Any
    help: str


def _unannotated(annotation: Any) -> tuple[Any, str]:
    if get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        return base, next((e for e in extras if isinstance(e, str)), "")
    return annotation, ""


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def settings_of(cls: type, prefix: str = "", skip: frozenset[str] = frozenset()) -> Iterator[Setting]:
    """The leaves of dataclass ``cls`` (nested dataclass fields recursed into), less the keys in ``skip``."""
    hints = get_type_hints(cls, include_extras=True)
    for f in fields(cls):
        key = f"{prefix}{f.name}"
        if key in skip:
            continue
        annotation, text = _unannotated(hints[f.name])
        if is_dataclass(annotation):
            yield from settings_of(annotation, f"{key}.", skip)
        else:
            yield Setting(key, annotation, _default(f), text)


def type_name(tp: Any) -> str:
    """A short human name for an annotation: ``float``, ``int or none``, ``list of str``, ..."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join("none" if a is type(None) else type_name(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        return f"{len(args)} x {type_name(args[0])}"
    if origin is dict:
        return "table"
    return "path" if tp is Path else getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` (from TOML, or a command-line string or list of strings) as annotation ``tp``;
    a ``ValueError`` naming ``key`` if it is not one."""
    try:
        return _coerce(value, tp)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{key}: expected {type_name(tp)}, got {value!r}") from err


def _coerce(value: Any, tp: Any) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in NONE_WORDS)):
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option)
            except (TypeError, ValueError):
                continue
        raise ValueError(value)
    if origin is tuple:
        items = json.loads(value) if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise TypeError(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in items)
        if len(items) != len(args):
            raise ValueError(value)
        return tuple(_coerce(v, a) for v, a in zip(items, args, strict=True))
    if origin is dict:
        table = json.loads(value) if isinstance(value, str) else value
        if not isinstance(table, dict):
            raise TypeError(value)
        return {str(k): _coerce(v, args[1]) for k, v in table.items()}
    return _scalar(value, tp)


def _scalar(value: Any, tp: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE_WORDS + FALSE_WORDS:
            return value.lower() in TRUE_WORDS
        raise ValueError(value)
    if isinstance(value, bool):
        raise TypeError(value)
    if tp is int:
        if isinstance(value, float):
            raise TypeError(value)
        return int(value)
    if tp is float:
        return float(value)
    if tp in (str, Path):
        if not isinstance(value, str | Path):
            raise TypeError(value)
        return str(value)
    if tp is Any:
        return value
    raise TypeError(f"unsupported setting type {tp}")


def _nargs(tp: Any) -> int | str | None:
    for candidate in (tp, *get_args(tp)):
        if get_origin(candidate) is tuple:
            args = get_args(candidate)
            return "+" if len(args) == 2 and args[1] is Ellipsis else len(args)
    return None


def add_settings(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    settings: list[Setting],
    aliases: dict[str, str] | None = None,
    defaults: dict[str, str] | None = None,
) -> None:
    """One option per setting, ``--key`` (also with dashes: ``--train.encoder-rule``) and any
    ``aliases`` (option -> key); values stay unparsed strings, absent ones stay absent (``vars``
    of the namespace holds only what was given). ``defaults`` replaces a key's default in the help."""
    aliases, defaults = aliases or {}, defaults or {}
    for s in settings:
        names = dict.fromkeys([f"--{s.key}", f"--{s.key.replace('_', '-')}"])
        names.update(dict.fromkeys(a for a, k in aliases.items() if k == s.key))
        shown = defaults.get(s.key, "none" if s.default is None else _shown(s.default))
        shown = "" if shown is None else f"; default: {shown}"
        parser.add_argument(
            *names,
            dest=s.key,
            nargs=_nargs(s.type),
            default=argparse.SUPPRESS,
            metavar=_metavar(s.type),
            help=f"{s.help} [{type_name(s.type)}{shown}]",
        )


def _metavar(tp: Any) -> str:
    """The value's kind for the usage line: the type, or its items' type, without ``none``."""
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) in (Union, types.UnionType):
        return _metavar(args[0])
    if get_origin(tp) is tuple:
        return _metavar(args[0])
    return type_name(tp).upper()


def _shown(value: Any) -> str | None:
    if value is MISSING:
        return None
    if isinstance(value, tuple | list):
        return " ".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def flatten(tree: dict[str, Any], leaves: set[str], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (the inverse of ``nest``); a table stays whole where
    its key is one of the settings' ``leaves`` (e.g. a dictionary-valued field)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and f"{prefix}{key}" not in leaves:
            flat.update(flatten(value, leaves, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Nested dictionaries merged key by key, later layers winning."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
    return out
