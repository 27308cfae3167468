"""One verbosity switch for the whole package: progress bars and progress lines, on by default.

Every long loop draws its bar with ``bar`` and reports with ``note``; ``verbosity(False)`` silences
both for a block (the command line's ``--quiet``), ``set_verbose`` for the rest of the process. No
function takes a ``progress`` argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from tqdm.auto import tqdm

_VERBOSE: ContextVar[bool] = ContextVar("spiking_maelstrom_verbose", default=True)


def verbose() -> bool:
    """Whether bars and progress lines are shown."""
    return _VERBOSE.get()


def set_verbose(on: bool) -> None:
    """Show (or hide) bars and progress lines from now on."""
    _VERBOSE.set(on)


@contextmanager
def verbosity(on: bool) -> Iterator[None]:
    """Show (or hide) bars and progress lines inside the block."""
    token = _VERBOSE.set(on)
    try:
        yield
    finally:
        _VERBOSE.reset(token)


def bar(iterable: Iterable[Any] | None = None, **options: Any) -> tqdm:
    """A tqdm bar, drawn only when verbose and on a terminal."""
    return tqdm(iterable, disable=None if verbose() else True, dynamic_ncols=True, **options)


def note(line: str) -> None:
    """Print a progress line (between bars), when verbose."""
    if verbose():
        tqdm.write(line)
