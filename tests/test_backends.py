"""The simulation backends: the same spikes from every one, the fused kernel's bits, auto's choices and caches."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from spiking_maelstrom import Maelstrom, MaelstromConfig, Probe
from spiking_maelstrom.backends import fused_cpu, sparse
from spiking_maelstrom.neuron import CubaLIFState


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
    weights = m.engine.weights(m)
    assert len(weights) == {"dense": 1, "csr": 3}[rows] if recurrent else not weights
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
    csr = sparse.csr(m.weight_t.contiguous())
    plain = (csr.crow_indices(), csr.col_indices(), csr.values())
    short = fused_cpu.Fused().weights(m)
    assert short[1].dtype == torch.uint16 and torch.equal(short[1].int(), plain[1])
    wide = (plain[0].long(), plain[1].long(), plain[2])
    currents = 1.5 * torch.rand(3, 40, 120, generator=torch.Generator().manual_seed(0))
    runs = []
    for weights in (plain, short, wide):
        spikes = torch.zeros_like(currents)
        state = fused_cpu.run_window(
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
    assert m.engine.choose(m).name == ("fused" if fused_cpu.available() else "event")
    spikes = m.run(currents)[0]
    monkeypatch.setattr(fused_cpu, "available", lambda: False)
    assert m.engine.choose(m).name == "event"
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
    choose = m.engine.choose
    monkeypatch.setattr(m.engine, "choose", lambda m, z=None: chosen.append(choose(m, z)) or chosen[-1])
    spikes, _ = m.run(currents)
    assert {"sparse", "fused" if fused_cpu.available() else "event"} <= {backend.name for backend in chosen}
    assert torch.equal(spikes, Maelstrom(config, backend="event").run(currents)[0])


@pytest.mark.parametrize("backend", ["event", "sparse"])
def test_loading_weights_keeps_the_sparse_paths_in_step(backend):
    a = Maelstrom(MaelstromConfig(n_neurons=50, seed=1), backend=backend)
    b = Maelstrom(MaelstromConfig(n_neurons=50, seed=2), backend=backend)
    cache = b.engine if backend == "sparse" else sparse.Sparse()  # the event backend keeps no CSR copy of W
    assert not torch.equal(cache.sparse_weight(b).to_dense(), a.weight)  # b's CSR copy of its own weights
    b.load_state_dict(a.state_dict())
    assert torch.equal(cache.sparse_weight(b).to_dense(), a.weight)
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

    from spiking_maelstrom.backends import fused_cpu_kernel

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
        "from spiking_maelstrom import Maelstrom, MaelstromConfig\n"
        "from spiking_maelstrom.backends import fused_cpu\n"
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
