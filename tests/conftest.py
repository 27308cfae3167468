"""Shared fixtures: tiny tasks and networks that train in seconds on a laptop CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spiking_maelstrom import Feedback, Maelstrom, MaelstromConfig, NetworkConfig, Probe, build_network, load_task
from spiking_maelstrom.readouts import AffineReadout

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY_RANDMAN = dict(n_channels=40, noise_channels=20, n_steps=30, train_per_class=6, test_per_class=3)


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture
def tiny_task():
    return load_task("randman", **TINY_RANDMAN)


def tiny_network(task, rule_feedback: bool = True, n_neurons: int = 60, seed: int = 0, **kwargs):
    config = NetworkConfig(
        input_shape=task.input_shape,
        n_classes=task.n_classes,
        maelstrom=MaelstromConfig(n_neurons=n_neurons, seed=seed),
        feedback=rule_feedback,
        seed=seed,
        **kwargs,
    )
    return build_network(config)


def run_closed_loop(m: Maelstrom, currents: torch.Tensor, head: torch.nn.Module | None = None):
    """Run ``currents`` on ``m`` (on its device) in two calls with a feedback loop onto a fixed
    random readout (``head``: layers after its affine map); returns, on the CPU, the spikes, the
    feedback each step got and the last one."""
    batch, steps, n = currents.shape
    g = torch.Generator().manual_seed(3)
    kw = dict(generator=g, dtype=currents.dtype)
    classes, width = 4, 4 if head is None else 6
    device = m.weight.device
    features = torch.empty(batch, steps, 2 * n, dtype=currents.dtype, device=device)
    probe = Probe(("trace", "current"), features, torch.zeros(batch, n, dtype=currents.dtype, device=device), 0.9)
    loop = Feedback(
        weight=(3.0 * torch.randn(classes, n, **kw)).to(device),
        readout=AffineReadout(
            weight=(torch.randn(width, 2 * n, **kw) / n**0.5).to(device),
            bias=torch.randn(width, **kw).to(device),
            head=head,
        ),
        p=torch.full((batch, classes), 1.0 / classes, dtype=currents.dtype, device=device),
        out=torch.empty(batch, steps, classes, dtype=currents.dtype, device=device),
    )
    currents = currents.to(device)
    first, state = m.run(currents[:, :20], probe=probe, feedback=loop)
    rest, _ = m.run(currents[:, 20:], state, probe=probe, feedback=loop)
    return torch.cat([first, rest], 1).cpu(), loop.out.cpu(), loop.p.cpu()
