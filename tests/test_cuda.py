"""CUDA path: the same maelstrom and the same spikes as on the CPU, and training runs there.
Skipped without a CUDA GPU (CI has none)."""

from __future__ import annotations

import pytest
import torch

from spiking_maelstrom import Maelstrom, MaelstromConfig, TrainConfig, Trainer, load_task

from .conftest import TINY_RANDMAN, tiny_network

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none on this machine"),
]


def test_cuda_maelstrom_matches_cpu_in_float64():
    config = MaelstromConfig(n_neurons=300, seed=2)
    cpu = Maelstrom(config, device="cpu", dtype=torch.float64)
    gpu = Maelstrom(config, device="cuda", dtype=torch.float64)
    assert torch.equal(cpu.weight, gpu.weight.cpu())
    currents = 1.5 * torch.rand(4, 80, 300, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spikes_cpu, _ = cpu.run(currents)
    spikes_gpu, _ = gpu.run(currents.cuda())
    assert spikes_cpu.sum() > 0
    assert torch.equal(spikes_cpu, spikes_gpu.cpu())


def test_auto_device_is_cuda_and_training_runs_there():
    task = load_task("randman", **TINY_RANDMAN)
    net = tiny_network(task).to("cuda")
    trainer = Trainer(net, task, TrainConfig(epochs=1, encoder_rule="local", batch_size=16), progress=False)
    trainer.fit()
    assert trainer.evaluate(task.test)["samples"] == 30
    assert Maelstrom(MaelstromConfig(n_neurons=10), device="auto").weight.is_cuda
