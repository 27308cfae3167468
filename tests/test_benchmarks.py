"""The benchmark scripts still run end to end at a tiny size and write what they promise.

Timings are not checked (benchmarks print them; tests do not time anything): these tests guard the
scripts' plumbing, the spike check before timing and the JSON / Markdown outputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from .conftest import SHARED_DATA

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
FSDD = SHARED_DATA / "fsdd-shd"


def run_benchmark(script: str, tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """Run ``script`` with ``args`` plus ``--json`` / ``--markdown``; return its report and JSON
    after checking that it succeeded and that the Markdown file is exactly the printed report."""
    out_json, out_md = tmp_path / "out.json", tmp_path / "out.md"
    command = [sys.executable, str(BENCHMARKS / script), *args, "--json", str(out_json), "--markdown", str(out_md)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out_md.read_text() == result.stdout
    return result.stdout, json.loads(out_json.read_text())


def test_reservoir_benchmark_checks_spikes_and_writes_json_and_markdown(tmp_path):
    report, payload = run_benchmark(
        "bench_reservoir.py",
        tmp_path,
        *("--neurons", "60", "--batch", "2", "--steps", "8", "--repeats", "1", "--threads", "1"),
        *("--peers", "plain-loop"),
    )
    assert "Spike check passed" in report
    impls = {row["impl"] for row in payload["rows"]}
    assert impls == {"ours-dense", "ours-auto", "ours-event", "ours-sparse", "ours-fused", "plain-loop"}
    for row in payload["rows"]:
        assert row["check_differing"] == 0, row["impl"]  # float64: every backend, the same spikes
        assert row["seconds"] > 0 and row["model_mb"] > 0
    assert payload["environment"]["device"] == "cpu"


@pytest.mark.skipif(not FSDD.exists(), reason=f"real recordings not found at {FSDD}")
def test_training_benchmark_runs_ours_and_bptt_and_writes_json_and_markdown(tmp_path):
    _, payload = run_benchmark(
        "bench_training.py",
        tmp_path,
        *("--data-dir", str(FSDD), "--cache-dir", str(tmp_path / "cache"), "--neurons", "40"),
        *("--steps", "10", "--train-samples", "8", "--batch", "4", "--acc-steps", "0", "--threads", "1"),
        *("--methods", "ours-dfa-ff", "bptt"),
    )
    rows = payload["cost"]
    assert [(r["method"], r["samples"]) for r in rows] == [("ours-dfa-ff", 8), ("bptt", 8)]
    assert rows[1]["x_time_vs_bptt"] == 1.0
    assert all(r["tensor_peak_mb"] > 0 for r in rows)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
def test_tensor_peak_counts_new_tensors_until_they_are_freed(monkeypatch):
    """What bench_training reports as a method's tensors: views, in-place results and tensors made
    before are not new; a freed tensor leaves the sum; the peak is the most held at once."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from _common import TensorPeak

    before = torch.ones(1000)
    with TensorPeak() as peak:
        a = before * 2  # 4,000 bytes
        b = torch.zeros(2000)  # 8,000 more: 12,000 held
        view = b[:10]
        b.add_(1)
        before.mul_(a)
        del a  # 8,000 held
        c = view + 1  # 40 more
        d = torch.eye(10).to_sparse_csr() @ c[:, None]  # a sparse operand (not counted) and 400 bytes eye
    assert peak.peak == 12_000
    assert peak.live == 8_080
    del b, view
    assert peak.live == 80 and c.numel() == 10 and d.shape == (10, 1)


@pytest.mark.skipif(not FSDD.is_dir(), reason="../shared/data/fsdd-shd is absent")
def test_the_ablation_benchmark_trains_each_variant_and_reads_finished_runs_back(tmp_path):
    command = [sys.executable, str(BENCHMARKS / "ablations.py"), "--data", str(SHARED_DATA), "--out", str(tmp_path)]
    command += ["--recipes", "hardware-fsdd", "--train-args", f"--neurons 30 --task.cache_dir {tmp_path / 'cache'}"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    runs = json.loads((tmp_path / "ablations.json").read_text())["hardware-fsdd"]
    assert set(runs) == {"full", "no-recurrence", "input-only"}
    assert runs["full"]["recurrent"] and not runs["no-recurrence"]["recurrent"]
    row = next(line for line in first.stdout.splitlines() if line.startswith("| hardware-fsdd"))
    assert f"{100 * runs['input-only']['test_accuracy']:.1f}" in row
    assert (tmp_path / "ablations.md").read_text() == first.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert again.stdout == first.stdout and "test accuracy" not in again.stdout


def test_the_mechanism_benchmark_times_every_variant(tmp_path):
    _, payload = run_benchmark(
        "bench_mechanisms.py", tmp_path, "--neurons", "50", "--batch", "2", "--steps", "6", "--repeats", "1"
    )
    rows = payload["rows"]
    assert [r["variant"] for r in rows][:2] == ["default", "no recurrence"] and len(rows) == 6
    assert rows[0]["x_default"] == 1.0 and all(r["ms_per_step"] > 0 for r in rows)
