"""Spike recordings streamed to HDF5: the same spikes as an in-memory run, atomic, checked on read."""

from __future__ import annotations

import pytest
import torch

from spiking_maelstrom import Maelstrom, MaelstromConfig
from spiking_maelstrom.recording import read_spikes, record_to_hdf5


def test_streamed_recording_equals_the_in_memory_run(tmp_path):
    maelstrom = Maelstrom(MaelstromConfig(n_neurons=80, seed=2))
    currents = 3.0 * torch.rand(3, 50, 80, generator=torch.Generator().manual_seed(0))
    spikes, final = maelstrom.run(currents)
    state = record_to_hdf5(maelstrom, currents, tmp_path / "run.h5", chunk_steps=7)
    assert spikes.sum() > 0 and torch.equal(read_spikes(tmp_path / "run.h5"), spikes)
    assert torch.equal(read_spikes(tmp_path / "run.h5", slice(10, 20)), spikes[:, 10:20])
    assert torch.equal(state.v, final.v)
    generated = (c for c in currents.split(11, dim=1))  # chunks made on the fly
    record_to_hdf5(maelstrom, generated, tmp_path / "gen.h5")
    assert torch.equal(read_spikes(tmp_path / "gen.h5"), spikes)


def test_a_failed_recording_leaves_no_file(tmp_path):
    maelstrom = Maelstrom(MaelstromConfig(n_neurons=20, seed=0))
    chunks = [torch.rand(2, 5, 20), torch.rand(3, 5, 20)]
    with pytest.raises(ValueError, match="every chunk needs batch 2, got 3"):
        record_to_hdf5(maelstrom, chunks, tmp_path / "run.h5")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"current chunks must be \[batch, time, 20\]"):
        record_to_hdf5(maelstrom, torch.rand(2, 5, 21), tmp_path / "run.h5")


def test_reading_something_else_names_the_file(tmp_path):
    bad = tmp_path / "notes.h5"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="notes.h5: not a readable HDF5 spike recording"):
        read_spikes(bad)
