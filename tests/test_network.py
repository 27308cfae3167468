"""MaelstromNetwork inference: windowed, with memory that does not grow with the sequence."""

from __future__ import annotations

import pytest
import torch

from .conftest import tiny_network


@pytest.mark.parametrize("feedback", [False, True])
def test_inference_in_windows_gives_the_numbers_of_one_window(tiny_task, feedback):
    net = tiny_network(tiny_task, rule_feedback=feedback).eval()
    x = torch.stack([tiny_task.test[i][0] for i in range(6)])
    whole = net(x, record=True, window=x.shape[1])
    for window in (1, 7, 25):
        out = net(x, record=True, window=window)
        assert torch.equal(out.spikes, whole.spikes)
        # A 6-row product (one step of 6 samples) may take another matmul kernel: rounding only.
        for a, b in zip((out.logits, *out.state.neurons), (whole.logits, *whole.state.neurons), strict=True):
            assert torch.allclose(a, b, rtol=1e-6, atol=1e-6)
        assert out.currents is None
    with pytest.raises(ValueError, match="window must be >= 1"):
        net(x, window=0)
    with pytest.raises(ValueError, match="no time steps"):
        net(x[:, :0])


def test_feedback_reaches_the_encoder_one_step_later(tiny_task):
    """The closed loop is the definition: ``u_t = encoder(x_t, p_{t-1})`` with ``p`` the softmax of
    the readout's last scores, whatever the window; and the feedback changes the spikes."""
    net = tiny_network(tiny_task).double().eval()
    with torch.no_grad():
        net.encoder.out.weight[:, -net.n_classes :].normal_(0.0, 20.0, generator=torch.Generator().manual_seed(1))
    x = torch.stack([tiny_task.test[i][0] for i in range(5)]).double()
    out = net(x, record=True, window=7)

    neurons, trace, p = net.init_state(len(x))
    parts = {}
    for t in range(x.shape[1]):
        neurons = net.maelstrom.step(net.encoder(x[:, t], p), neurons)
        trace = trace * net.trace_decay + neurons.z
        parts.update(trace=trace, current=neurons.i, voltage=neurons.v)
        scores = net.readout(torch.cat([parts[name] for name in net.features], -1))
        assert torch.equal(neurons.z, out.spikes[:, t]), t
        assert torch.allclose(scores, out.logits[:, t], rtol=1e-9, atol=1e-9), t
        p = torch.softmax(scores, -1)

    with torch.no_grad():
        net.encoder.out.weight[:, -net.n_classes :] = 0.0
    assert not torch.equal(net(x, record=True, window=7).spikes, out.spikes)
