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
