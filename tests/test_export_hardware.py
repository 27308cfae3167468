"""Hardware targets, quantisation with limit checks, the integer simulator, netx HDF5, and
``maelstrom export``."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from spiking_maelstrom import MaelstromConfig, NetworkConfig, build_network
from spiking_maelstrom.cli import main
from spiking_maelstrom.export import ExportError, load_nir
from spiking_maelstrom.export.netx import write_netx
from spiking_maelstrom.export.quantize import quantize
from spiking_maelstrom.export.targets import available_targets, load_target


def _network(n=80, inputs=(12,), tau=None, features=("trace",), **kwargs):
    mcfg = MaelstromConfig(n_neurons=n, seed=1, **({"tau_mem": tau, "tau_syn": tau} if tau else {}))
    config = NetworkConfig(inputs, 3, mcfg, encoder="linear", feedback=False, features=features, **kwargs)
    return build_network(config).eval()


def _x(inputs=(12,), batch=6, steps=50):
    return (torch.rand(batch, steps, *inputs, generator=torch.Generator().manual_seed(0)) < 0.3).float()


def test_every_shipped_target_loads_and_names_its_limits():
    names = available_targets()
    assert {"loihi2", "xylo-audio2", "xylo-audio3", "spinnaker2", "float"} <= set(names)
    xylo = load_target("xylo-audio2")
    assert (xylo.limits["inputs"], xylo.limits["hidden"], xylo.weight["bits"]) == (16, 1000, 8)
    assert load_target("loihi2").decay == {"kind": "fraction", "bits": 12, "per_layer": True}


def test_bad_target_names_and_files_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown hardware target 'loihi9'.*xylo-audio2"):
        load_target("loihi9")
    bad = tmp_path / "chip.toml"
    bad.write_text('name = "chip"\ntitle = "t"\nformats = ["nir"]\n[weight]\nkind = "int"\n')
    with pytest.raises(ValueError, match="chip.toml: lacks the key 'decay'"):
        load_target(bad)


def test_the_float_target_reproduces_the_network_exactly_enough():
    network = _network()
    x = _x()
    chip = quantize(network, load_target("float")).to_network()
    ours, theirs = network(x, record=True), chip(x, record=True)
    assert ours.spikes.sum() > 0
    assert torch.equal(ours.spikes, theirs.spikes.float())
    torch.testing.assert_close(theirs.logits.float(), ours.logits, rtol=1e-4, atol=1e-4)


def test_integer_targets_use_integers_within_their_bits_and_stay_close():
    network = _network(tau=(0.02, 0.02))
    x = _x()
    q = quantize(network, load_target("loihi2"))
    for t in (q.encoder_weight, q.recurrent_weight, q.threshold):
        assert torch.equal(t, t.round())
    assert q.weight_bits_used() <= 8 and float(q.threshold.max()) < 2**17
    assert torch.unique(q.mem_code).numel() == 1
    ours, theirs = network(x, record=True), q.to_network()(x, record=True)
    assert theirs.spikes.sum() > 0
    assert (ours.spikes != theirs.spikes.float()).float().mean() < 0.2


def test_violated_limits_are_refused_with_each_one_named():
    network = _network(n=1200, inputs=(40,))
    with pytest.raises(ExportError) as err:
        quantize(network, load_target("xylo-audio2"))
    assert "xylo-audio2: 40 inputs > 16" in str(err.value) and "1200 hidden neurons > 1000" in str(err.value)
    with pytest.raises(ExportError, match="loihi2: .*one membrane decay per layer"):
        quantize(_network(), load_target("loihi2"))
    with pytest.raises(ExportError, match="input weights reach 200 hidden neurons > 128"):
        quantize(_network(n=200, inputs=(8,)), load_target("xylo-audio3"))


def test_xylo_maps_decays_to_bit_shifts_and_resets_by_subtraction():
    network = _network(n=100, inputs=(8,))
    q = quantize(network, load_target("xylo-audio2"))
    tau = network.maelstrom.tau_mem.double()
    np.testing.assert_array_equal(q.mem_code.numpy(), torch.round(torch.log2(tau / network.maelstrom.dt)).numpy())
    assert q.to_network().maelstrom.target.reset == "subtract"


def test_netx_file_follows_lava_dl_layout(tmp_path):
    network = _network(tau=(0.02, 0.02))
    q = quantize(network, load_target("loihi2"))
    path = write_netx(q, tmp_path / "net.h5")
    with h5py.File(path) as f:
        layers = f["layer"]
        assert [layers[k]["type"][0].decode() for k in ("0", "1", "2")] == ["input", "dense_rec", "dense"]
        assert list(layers["0/shape"][()]) == [12]
        res = layers["1"]
        assert res["weight"].shape == (80, 12) and res["weight_rec"].shape == (80, 80)
        assert res["weight"].dtype.kind == "i" and np.abs(res["weight_rec"][()]).max() <= 127
        neuron = res["neuron"]
        assert neuron["type"][()].decode() == "CUBA"
        assert int(neuron["vDecay"][()]) == int(q.mem_code[0]) and 0 <= int(neuron["iDecay"][()]) <= 4095
        assert int(neuron["vThMant"][()]) == int(q.threshold[0])
        assert {"refDelay", "gradedSpike"} <= set(neuron)
        assert layers["2/weight"].shape == (3, 80)


def test_netx_refuses_what_it_cannot_hold_and_writes_nothing(tmp_path):
    q = quantize(_network(), load_target("float"))
    with pytest.raises(ExportError, match="netx: needs an integer target"):
        write_netx(q, tmp_path / "x.h5")
    q = quantize(_network(tau=(0.02, 0.02), features=("trace", "current")), load_target("loihi2"))
    with pytest.raises(ExportError, match="netx: the readout reads trace, current"):
        write_netx(q, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
    with h5py.File(write_netx(q, tmp_path / "r.h5", readout=False)) as f:
        assert sorted(f["layer"]) == ["0", "1"]


@pytest.fixture
def hardware_run(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--dataset", "randman", "--task-option", "n_channels=10", "--task-option", "noise_channels=4"]
    args += ["--task-option", "train_per_class=4", "--task-option", "test_per_class=2", "--task-option", "n_steps=20"]
    args += [
        "--encoder",
        "linear",
        "--no-feedback",
        "--readout",
        "ridge",
        "--encoder-rule",
        "frozen",
        "--neurons",
        "60",
    ]
    args += ["--features", "trace", "--tau-mem", "0.02", "0.02", "--tau-syn", "0.005", "0.005", "--quiet"]
    args += ["--out", str(run)]
    assert main(args) == 0
    return run


def test_cli_exports_nir_and_netx_and_refuses_with_the_limit_named(hardware_run, tmp_path, capsys):
    assert main(["export", str(hardware_run), "--format", "nir", "-o", str(tmp_path / "f.nir")]) == 0
    assert load_nir(tmp_path / "f.nir").maelstrom.n_neurons == 60
    capsys.readouterr()
    out = tmp_path / "l.h5"
    assert main(["export", str(hardware_run), "--format", "netx", "--target", "loihi2", "-o", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == "loihi2" and report["membrane_decays"] == 1 and out.is_file()
    assert "host_front_end" not in report  # randman frames go in as they are
    args = ["export", str(hardware_run), "--format", "nir", "--target", "xylo-audio2", "-o", str(tmp_path / "x.nir")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("maelstrom: error: xylo-audio2:") and "10 outputs > 8" in err and err.count("\n") == 1
    assert not (tmp_path / "x.nir").exists()
    assert main(["export", str(hardware_run), "--format", "netx", "-o", str(tmp_path / "f.h5")]) == 2
    assert "float takes nir, not netx" in capsys.readouterr().err
