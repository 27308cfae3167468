"""Written files: the umask's permissions, and no temporary file of a killed writer left for good."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spiking_maelstrom.checkpoint import save_checkpoint
from spiking_maelstrom.data.events import shd_events
from spiking_maelstrom.data.shd import write_shd_h5
from spiking_maelstrom.files import HOST, STALE_SECONDS, atomic_write, write_json

ROOT = Path(__file__).resolve().parents[1]
# A writer that dies (SIGKILL) inside atomic_write, after writing part of its temporary file.
KILLED = "import os, sys; from spiking_maelstrom.files import atomic_write\n" + (
    "with atomic_write(sys.argv[1]) as tmp:\n    tmp.write_text('{\"half')\n    os.kill(os.getpid(), 9)\n"
)
# A writer that stays inside atomic_write until killed by the test.
LIVE = "import sys, time; from spiking_maelstrom.files import atomic_write\n" + (
    "with atomic_write(sys.argv[1]) as tmp:\n    tmp.write_text('x'); print('ready', flush=True); time.sleep(60)\n"
)


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, **kwargs)


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_respect_the_umask(umask, tmp_path):
    old = os.umask(umask)
    try:
        written = [
            write_json(tmp_path / "a.json", {"a": 1}),
            save_checkpoint(tmp_path / "c.pt", {"x": torch.zeros(2)}),
        ]
        write_shd_h5(tmp_path / "s.h5", [shd_events(np.array([0.1]), np.array([3]))], [0], [0], ["w0"])
        written.append(tmp_path / "s.h5")
    finally:
        os.umask(old)
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path.name


def test_a_killed_writers_temporary_file_is_removed_on_the_next_write(tmp_path):
    target = tmp_path / "metrics.json"
    assert _python(KILLED, str(target)).wait() == -signal.SIGKILL
    left = _temps(tmp_path)
    assert len(left) == 1 and left[0].startswith(".metrics.json.") and not target.exists()
    write_json(target, {"ok": True})
    assert _temps(tmp_path) == [] and target.read_text() == '{\n  "ok": true\n}\n'


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    target = tmp_path / "metrics.json"
    live = _python(LIVE, str(target), stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline() == "ready\n"
        write_json(target, {"mine": 1})
        assert len(_temps(tmp_path)) == 1  # the live writer's, untouched
    finally:
        live.kill()
        live.wait()
    assert target.read_text() == '{\n  "mine": 1\n}\n'
    write_json(target, {"mine": 2})
    assert _temps(tmp_path) == []


def test_old_and_foreign_temporary_files_are_removed_only_when_stale(tmp_path):
    old = time.time() - STALE_SECONDS - 60
    names = {
        ".run.json.abcd_123.tmp": True,  # tempfile.mkstemp's name, from an older version: stale by age
        ".run.json.a1b2c3d4.tmp": False,  # the same, but recent: perhaps a live writer
        ".run.json.otherhost.77.00ff.tmp": True,  # another host's, stale by age
        ".run.json.otherhost.78.00ff.tmp": False,  # another host's, recent
        ".run.json.b.abcd_123.tmp": False,  # the temporary file of another target, run.json.b
        ".run.json.abcd_123.part": False,  # another suffix
    }
    recent = {".run.json.a1b2c3d4.tmp", ".run.json.otherhost.78.00ff.tmp"}
    for name in names:
        (tmp_path / name).write_text("x")
        if name not in recent:
            os.utime(tmp_path / name, (old, old))
    write_json(tmp_path / "run.json", {})
    assert set(_temps(tmp_path)) == {n for n, stale in names.items() if not stale and n.endswith(".tmp")}
    assert (tmp_path / ".run.json.abcd_123.part").exists()


def test_a_dead_writers_temporary_file_of_this_host_goes_at_once(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    name = f".x.h5.{HOST}.{dead.pid}.0a0b.tmp"
    (tmp_path / name).write_text("half")
    with atomic_write(tmp_path / "x.h5") as tmp:
        tmp.write_text("whole")
    assert _temps(tmp_path) == [] and (tmp_path / "x.h5").read_text() == "whole"


def test_a_failed_write_names_its_target_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "config.toml"
    with pytest.raises(OSError) as caught, atomic_write(target) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what a write to a full disk raises
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []
