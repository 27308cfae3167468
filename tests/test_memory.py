"""What gives a maelstrom memory: spike-frequency adaptation, and the real-data pair tasks that need it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from spiking_maelstrom import Maelstrom, MaelstromConfig, Probe, build_network, load_task, network_config_for
from spiking_maelstrom.backends import fused_cpu
from spiking_maelstrom.cli import main
from spiking_maelstrom.data.pairs import RecordingPairs, pair_mask
from spiking_maelstrom.export import to_nir
from spiking_maelstrom.maelstrom import MaelstromParameters
from spiking_maelstrom.neuron import AdaptiveLIFState, CubaLIFState, MaelstromState, adaptive_lif_step, cuba_lif_step

from .conftest import SHARED_DATA


def test_adaptation_raises_the_threshold_per_spike_and_relaxes():
    state = AdaptiveLIFState(*(torch.zeros(1, 2) for _ in range(4)))
    beta, alpha, rho = torch.full((2,), 0.5), torch.zeros(2), torch.tensor([0.9, 0.5])
    drive = torch.tensor([[3.0, 3.0]])  # v' = 1.5 > 1: both spike at rest
    state = adaptive_lif_step(drive, state, beta, alpha, rho, 0.6, 1.0, 0.0, 0.0)
    assert state.z.tolist() == [[1.0, 1.0]] and state.a.tolist() == [[1.0, 1.0]]
    state = adaptive_lif_step(drive, state, beta, alpha, rho, 0.6, 1.0, 0.0, 0.0)  # threshold 1.6 > 1.5
    assert state.z.tolist() == [[0.0, 0.0]]
    assert torch.allclose(state.a, torch.tensor([[0.9, 0.5]]))
    plain = cuba_lif_step(drive, CubaLIFState(*state[:3]), beta, alpha, 1.0, 0.0, 0.0)
    assert plain.z.tolist() == [[1.0, 1.0]]  # without adaptation the same input fires


def test_an_adaptive_maelstrom_fires_less_and_every_cpu_backend_agrees():
    currents = 1.5 * torch.rand(3, 80, 150, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    plain = Maelstrom(MaelstromConfig(n_neurons=150, seed=2), dtype=torch.float64).run(currents)[0]
    config = MaelstromConfig(n_neurons=150, seed=2, adaptation=0.3, tau_adapt=(0.05, 0.2))
    spikes = {
        b: Maelstrom(config, dtype=torch.float64, backend=b).run(currents)[0]
        for b in ("dense", "event", "sparse", "auto")
    }
    assert 0 < spikes["dense"].sum() < 0.8 * plain.sum()
    assert all(torch.equal(spikes["dense"], s) for s in spikes.values())
    m = Maelstrom(config)
    assert m.tau_adapt.min() >= 0.05 and m.tau_adapt.max() <= 0.2 and m.tau_adapt.std() > 0
    same = Maelstrom(MaelstromConfig(n_neurons=150, seed=2, adaptation=0.3, tau_adapt=(0.05, 0.2)))
    assert torch.equal(m.weight, same.weight) and torch.equal(m.tau_adapt, same.tau_adapt)
    unadapted = Maelstrom(MaelstromConfig(n_neurons=150, seed=2))
    assert torch.equal(m.weight, unadapted.weight) and torch.equal(m.tau_mem, unadapted.tau_mem)
    if fused_cpu.available():
        with pytest.raises(ValueError, match="no adaptation or delays in its kernel"):
            Maelstrom(config, backend="fused").run(currents.float())


def test_the_readout_can_read_the_adaptation_and_it_runs_on_in_parts():
    config = MaelstromConfig(n_neurons=60, seed=3, adaptation=0.2)
    m = Maelstrom(config)
    currents = 2 * torch.rand(2, 30, 60, generator=torch.Generator().manual_seed(0))
    probe = Probe(("trace", "adaptation"), torch.empty(2, 30, 120), torch.zeros(2, 60), 0.9)
    whole, state = m.run(currents, probe=probe)
    assert isinstance(state, MaelstromState) and torch.equal(probe.out[:, -1, 60:], state.a)
    first, mid = m.run(currents[:, :12])
    rest, _ = m.run(currents[:, 12:], mid)
    assert torch.equal(torch.cat([first, rest], 1), whole)
    with pytest.raises(ValueError, match="adaptation feature needs an adaptive maelstrom"):
        network_config_for(load_task("randman-memory", train_per_class=1, test_per_class=1), features=("adaptation",))


@pytest.mark.parametrize("delay", [1, 3])
def test_a_spike_reaches_its_target_after_its_synapses_delay(delay):
    weight = torch.tensor([[0.0, 0.0], [4.0, 0.0]], dtype=torch.float64)  # neuron 0 excites neuron 1
    config = MaelstromConfig(n_neurons=2, max_delay=4, spectral_radius=0.0)
    parameters = MaelstromParameters(
        weight,
        torch.tensor([True, True]),
        torch.full((2,), 0.01),
        torch.full((2,), 0.0011),
        None,
        (weight != 0).to(torch.int16) * delay,
    )
    m = Maelstrom(config, dtype=torch.float64, parameters=parameters)
    currents = torch.zeros(1, 8, 2, dtype=torch.float64)
    currents[0, 0, 0] = 50.0  # neuron 0 spikes at step 0 only
    probe = Probe(("current",), torch.empty(1, 8, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64), 0.5)
    spikes, _ = m.run(currents, probe=probe)
    assert spikes[0, :, 0].tolist() == [1.0] + [0.0] * 7
    arrived = probe.out[0, :, 1]
    assert torch.all(arrived[:delay] == 0) and arrived[delay] == 4.0


def test_delays_run_in_parts_alike_on_every_cpu_backend_and_only_delay():
    currents = 1.2 * torch.rand(2, 50, 120, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    config = MaelstromConfig(n_neurons=120, seed=1, max_delay=5, adaptation=0.1)
    whole = {b: Maelstrom(config, dtype=torch.float64, backend=b).run(currents)[0] for b in ("dense", "event", "auto")}
    assert all(torch.equal(whole["dense"], s) for s in whole.values())
    m = Maelstrom(config, dtype=torch.float64)
    first, mid = m.run(currents[:, :17])
    rest, _ = m.run(currents[:, 17:], mid)
    assert torch.equal(torch.cat([first, rest], 1), whole["dense"])
    delays = m.delay[m.weight != 0]
    assert delays.min() == 1 and delays.max() == 5 and torch.all(m.delay[m.weight == 0] == 0)
    plain = Maelstrom(MaelstromConfig(n_neurons=120, seed=1), dtype=torch.float64)
    assert torch.equal(plain.weight, m.weight)  # the delays are drawn after everything else
    undelayed = Maelstrom(MaelstromConfig(n_neurons=120, seed=1, adaptation=0.1), dtype=torch.float64).run(currents)[0]
    assert not torch.equal(undelayed, whole["dense"])


@pytest.mark.parametrize("mechanism", [{"adaptation": 0.1}, {"max_delay": 3}])
def test_an_adaptive_or_delayed_maelstrom_is_refused_by_the_exports(mechanism):
    task = load_task("randman-memory", train_per_class=1, test_per_class=1)
    net = build_network(network_config_for(task, maelstrom=dict(n_neurons=30, **mechanism), readout="ridge"))
    with pytest.raises(ValueError, match="no NIR node|no Delay nodes"):
        to_nir(net)


class _Recordings(Dataset):
    """Recordings whose frames say which they are: sample i is all i, of ``steps`` x 2."""

    def __init__(self, labels, speakers, steps=3):
        self.labels, self.steps = np.asarray(labels), steps
        self.groups = {"speaker": np.asarray(speakers)}

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return torch.full((self.steps, 2), float(i)), int(self.labels[i])


def test_pairs_are_first_gap_second_of_another_class_and_one_speaker():
    recordings = _Recordings(labels=[0, 1, 2, 0, 1, 2], speakers=[0, 0, 0, 1, 1, 1])
    pairs = RecordingPairs(recordings, gap_steps=2, target="first", pairs_per_recording=3, seed=1)
    assert len(pairs) == 18
    for k in range(len(pairs)):
        frames, label = pairs[k]
        i, j = int(frames[0, 0]), int(frames[-1, 0])
        assert frames.shape == (8, 2) and torch.all(frames[3:5] == 0) and torch.all(frames[5:] == j)
        assert label == recordings.labels[i] != recordings.labels[j]
        assert recordings.groups["speaker"][i] == recordings.groups["speaker"][j] == pairs.groups["speaker"][k]
    ordered = RecordingPairs(recordings, gap_steps=0, target="pair", seed=1)
    assert [ordered[k][1] for k in range(6)] == [
        3 * recordings.labels[i] + recordings.labels[j] for i, j in zip(ordered.first, ordered.second, strict=True)
    ]
    again = RecordingPairs(recordings, gap_steps=2, target="first", pairs_per_recording=3, seed=1)
    assert np.array_equal(again.second, pairs.second)
    assert pair_mask(3, 2).tolist() == [False] * 5 + [True] * 3
    with pytest.raises(ValueError, match="unknown pair target 'last'"):
        RecordingPairs(recordings, 1, target="last")
    with pytest.raises(ValueError, match="no partner of another class"):
        RecordingPairs(_Recordings([0, 0, 1], [0, 0, 1]), 1)


FSDD = SHARED_DATA / "fsdd-shd"


@pytest.mark.skipif(not FSDD.is_dir(), reason="../shared/data/fsdd-shd is absent")
def test_shd_pairs_keeps_the_splits_and_speakers_apart_and_trains_from_the_cli(tmp_path):
    task = load_task("shd-pairs", FSDD, cache_dir=tmp_path / "cache")
    single = load_task("shd", FSDD, dt_ms=20.0, n_steps=40, cache_dir=tmp_path / "cache")
    assert (len(task.train), len(task.test), task.n_classes) == (len(single.train), len(single.test), 10)
    assert task.mask.numel() == 85 and int(task.mask.sum()) == 40
    frames, label = task.test[7]
    first, second = task.test.first[7], task.test.second[7]
    assert torch.equal(frames[:40], single.test[first][0]) and torch.equal(frames[45:], single.test[second][0])
    assert label == single.test[first][1] != single.test[second][1]
    speakers = single.test.groups["speaker"]
    assert np.array_equal(speakers[task.test.first], speakers[task.test.second])
    out = tmp_path / "run"
    args = ["--dataset", "shd-pairs", "--data-dir", str(FSDD), "--task.cache_dir", str(tmp_path / "cache")]
    args += ["--neurons", "60", "--cv.folds", "0", "--network.maelstrom.spectral_radius", "3"]
    args += ["--network.maelstrom.adaptation", "0.2", "--network.maelstrom.max_delay", "3"]
    assert main(["train", *args, "--out", str(out), "--quiet"]) == 0
    config = (out / "config.toml").read_text()
    assert 'name = "shd-pairs"' in config and "adaptation = 0.2" in config and "max_delay = 3" in config
    trained = json.loads((out / "metrics.json").read_text())["test_accuracy"]
    assert main(["evaluate", str(out), "--json", str(tmp_path / "scores.json")]) == 0
    assert json.loads((tmp_path / "scores.json").read_text())["accuracy"] == trained
