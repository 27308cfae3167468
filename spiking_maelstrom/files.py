"""Atomic file writes: checkpoints, caches, exports, JSON and plots never appear half-written.

A write goes to a temporary file beside its target, ``.NAME.HOST.PID.TOKEN.tmp``, renamed over the
target when complete. The temporary file is created with mode ``0o666`` less the umask, so written
files have the permissions of ordinary files. A writer killed before the rename leaves its temporary
file behind; the next write of the same target removes it once it is stale: when its writer (``PID``
on this ``HOST``) no longer runs, or, for one of another host (or from an older version, which named
them ``.NAME.XXXXXXXX.tmp``), when it has not been modified for ``STALE_SECONDS``. A live writer's
file is left alone.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

STALE_SECONDS = 3600
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
OLD_TEMP = re.compile(r"[a-z0-9_]{8}")  # what tempfile.mkstemp put between prefix and suffix


@contextmanager
def atomic_write(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path`` in one step.

    On any error the temporary file is removed and ``path`` is left as it was (an operating system
    error that names no file is raised naming ``path``); stale temporary files of ``path`` from killed
    writers are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path, suffix)
    tmp = path.with_name(f".{path.name}.{HOST}.{os.getpid()}.{secrets.token_hex(6)}{suffix}")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
    except OSError as err:  # name the target, not the temporary file
        raise type(err)(err.errno, err.strerror, str(path)) from None
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.errno is None or err.filename is not None:
            raise
        raise type(err)(err.errno, err.strerror, str(path)) from err  # e.g. a full disk: name what was written
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def remove_stale(path: Path, suffix: str = ".tmp") -> list[Path]:
    """Remove the stale temporary files of ``path`` (see the module's docstring); returns them."""
    prefix = f".{path.name}."
    removed = []
    with suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix):
                if _stale(name[len(prefix) : -len(suffix)], entry) and _unlink(Path(entry.path)):
                    removed.append(Path(entry.path))
    return removed


def _stale(middle: str, entry: os.DirEntry) -> bool:
    """Whether the temporary file ``entry`` (``middle`` between its target's prefix and the suffix) is stale."""
    parts = middle.split(".")
    ours = len(parts) == 3 and parts[1].isdigit()
    if not ours and not OLD_TEMP.fullmatch(middle):
        return False  # another target's temporary file (a name with a dot in it), or not a temporary file
    if ours and parts[0] == HOST and int(parts[1]) != os.getpid() and not _running(int(parts[1])):
        return True
    with suppress(OSError):
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
    return False


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, and belongs to another user
        return True
    return True


def _unlink(path: Path) -> bool:
    """Remove ``path`` if allowed; whether it was removed (another cleaner may have been first)."""
    try:
        path.unlink()
    except OSError:
        return False
    return True


def probe_writable(folder: Path) -> None:
    """Raise ``OSError`` unless a file can be written in ``folder`` or, where it does not exist yet, in
    its nearest existing parent (so that it can be made); nothing is left behind."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    probe = existing / f".write-probe.{HOST}.{os.getpid()}.{secrets.token_hex(6)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except OSError as err:
        raise type(err)(err.errno, err.strerror, str(existing)) from None
    os.unlink(probe)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return Path(path)
