"""A short, bounded run of benchmarks/fault_injection.py: killed or full-disk commands leave no
half-written file, no folder mixing two runs, and their reruns complete with the uninterrupted result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_killed_and_full_disk_commands_rerun_to_the_uninterrupted_result(tmp_path):
    out = tmp_path / "faults.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "fault_injection.py"), "--kills", "4", "--disk-fulls", "2"]
    command += ["--epochs", "2"]
    result = subprocess.run([*command, "--seed", "1", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failed"] == 0 and len(report["rows"]) == 6
    assert {row["target"] for row in report["rows"]} == {"train", "cache-nmnist", "cache-shd", "export"}
    for row in report["rows"]:
        assert row["rerun_completed"] and row["same_result"] and row["temporary_after_rerun"] == 0
        assert not row["half_written_after_fault"] and not row["half_written_after_rerun"] and not row["mixed"]
    assert "| train | kill | 1 |" in result.stdout and "6 of 6 trials passed every check." in result.stdout
