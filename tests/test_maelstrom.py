"""The frozen reservoir: connectivity, neuron dynamics, determinism, state API."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys

import pytest
import torch

from spiking_maelstrom import Feedback, Maelstrom, MaelstromConfig, Probe, fused_cpu
from spiking_maelstrom.connectivity import spectral_radius
from spiking_maelstrom.neuron import CubaLIFState, cuba_lif_step, euler_decay

from .conftest import run_closed_loop


def test_cuba_lif_step_follows_forward_euler():
    state = CubaLIFState(v=torch.tensor([[0.5, 0.95]]), i=torch.tensor([[0.2, 2.0]]), z=torch.zeros(1, 2))
    beta, alpha = torch.tensor([0.9, 0.9]), torch.tensor([0.8, 0.8])
    new = cuba_lif_step(torch.tensor([[1.0, 0.0]]), state, beta, alpha, 1.0, 0.0, 0.0)
    # neuron 0: i = 0.8*0.2 + 1 = 1.16; v = 0.9*0.5 + 0.1*1.16 = 0.566, no spike
    # neuron 1: i = 0.8*2.0 = 1.6; v = 0.9*0.95 + 0.1*1.6 = 1.015 > 1 -> spike and reset to 0
    assert torch.allclose(new.i, torch.tensor([[1.16, 1.6]]))
    assert torch.allclose(new.v, torch.tensor([[0.566, 0.0]]))
    assert new.z.tolist() == [[0.0, 1.0]]


@pytest.mark.parametrize(
    ("threshold", "reset", "leak"),
    [(1.0, 0.0, 0.0), (0.7, -0.2, 0.1), (torch.tensor(0.9), torch.tensor(-0.1), torch.tensor(0.2))],
)
def test_cuba_lif_step_is_bit_for_bit_the_formulas(threshold, reset, leak):
    """The in-place step must round like the plain expressions (results and exports depend on it)."""
    g = torch.Generator().manual_seed(0)
    beta, alpha = torch.rand(300, generator=g), torch.rand(300, generator=g)
    state = CubaLIFState(torch.randn(8, 300, generator=g), torch.randn(8, 300, generator=g), torch.zeros(8, 300))
    for _ in range(20):
        drive = torch.randn(8, 300, generator=g)
        i = alpha * state.i + drive
        v = beta * state.v + (1.0 - beta) * (leak + i)
        z = v > threshold
        want = CubaLIFState(torch.where(z, reset, v), i, z.float())
        state = cuba_lif_step(drive, state, beta, alpha, threshold, reset, leak)
        for name, got, expected in zip(CubaLIFState._fields, state, want, strict=True):
            assert torch.equal(got, expected), name


def test_time_constant_must_exceed_dt():
    with pytest.raises(ValueError, match="exceed dt"):
        euler_decay(torch.tensor([1e-3]), 1e-3)


def test_same_seed_same_maelstrom_other_seed_other_maelstrom():
    a = Maelstrom(MaelstromConfig(n_neurons=200, seed=3))
    b = Maelstrom(MaelstromConfig(n_neurons=200, seed=3))
    c = Maelstrom(MaelstromConfig(n_neurons=200, seed=4))
    for name, buf in a.named_buffers():
        assert torch.equal(buf, dict(b.named_buffers())[name]), name
    assert not torch.equal(a.weight, c.weight)


def test_weights_are_frozen_buffers():
    m = Maelstrom(MaelstromConfig(n_neurons=50))
    assert list(m.parameters()) == []
    assert {"weight", "tau_mem", "tau_syn", "alpha", "beta", "excitatory"} <= set(m.state_dict())


def test_dale_law_and_no_autapses():
    m = Maelstrom(MaelstromConfig(n_neurons=300, seed=1))
    w, exc = m.weight, m.excitatory
    assert (w[:, exc] >= 0).all() and (w[:, ~exc] <= 0).all()
    assert (torch.diagonal(w) == 0).all()
    assert int(exc.sum()) == 240


def test_pathway_probabilities_are_respected():
    probs = {"EE": 0.2, "EI": 0.05, "IE": 0.4, "II": 0.1}
    m = Maelstrom(MaelstromConfig(n_neurons=1000, connection_probability=probs, spectral_radius=1.0))
    exc, conn = m.excitatory, m.weight != 0
    blocks = {
        "EE": conn[exc][:, exc],
        "EI": conn[~exc][:, exc],
        "IE": conn[exc][:, ~exc],
        "II": conn[~exc][:, ~exc],
    }
    for name, block in blocks.items():
        n_pairs = block.numel() - (block.shape[0] if name in ("EE", "II") else 0)
        density = block.sum().item() / n_pairs
        assert abs(density - probs[name]) < 4 * math.sqrt(probs[name] / n_pairs) + 1e-3, name


def test_distance_topology_prefers_neighbours():
    m = Maelstrom(MaelstromConfig(n_neurons=400, topology="distance", seed=2))
    from spiking_maelstrom.connectivity import column_positions

    distance = torch.cdist(column_positions(400), column_positions(400))
    conn = (m.weight != 0).cpu()
    assert distance[conn].mean() < 0.5 * distance[~conn].mean()
    assert conn.any()


def test_spectral_radius_is_set_exactly():
    m = Maelstrom(MaelstromConfig(n_neurons=300, spectral_radius=2.5))
    assert spectral_radius(m.weight) == pytest.approx(2.5, rel=1e-5)


def test_balance_cancels_each_neurons_inputs_and_circular_law_estimates_radius():
    m = Maelstrom(MaelstromConfig(n_neurons=1000, spectral_radius=1.0, radius_method="circular-law"))
    w = m.weight.double()
    assert w.sum(1).abs().max() < 1e-5
    assert spectral_radius(w, "eigenvalues") == pytest.approx(1.0, rel=0.15)


def test_time_constants_are_heterogeneous_and_in_range():
    c = MaelstromConfig(n_neurons=500, tau_mem=(0.01, 0.04), tau_syn=(0.003, 0.01))
    m = Maelstrom(c)
    for tau, (low, high) in ((m.tau_mem, c.tau_mem), (m.tau_syn, c.tau_syn)):
        assert tau.min() >= low * (1 - 1e-6) and tau.max() <= high * (1 + 1e-6)
        assert tau.std() > 0.1 * tau.mean()


def _drive(batch=3, steps=60, n=150, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 1.5 * torch.rand(batch, steps, n, generator=g, dtype=torch.float64)


def test_running_in_chunks_gives_the_same_spikes():
    m = Maelstrom(MaelstromConfig(n_neurons=150, seed=5), dtype=torch.float64)
    currents = _drive()
    whole, end = m.run(currents)
    first, state = m.run(currents[:, :17])
    second, state = m.run(currents[:, 17:41], state)
    third, state = m.run(currents[:, 41:], state)
    assert whole.sum() > 0
    assert torch.equal(torch.cat([first, second, third], 1), whole)
    for a, b in zip(state, end, strict=True):
        assert torch.equal(a, b)


def test_step_and_run_agree_and_recurrence_matters():
    m = Maelstrom(MaelstromConfig(n_neurons=150, seed=5), dtype=torch.float64)
    currents = _drive()
    spikes, _ = m.run(currents)
    state = m.init_state(3)
    for t in range(currents.shape[1]):
        state = m.step(currents[:, t], state)
        assert torch.equal(state.z, spikes[:, t])
    isolated = Maelstrom(MaelstromConfig(n_neurons=150, seed=5, recurrent=False), dtype=torch.float64)
    assert not torch.equal(isolated.run(currents)[0], spikes)


def test_no_gradient_enters_the_maelstrom():
    m = Maelstrom(MaelstromConfig(n_neurons=40))
    current = torch.rand(2, 40, requires_grad=True)
    state = m.step(current, m.init_state(2))
    assert not any(t.requires_grad for t in state)


def test_bad_input_shapes_are_named():
    m = Maelstrom(MaelstromConfig(n_neurons=40))
    with pytest.raises(ValueError, match="40 neurons"):
        m.step(torch.zeros(2, 39), m.init_state(2))
    with pytest.raises(ValueError, match=r"\[batch, time, neurons\]"):
        m.run(torch.zeros(2, 40))
    with pytest.raises(ValueError, match="outside"):
        Maelstrom(MaelstromConfig(n_neurons=40, connection_probability={"EE": 2, "EI": 0, "IE": 0, "II": 0}))
    with pytest.raises(ValueError, match="unknown topology"):
        Maelstrom(MaelstromConfig(n_neurons=40, topology="ring"))


@pytest.mark.parametrize("rate", [0.3, 1.5])
def test_every_cpu_backend_gives_the_same_spikes_in_float64(rate):
    config = MaelstromConfig(n_neurons=200, seed=4)
    currents = rate * torch.rand(3, 60, 200, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    spikes = {}
    backends = ("dense", "event", "sparse", "auto") + (("fused",) if fused_cpu.available() else ())
    for backend in backends:
        m = Maelstrom(config, dtype=torch.float64, backend=backend)
        spikes[backend] = m.run(currents)[0]
    assert spikes["dense"].sum() > 0
    for backend in backends[1:]:
        assert torch.equal(spikes["dense"], spikes[backend]), backend
    with pytest.raises(ValueError, match="unknown backend 'csr'"):
        Maelstrom(config, backend="csr")
    with pytest.raises(ValueError, match="backend 'graph' needs the maelstrom on a CUDA device"):
        Maelstrom(config, backend="graph").run(currents.float())


def _run_in_two_parts(m: Maelstrom, currents: torch.Tensor, names: tuple[str, ...]):
    """Spikes, final state, probe features and trace of ``currents`` run in two calls and a step."""
    batch, steps, n = currents.shape
    g = torch.Generator().manual_seed(2)
    state = m.init_state(batch)._replace(v=0.5 * torch.rand(batch, n, generator=g, dtype=currents.dtype))
    probe = Probe(names, torch.empty(batch, steps, len(names) * n, dtype=currents.dtype), state.v.clone(), 0.9)
    first, state = m.run(currents[:, :20], state, probe=probe)
    state = m.step(currents[:, 20], state)
    probe.write(state)
    middle = state.z.unsqueeze(1)
    rest, state = m.run(currents[:, 21:], state, probe=probe)
    return torch.cat([first, middle, rest], 1), state, probe.out, probe.trace


@pytest.mark.skipif(not fused_cpu.available(), reason="numba is not installed")
@pytest.mark.parametrize(
    ("dtype", "potentials", "rows", "recurrent"),
    [
        (torch.float32, (1.0, 0.0, 0.0), "dense", True),
        (torch.float32, (1.0, 0.0, 0.0), "csr", True),
        (torch.float64, (0.8, -0.2, 0.1), "dense", True),
        (torch.float64, (0.8, -0.2, 0.1), "csr", True),
        (torch.float32, (1.0, 0.0, 0.0), "dense", False),
    ],
)
def test_fused_kernel_gives_the_event_backends_bits(monkeypatch, dtype, potentials, rows, recurrent):
    """Spikes, state, features and trace, bit for bit, across calls (rounding matters in a chaotic net)."""
    # Which rows the kernel reads depends on W's size and density (``fused_cpu.dense_rows``): force each.
    monkeypatch.setattr(fused_cpu, *(("DENSE_ROWS_BYTES", 0) if rows == "csr" else ("DENSE_ROWS_DENSITY", 0.0)))
    threshold, reset, leak = potentials
    config = MaelstromConfig(
        n_neurons=150, seed=2, v_threshold=threshold, v_reset=reset, v_leak=leak, recurrent=recurrent
    )
    currents = 1.5 * torch.rand(4, 50, 150, generator=torch.Generator().manual_seed(1), dtype=dtype)
    got = {}
    for backend in ("event", "fused"):
        m = Maelstrom(config, dtype=dtype, backend=backend)
        got[backend] = _run_in_two_parts(m, currents, ("voltage", "trace", "current"))
    assert len(m._fused_weights()) == {"dense": 1, "csr": 3}[rows] if recurrent else not m._fused_weights()
    spikes, state, features, trace = got["fused"]
    assert 0.02 < spikes[:, 20:].mean() < 0.5  # it ran through a busy window, not a silent one
    assert torch.equal(spikes, got["event"][0])
    for name, a, b in zip(CubaLIFState._fields, state, got["event"][1], strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(features, got["event"][2])
    assert torch.equal(trace, got["event"][3])


@pytest.mark.skipif(not fused_cpu.available(), reason="numba is not installed")
def test_fused_kernel_reads_16_32_and_64_bit_csr_indices_alike():
    """The kernel's CSR has 16-bit column indices up to N = 65,536 (``csr_rows``), 32-bit ones
    beyond, and 64-bit ones beyond 2**31 synapse slots (N > 46,000): the same spikes."""
    m = Maelstrom(MaelstromConfig(n_neurons=120, seed=4))
    csr = m._csr(m.weight_t.contiguous())
    plain = (csr.crow_indices(), csr.col_indices(), csr.values())
    short = m._fused_weights()
    assert short[1].dtype == torch.uint16 and torch.equal(short[1].int(), plain[1])
    wide = (plain[0].long(), plain[1].long(), plain[2])
    currents = 1.5 * torch.rand(3, 40, 120, generator=torch.Generator().manual_seed(0))
    runs = []
    for weights in (plain, short, wide):
        spikes = torch.zeros_like(currents)
        state, _, _ = fused_cpu.run_window(
            currents, m.init_state(3), weights, m.alpha, m.beta, 1.0 - m.beta, m.potentials, spikes
        )
        runs.append((spikes, state))
    assert 0.02 < runs[0][0].mean() < 0.5
    for spikes, state in runs[1:]:
        assert torch.equal(runs[0][0], spikes)
        assert all(torch.equal(a, b) for a, b in zip(runs[0][1], state, strict=True))


def test_auto_runs_the_fused_kernel_on_the_cpu_and_the_event_product_without_numba(monkeypatch):
    config = MaelstromConfig(n_neurons=100, seed=0)
    currents = 1.5 * torch.rand(2, 30, 100, generator=torch.Generator().manual_seed(0))
    m = Maelstrom(config)
    assert m._plan() == ("fused" if fused_cpu.available() else "event")
    spikes = m.run(currents)[0]
    monkeypatch.setattr(fused_cpu, "available", lambda: False)
    assert m._plan() == "event"
    assert torch.equal(m.run(currents)[0], spikes)
    with pytest.raises(ValueError, match="backend 'fused' needs numba"):
        Maelstrom(config, backend="fused").run(currents)


def test_auto_takes_the_sparse_product_on_busy_steps_with_the_same_bits(monkeypatch):
    """Bursts of firing switch auto to the CSR product and back; float32 spikes stay the event ones."""
    config = MaelstromConfig(n_neurons=200, seed=3)
    g = torch.Generator().manual_seed(0)
    currents = (
        torch.rand(4, 120, 200, generator=g) * torch.tensor([0.2, 6.0]).repeat_interleave(60).repeat(2)[:120, None]
    )
    m = Maelstrom(config)
    chosen = []
    plan = m._plan
    monkeypatch.setattr(m, "_plan", lambda z=None: chosen.append(plan(z)) or chosen[-1])
    spikes, _ = m.run(currents)
    assert {"sparse", "fused" if fused_cpu.available() else "event"} <= set(chosen)
    assert torch.equal(spikes, Maelstrom(config, backend="event").run(currents)[0])


def test_a_probe_refuses_unknown_features_and_a_wrong_width():
    trace = torch.zeros(2, 10)
    with pytest.raises(ValueError, match="probe features must be a non-empty subset"):
        Probe(("spikes",), torch.zeros(2, 5, 10), trace, 0.9)
    with pytest.raises(ValueError, match="probe out has 10 features; .* need 20"):
        Probe(("trace", "current"), torch.zeros(2, 5, 10), trace, 0.9)


@pytest.mark.parametrize("backend", ["event", "sparse"])
def test_loading_weights_keeps_the_sparse_paths_in_step(backend):
    a = Maelstrom(MaelstromConfig(n_neurons=50, seed=1), backend=backend)
    b = Maelstrom(MaelstromConfig(n_neurons=50, seed=2), backend=backend)
    assert not torch.equal(b.sparse_weight.to_dense(), a.weight)  # b's CSR copy of its own weights
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.sparse_weight.to_dense(), a.weight)
    currents = 2 * torch.rand(2, 30, 50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.run(currents)[0], b.run(currents)[0])


@pytest.mark.skipif(not fused_cpu.available(), reason="numba is not installed")
def test_the_fused_kernel_refuses_a_state_of_another_batch():
    """The compiled loop checks no bounds, so a mismatched state must be refused before it runs."""
    m = Maelstrom(MaelstromConfig(n_neurons=40, seed=0), backend="fused")
    with pytest.raises(ValueError, match=r"state.v has shape \(3, 40\); currents \(2, 5, 40\) need \(2, 40\)"):
        m.run(torch.zeros(2, 5, 40), m.init_state(3))


@pytest.mark.skipif(not fused_cpu.available(), reason="numba is not installed")
def test_the_fused_kernel_compiles_without_a_writable_cache(monkeypatch):
    """A read-only install leaves numba no cache directory: the kernel must still compile and run."""
    import importlib

    import numba

    from spiking_maelstrom import fused_cpu_kernel

    njit = numba.njit

    def no_cache_dir(*args, **kwargs):
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function 'window': no locator available")
        return njit(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", no_cache_dir)
    importlib.reload(fused_cpu_kernel)
    fused_cpu._kernel.cache_clear()
    try:
        assert type(fused_cpu._kernel()._cache).__name__ == "NullCache"  # compiled without a cache
        currents = 1.5 * torch.rand(2, 20, 60, generator=torch.Generator().manual_seed(0))
        config = MaelstromConfig(n_neurons=60, seed=1)
        spikes = Maelstrom(config, backend="fused").run(currents)[0]
        assert torch.equal(spikes, Maelstrom(config, backend="event").run(currents)[0])
    finally:
        monkeypatch.undo()
        importlib.reload(fused_cpu_kernel)
        fused_cpu._kernel.cache_clear()


@pytest.mark.skipif(not fused_cpu.available(), reason="numba is not installed")
def test_a_new_process_finds_the_fused_kernel_in_numbas_cache():
    """Compiling the kernel takes seconds: the next process must load it from numba's disk cache
    (a kernel defined inside a function missed it in every process). A step of a strided run uses
    the same compiled kernel as a whole window."""
    script = (
        "import torch\n"
        "from spiking_maelstrom import Maelstrom, MaelstromConfig, fused_cpu\n"
        "m = Maelstrom(MaelstromConfig(n_neurons=64, seed=0), backend='fused')\n"
        "currents = torch.rand(2, 6, 64)\n"
        "m.step(currents[:, 2], m.run(currents, record=False)[1])\n"
        "stats = fused_cpu._kernel().stats\n"
        "print(stats.cache_path, sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))\n"
    )
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    path, hits, misses = runs[1].stdout.split()
    if not os.access(path, os.W_OK):
        pytest.skip(f"numba's cache directory {path} is not writable here")
    assert (int(hits), int(misses)) == (1, 0)


@pytest.mark.parametrize("mlp", [False, True])
def test_a_feedback_loop_closes_the_readouts_prediction_onto_the_next_input(mlp):
    """Every backend runs the loop's definition (float64: the kernel sums in its own order), and
    the feedback changes the spikes."""
    config = MaelstromConfig(n_neurons=80, seed=5)
    currents = 0.8 * torch.rand(3, 45, 80, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(6, 4).double()) if mlp else None
    backends = ("event", "dense", "sparse") + (("fused",) if fused_cpu.available() else ())
    runs = {b: run_closed_loop(Maelstrom(config, dtype=torch.float64, backend=b), currents, head) for b in backends}
    spikes, fed, last = runs["event"]
    assert torch.allclose(fed[:, 0], torch.full_like(fed[:, 0], 0.25))
    assert not torch.allclose(fed[:, 1], fed[:, 0])  # the prediction moved, and was fed back
    for backend in backends[1:]:
        assert torch.equal(runs[backend][0], spikes), backend
        assert torch.allclose(runs[backend][1], fed, rtol=1e-12, atol=1e-14), backend
        assert torch.allclose(runs[backend][2], last, rtol=1e-12, atol=1e-14), backend
    open_loop = Maelstrom(config, dtype=torch.float64, backend="event").run(currents)[0]
    assert not torch.equal(open_loop, spikes)


def test_a_feedback_loop_needs_a_probe_and_matching_shapes():
    m = Maelstrom(MaelstromConfig(n_neurons=30, seed=0))
    loop = Feedback(torch.zeros(4, 30), torch.zeros(4, 60), torch.zeros(4), torch.zeros(2, 4), torch.zeros(2, 5, 4))
    wrong = dataclasses.replace(loop, readout=torch.zeros(4, 50))
    with pytest.raises(ValueError, match="feedback reads the readout's features: pass a probe"):
        m.run(torch.zeros(2, 5, 30), feedback=loop)
    if fused_cpu.available():
        probe = Probe(("trace", "current"), torch.zeros(2, 5, 60), torch.zeros(2, 30), 0.9)
        fused = Maelstrom(MaelstromConfig(n_neurons=30, seed=0), backend="fused")
        with pytest.raises(ValueError, match=r"readout has shape \(4, 50\); currents \(2, 5, 30\) need \(4, 60\)"):
            fused.run(torch.zeros(2, 5, 30), probe=probe, feedback=wrong)
