"""The frozen reservoir: connectivity, neuron dynamics, determinism, state API."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from spiking_maelstrom import Feedback, Maelstrom, MaelstromConfig, Probe
from spiking_maelstrom.backends import fused_cpu
from spiking_maelstrom.connectivity import spectral_radius
from spiking_maelstrom.neuron import CubaLIFState, cuba_lif_step, euler_decay
from spiking_maelstrom.readouts import AffineReadout

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


def test_a_probe_refuses_unknown_features_and_a_wrong_width():
    trace = torch.zeros(2, 10)
    with pytest.raises(ValueError, match="probe features must be a non-empty subset"):
        Probe(("spikes",), torch.zeros(2, 5, 10), trace, 0.9)
    with pytest.raises(ValueError, match="probe out has 10 features; .* need 20"):
        Probe(("trace", "current"), torch.zeros(2, 5, 10), trace, 0.9)


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
    readout = AffineReadout(torch.zeros(4, 60), torch.zeros(4))
    loop = Feedback(torch.zeros(4, 30), readout, torch.zeros(2, 4), torch.zeros(2, 5, 4))
    wrong = dataclasses.replace(loop, readout=readout._replace(weight=torch.zeros(4, 50)))
    with pytest.raises(ValueError, match="feedback reads the readout's features: pass a probe"):
        m.run(torch.zeros(2, 5, 30), feedback=loop)
    if fused_cpu.available():
        probe = Probe(("trace", "current"), torch.zeros(2, 5, 60), torch.zeros(2, 30), 0.9)
        fused = Maelstrom(MaelstromConfig(n_neurons=30, seed=0), backend="fused")
        with pytest.raises(ValueError, match=r"readout has shape \(4, 50\); currents \(2, 5, 30\) need \(4, 60\)"):
            fused.run(torch.zeros(2, 5, 30), probe=probe, feedback=wrong)
