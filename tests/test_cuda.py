"""CUDA path: the same maelstrom and the same spikes as on the CPU, and training runs there.
Skipped without a CUDA GPU (CI has none)."""

from __future__ import annotations

import pytest
import torch

from spiking_maelstrom import Maelstrom, MaelstromConfig, TrainConfig, Trainer, load_task
from spiking_maelstrom.backends import triton_cell
from spiking_maelstrom.neuron import CubaLIFState, cuba_lif_step

from .conftest import TINY_RANDMAN, run_closed_loop, tiny_network

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
    trainer = Trainer(net, task, TrainConfig(epochs=1, encoder_rule="local", batch_size=16))
    trainer.fit()
    assert trainer.evaluate(task.test)["samples"] == 30
    assert Maelstrom(MaelstromConfig(n_neurons=50), device="auto").weight.is_cuda


def test_graph_backend_gives_the_eager_spikes_and_state_across_chunks():
    """CUDA graphs replay 64-step chunks (plus a shorter last one); spikes, final state and a
    continued run must equal the step-by-step dense loop exactly (same kernels, float64)."""
    config = MaelstromConfig(n_neurons=200, seed=3)
    eager = Maelstrom(config, device="cuda", dtype=torch.float64, backend="dense")
    graph = Maelstrom(config, device="cuda", dtype=torch.float64)  # auto: graph in run() on CUDA
    currents = 1.5 * torch.rand(3, 150, 200, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    currents = currents.cuda()
    spikes_eager, state_eager = eager.run(currents)
    spikes_graph, state_graph = graph.run(currents)
    assert spikes_eager.sum() > 0
    assert torch.equal(spikes_eager, spikes_graph)
    for a, b in zip(state_eager, state_graph, strict=True):
        assert torch.equal(a, b)
    # Continuing from a state, and without recording, gives the same as one long run.
    _, mid = graph.run(currents[:, :70], record=False)
    rest, end = graph.run(currents[:, 70:], mid)
    assert torch.equal(rest, spikes_eager[:, 70:])
    assert torch.equal(end.v, state_eager.v)
    # Moving the maelstrom drops the graphs that point at the old buffers.
    graph.to(torch.float32)
    assert not graph.engine.graph._graphs
    assert graph.run(currents.float())[0].shape == spikes_eager.shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_step_is_bit_exact_with_the_pytorch_step(dtype):
    """The Triton step rounds every operation as PyTorch does (no fused multiply-add)."""
    if not triton_cell.available():
        pytest.skip("Triton is not installed")
    g = torch.Generator().manual_seed(4)
    batch, n = 5, 333  # not a multiple of the kernel's block
    state = CubaLIFState(*(torch.randn(batch, n, generator=g, dtype=dtype).cuda() for _ in range(3)))
    current = 2 * torch.randn(batch, n, generator=g, dtype=dtype).cuda()
    beta, alpha = (torch.rand(n, generator=g, dtype=dtype).cuda() for _ in range(2))
    potentials = torch.tensor([0.7, -0.2, 0.1], dtype=dtype).cuda()
    got = triton_cell.cuba_lif_step(current, state, beta, alpha, potentials)
    want = cuba_lif_step(current, state, beta, alpha, 0.7, -0.2, 0.1)
    assert want.z.sum() > 0
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


def test_a_feedback_loop_on_cuda_gives_the_cpu_spikes_and_predictions_in_float64():
    config = MaelstromConfig(n_neurons=80, seed=5)
    currents = 0.8 * torch.rand(3, 45, 80, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    cpu = run_closed_loop(Maelstrom(config, dtype=torch.float64, backend="event"), currents)
    gpu = run_closed_loop(Maelstrom(config, device="cuda", dtype=torch.float64), currents)
    assert torch.equal(gpu[0], cpu[0]) and cpu[0].sum() > 0
    for a, b in zip(gpu[1:], cpu[1:], strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
