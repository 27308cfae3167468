"""NIR export: our own round trip is bit-identical; Norse and snnTorch (through our adaptor) re-import
the maelstrom's spikes; parts NIR cannot express are refused by name."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch

from spiking_maelstrom import MaelstromConfig, NetworkConfig, build_network, load_task, network_config_for
from spiking_maelstrom.export import ExportError, load_nir, read_nir, save_nir, to_nir
from spiking_maelstrom.export.peers import for_snntorch, reset_snntorch

from .conftest import SHARED_DATA


def _linear_network(input_shape=(2, 6, 6), n_classes=3, n=50, seed=0, **kwargs):
    kwargs = {"encoder": "linear", "feedback": False, **kwargs}
    config = NetworkConfig(input_shape, n_classes, MaelstromConfig(n_neurons=n, seed=seed), seed=seed, **kwargs)
    return build_network(config).eval()


def _fit_ridge(network, frames, labels):
    with torch.no_grad():
        out = network.run_window(frames, network.init_state(frames.shape[0]), keep_features=True)
    network.readout.accumulate(out.features, labels[:, None])
    network.readout.solve()
    return network


def _frames(shape=(2, 6, 6), batch=3, steps=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, steps, *shape, generator=g) < 0.25).float()


def _peer_spikes(module, frames, reset=None):
    """Run a peer's stateful module step by step on flattened frames; returns spikes [B, T, N]."""
    if reset is not None:
        reset(module)
    state, out = None, []
    with torch.no_grad():
        for t in range(frames.shape[1]):
            z, state = module(frames[:, t].flatten(1), state)
            out.append(z)
    return torch.stack(out, 1)


@pytest.mark.parametrize("features", [("trace", "current"), ("trace",), ("current",)])
def test_save_load_gives_bit_identical_spikes_and_the_same_scores(tmp_path, features):
    network = _linear_network(features=features)
    with torch.no_grad():  # a non-trivial feature normalisation, to be folded into the readout
        network.readout[0].mean.normal_()
        network.readout[0].var.uniform_(0.5, 2.0)
    x = _frames()
    path = save_nir(network, tmp_path / "net.nir")
    back = load_nir(path)
    ours, theirs = network(x, record=True), back(x, record=True)
    assert ours.spikes.sum() > 0
    assert torch.equal(ours.spikes, theirs.spikes)
    torch.testing.assert_close(theirs.logits, ours.logits, rtol=1e-4, atol=1e-4)
    assert back.features == features and back.maelstrom.dt == network.maelstrom.dt


def test_the_file_passes_nir_read_with_type_checks_and_states_its_units(tmp_path):
    network = _linear_network()
    graph = read_nir(save_nir(network, tmp_path / "net.nir"))
    assert isinstance(graph.nodes["maelstrom"], nir.CubaLIF)
    assert ("maelstrom_rec", "maelstrom") in graph.edges and ("maelstrom", "maelstrom_rec") in graph.edges
    assert graph.metadata["dt"] == pytest.approx(1e-3) and graph.metadata["time_unit"] == "s"
    assert list(graph.metadata["input_shape"]) == [2, 6, 6]
    lif = graph.nodes["maelstrom"]
    np.testing.assert_allclose(lif.w_in, lif.tau_syn / 1e-3, rtol=1e-6)
    np.testing.assert_array_equal(lif.metadata["excitatory"], network.maelstrom.excitatory.numpy())


def test_a_network_without_recurrence_exports_without_the_cycle(tmp_path):
    config = NetworkConfig((4,), 2, MaelstromConfig(n_neurons=20, recurrent=False), encoder="linear", feedback=False)
    network = build_network(config).eval()
    graph = to_nir(network)
    assert "maelstrom_rec" not in graph.nodes
    x = (torch.rand(2, 30, 4) < 0.5).float()
    back = load_nir(save_nir(network, tmp_path / "ff.nir"))
    assert not back.maelstrom.config.recurrent
    assert torch.equal(network(x, record=True).spikes, back(x, record=True).spikes)


def test_parts_nir_cannot_express_are_refused_by_name():
    with pytest.raises(ExportError, match="encoder: MLPEncoder has hidden layers"):
        to_nir(_linear_network(encoder="mlp"))
    with pytest.raises(ExportError, match="encoder: ConvEncoder"):
        to_nir(_linear_network(input_shape=(2, 8, 8), encoder="conv"))
    with pytest.raises(ExportError, match="feedback: .*--drop-feedback"):
        to_nir(_linear_network(feedback=True))
    with pytest.raises(ExportError, match="readout: feature 'voltage'"):
        to_nir(_linear_network(features=("trace", "voltage")))
    with pytest.raises(ExportError, match="readout: MLPReadout"):
        to_nir(_linear_network(readout="mlp"))
    with pytest.raises(ExportError, match="ridge readout has not been fitted"):
        to_nir(_linear_network(readout="ridge"))


def test_drop_feedback_folds_the_uniform_prior_into_the_bias_and_says_so():
    network = _linear_network(feedback=True)
    with torch.no_grad():
        network.encoder.out.weight[:, -3:].normal_()
    graph = to_nir(network, drop_feedback=True)
    out = network.encoder.out
    expected = out.bias + out.weight[:, -3:].mean(1)
    np.testing.assert_allclose(graph.nodes["encoder"].bias, expected.detach().numpy(), rtol=1e-6)
    assert graph.nodes["encoder"].weight.shape == (50, 72)
    assert "feedback" in graph.metadata["left_out"]


def test_unreadable_files_and_foreign_graphs_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.nir does not exist"):
        load_nir(tmp_path / "missing.nir")
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="bad.nir is not a readable NIR file"):
        load_nir(bad)
    spikes_only = tmp_path / "spikes.nir"
    save_nir(_linear_network(), spikes_only, output="spikes")
    with pytest.raises(ValueError, match="output='spikes'"):
        load_nir(spikes_only)


@pytest.fixture(scope="module")
def nmnist_sample(tmp_path_factory):
    """A ridge-fitted 300-neuron network on real N-MNIST frames, and 8 real test samples."""
    root = SHARED_DATA / "nmnist-small"
    if not root.is_dir():
        pytest.skip(f"real N-MNIST recordings not found at {root}")
    task = load_task("nmnist", data_dir=root, cache_dir=tmp_path_factory.mktemp("cache"))
    config = network_config_for(task, maelstrom={"n_neurons": 300}, encoder="linear", readout="ridge", feedback=False)
    network = build_network(config).eval()
    train = [task.train[i] for i in range(0, 200, 5)]
    _fit_ridge(network, torch.stack([x for x, _ in train]), torch.tensor([y for _, y in train]))
    test = torch.stack([task.test[i][0] for i in range(0, 100, 12)])
    return network, test


def test_real_nmnist_round_trip_through_our_import(nmnist_sample, tmp_path):
    network, frames = nmnist_sample
    back = load_nir(save_nir(network, tmp_path / "nmnist.nir"))
    ours, theirs = network(frames, record=True), back(frames, record=True)
    assert ours.spikes.mean() > 0.01
    assert torch.equal(ours.spikes, theirs.spikes)
    torch.testing.assert_close(theirs.logits, ours.logits, rtol=1e-4, atol=1e-4)


def test_real_nmnist_spikes_in_norse(nmnist_sample, tmp_path):
    norse = pytest.importorskip("norse.torch", reason="Norse not installed (pip install --no-deps norse)")
    network, frames = nmnist_sample
    graph = read_nir(save_nir(network, tmp_path / "spikes.nir", output="spikes"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = norse.from_nir(graph, dt=float(graph.metadata["dt"]))
    theirs = _peer_spikes(module, frames)
    ours = network(frames, record=True).spikes
    # Norse scales the input by w_in and then dt/tau_syn in float32: a spike may flip on rounding.
    assert (theirs != ours).float().mean() <= 1e-3
    assert ours.sum() > 0


def test_real_nmnist_spikes_in_snntorch_through_the_adaptor(nmnist_sample, tmp_path):
    pytest.importorskip("snntorch", reason="snnTorch not installed")
    from snntorch.import_nir import import_from_nir

    network, frames = nmnist_sample
    graph = read_nir(save_nir(network, tmp_path / "spikes.nir", output="spikes"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = import_from_nir(for_snntorch(graph))
    ours = network(frames, record=True).spikes
    for _ in range(2):  # twice: the reset between sequences must clear snnTorch's hidden state
        theirs = _peer_spikes(module, frames, reset=reset_snntorch)
        # snnTorch scales by (1 - beta) before the current filter, we after: float32 rounding.
        assert (theirs != ours).float().mean() <= 1e-3
        assert theirs.sum() > 0
