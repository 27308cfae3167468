"""Reservoir measures against cases with known answers, and the ``maelstrom simulate`` command."""

from __future__ import annotations

import json
from dataclasses import replace

import h5py
import pytest
import torch

from spiking_maelstrom import Maelstrom, MaelstromConfig
from spiking_maelstrom.cli import main
from spiking_maelstrom.diagnostics import (
    MeasureConfig,
    firing_statistics,
    generated_memory,
    growth,
    memory_capacity,
    numerical_rank,
    perturbation,
    ranks,
    scalar_drive,
    separation,
    trace_decay,
)

from .conftest import SHARED_DATA

SMALL = MeasureConfig(steps=200, samples=8, delays=10, rank_inputs=20)
SMALL_ARGS = ["--steps", "200", "--samples", "8", "--delays", "10", "--simulate.rank-inputs", "20", "--quiet"]


def maelstrom(n: int = 100, seed: int = 0, **config) -> Maelstrom:
    return Maelstrom(MaelstromConfig(n_neurons=n, seed=seed, **config))


def delayed(u: torch.Tensor, delays: int) -> torch.Tensor:
    """States that hold the last ``delays`` input values exactly: a perfect delay line ``[B, H, delays]``."""
    states = torch.zeros(*u.shape, delays, dtype=torch.float64)
    for k in range(1, delays + 1):
        states[:, k:, k - 1] = u[:, :-k]
    return states


def test_a_delay_line_remembers_each_of_its_delays_fully():
    u = torch.rand(8, 300, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    per_delay = memory_capacity(u, delayed(u, 6), delays=10, washout=0)
    assert per_delay[:6] == pytest.approx([1.0] * 6, abs=1e-6)
    assert max(per_delay[6:]) < 0.05


def test_a_linear_reservoirs_memory_capacity_is_bounded_by_its_size():
    generator = torch.Generator().manual_seed(1)
    features = 5
    u = torch.rand(16, 400, generator=generator, dtype=torch.float64) * 2 - 1
    weight = torch.linalg.qr(torch.randn(features, features, generator=generator, dtype=torch.float64))[0] * 0.9
    v = torch.randn(features, generator=generator, dtype=torch.float64)
    x, states = torch.zeros(16, features, dtype=torch.float64), []
    for t in range(u.shape[1]):
        x = x @ weight.T + u[:, t, None] * v
        states.append(x)
    capacity = sum(memory_capacity(u, torch.stack(states, 1), delays=20, washout=0))
    assert features - 1.5 < capacity <= features + 0.05


def test_recurrence_adds_memory_capacity_at_the_default_spectral_radius():
    config = MeasureConfig(steps=400, samples=32, delays=10)
    for seed in range(3):
        on, off = (
            sum(generated_memory(maelstrom(seed=seed, recurrent=r), replace(config, seed=seed))[0])
            for r in (True, False)
        )
        assert on > off, f"seed {seed}: memory capacity {on:.3f} with recurrence, {off:.3f} without"


def test_one_extra_spike_changes_nothing_without_recurrence_and_spreads_with_it():
    _, currents = scalar_drive(maelstrom(), SMALL)
    decay = trace_decay(maelstrom(), SMALL)
    still = perturbation(maelstrom(recurrent=False), currents, 50, decay)
    assert still.shape == (150,) and not still.any()
    spread = perturbation(maelstrom(), currents, 50, decay)
    assert float(spread.max()) > 0
    assert growth(torch.zeros(10)) == (0.0, None)
    late, exponent = growth(torch.full((100,), torch.e))
    assert late == pytest.approx(torch.e) and exponent == pytest.approx(0.01)


def test_numerical_rank_counts_independent_rows():
    generator = torch.Generator().manual_seed(2)
    low = torch.randn(30, 3, generator=generator) @ torch.randn(3, 40, generator=generator)
    assert numerical_rank(low) == 3
    assert numerical_rank(torch.zeros(5, 7)) == 0
    assert numerical_rank(torch.randn(6, 50, generator=generator)) == 6


def test_identical_inputs_have_generalisation_rank_one_and_distinct_ones_a_higher_kernel_rank():
    measured = ranks(maelstrom(), replace(SMALL, noise=0.0), None, None)
    assert measured["generalisation_rank"] == 1
    assert 1 < measured["kernel_rank"] <= measured["rank_inputs"] == 20


def test_silent_input_has_rank_zero_and_no_spikes():
    m = maelstrom()
    currents = torch.zeros(4, 100, m.n_neurons)
    labels = torch.zeros(4, dtype=torch.long)
    assert ranks(m, SMALL, currents, labels) == {"kernel_rank": 0, "generalisation_rank": 0, "rank_inputs": 4}
    stats = firing_statistics(m.run(currents)[0], m.dt)
    assert stats["rate_hz"] == 0 and stats["silent_fraction"] == 1


def test_firing_statistics_of_clockwork_and_lockstep_trains():
    regular = torch.zeros(2, 1000, 3)
    regular[:, ::10] = 1.0
    stats = firing_statistics(regular, dt=1e-3)
    assert stats["rate_hz"] == pytest.approx(100.0) and stats["isi_cv"] == pytest.approx(0.0)
    assert stats["synchrony"] == pytest.approx(1.0)
    independent = (torch.rand(2, 1000, 400, generator=torch.Generator().manual_seed(0)) < 0.05).float()
    loose = firing_statistics(independent, dt=1e-3)
    assert loose["synchrony"] < 0.1 and loose["isi_cv"] == pytest.approx(1.0, abs=0.1)


def test_equal_inputs_are_not_separated_and_different_ones_are():
    curve = separation(maelstrom(), SMALL, (0.0, 1.0))
    assert curve[0]["input_distance"] == 0 and curve[0]["state_distance"] == 0
    assert curve[1]["state_distance"] > 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"steps": 50}, "below the 5 holds"),
        ({"samples": 1}, "samples must be >= 2"),
        ({"hold": 0}, "must be >= 1"),
    ],
)
def test_measure_settings_are_checked(settings, message):
    with pytest.raises(ValueError, match=message):
        MeasureConfig(**settings)


def measures(out) -> dict:
    return json.loads((out / "measures.json").read_text())


def test_simulate_writes_the_measures_spikes_and_plots(tmp_path):
    out = tmp_path / "sim"
    assert main(["simulate", "--neurons", "100", *SMALL_ARGS, "--out", str(out)]) == 0
    result = measures(out)
    for key in ("memory_capacity", "kernel_rank", "generalisation_rank", "rate_hz", "perturbation_growth", "isi_cv"):
        assert key in result, key
    assert result["neurons"] == 100 and result["recurrent"] is True and result["input"] == "generated"
    assert len(result["memory_capacity_per_delay"]) == 10 and result["settings"]["steps"] == 200
    with h5py.File(out / "spikes.h5") as handle:
        assert handle["spikes"].shape == (8, 200, 100)
    assert (out / "raster.png").stat().st_size > 0 and (out / "measures.png").stat().st_size > 0


def test_simulate_no_recurrence_is_the_same_maelstrom_without_its_loop(tmp_path):
    on, off = tmp_path / "on", tmp_path / "off"
    assert main(["simulate", "--neurons", "100", *SMALL_ARGS, "--out", str(on)]) == 0
    assert main(["simulate", "--neurons", "100", *SMALL_ARGS, "--no-recurrence", "--out", str(off)]) == 0
    assert measures(off)["recurrent"] is False and measures(off)["perturbation_growth"] == 0
    assert measures(on)["perturbation_growth"] > 0


def test_simulate_refuses_bad_settings_and_a_held_folder_in_one_line(tmp_path, capsys):
    assert main(["simulate", "--steps", "50", "--out", str(tmp_path / "a")]) == 2
    assert "below the 5 holds" in capsys.readouterr().err
    out = tmp_path / "held"
    out.mkdir()
    (out / "measures.json").write_text("{}")
    assert main(["simulate", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a simulation: --force replaces it" in err and len(err.strip().splitlines()) == 1


def test_simulate_reads_a_trained_runs_maelstrom_on_its_task(tmp_path):
    run = tmp_path / "run"
    train = ["train", "--task.n_channels", "40", "--task.noise_channels", "20", "--task.n_steps", "30"]
    train += ["--task.train_per_class", "4", "--task.test_per_class", "3", "--neurons", "60", "--epochs", "1"]
    assert main([*train, "--quiet", "--out", str(run)]) == 0
    out = tmp_path / "sim"
    assert main(["simulate", "--run", str(run), *SMALL_ARGS, "--out", str(out)]) == 0
    result = measures(out)
    assert result["neurons"] == 60 and result["input"] == "randman" and result["steps"] == 30
    assert main(["simulate", "--run", str(run), "--neurons", "70", "--out", str(tmp_path / "x")]) == 2


@pytest.mark.skipif(not (SHARED_DATA / "nmnist-small").is_dir(), reason="../shared/data/nmnist-small is absent")
def test_simulate_runs_on_nmnist_small(tmp_path):
    out = tmp_path / "sim"
    data = ["--dataset", "nmnist", "--data-dir", str(SHARED_DATA / "nmnist-small"), "--neurons", "100"]
    assert main(["simulate", *data, *SMALL_ARGS, "--out", str(out)]) == 0
    result = measures(out)
    assert result["input"] == "nmnist" and result["samples"] == 8 and result["rank_inputs"] == 20
    assert result["rate_hz"] > 0 and result["kernel_rank"] > 1


def test_simulate_sweeps_the_spectral_radius_with_memory_and_validation_accuracy(tmp_path):
    out = tmp_path / "sweep"
    task = ["--task.n_channels", "40", "--task.noise_channels", "20", "--task.n_steps", "30"]
    task += ["--task.train_per_class", "5", "--task.test_per_class", "2", "--neurons", "60", "--epochs", "1"]
    assert main(["simulate", *task, *SMALL_ARGS, "--sweep", "2", "6", "--out", str(out)]) == 0
    points = json.loads((out / "sweep.json").read_text())
    assert [p["spectral_radius"] for p in points] == [2.0, 6.0]
    assert all(0 <= p["validation_accuracy"] <= 1 and p["memory_capacity"] >= 0 for p in points)
    assert (out / "sweep.png").stat().st_size > 0
