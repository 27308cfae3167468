"""Trainable input networks (encoders): event data in, input currents for the maelstrom out.

Every encoder takes the current input frame and the top-down feedback (the readout's previous
prediction, detached), so it can steer the maelstrom. The output layer's initial weights are
multiplied by ``gain`` so that even an untrained (frozen) encoder drives the maelstrom into
spiking; scaling the weights rather than the output keeps Adam's step size relative to them.
The feedback weights start at zero: an untrained network runs as a plain feed-forward reservoir,
and a trained encoder learns how to use the feedback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class Encoder(nn.Module):
    """Base class: ``forward(x [batch, *input_shape], feedback [batch, F] | None) -> [batch, n_out]``.

    A subclass defines ``body(x) -> [batch, features]``; the output layer ``out`` (one
    ``nn.Linear``) reads the body's features followed by the feedback (``head_input``).
    """

    def __init__(self, input_shape: Sequence[int], n_out: int, feedback_features: int, gain: float) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_out = n_out
        self.feedback_features = feedback_features
        self.gain = gain

    def _init_output(self, n_in: int) -> None:
        self.out = nn.Linear(n_in, self.n_out)
        with torch.no_grad():
            self.out.weight.mul_(self.gain)
            self.out.bias.zero_()
            if self.feedback_features:
                self.out.weight[:, -self.feedback_features :] = 0.0

    def body_features(self, x: Tensor) -> Tensor:
        """The body's features for input frames ``x [batch, *input_shape]``: the part of the output
        layer's input that does not depend on the feedback."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{type(self).__name__} expects input frames of shape {self.input_shape}, got {tuple(x.shape[1:])}"
            )
        return self.body(self._frames(x))

    def join(self, hidden: Tensor, feedback: Tensor | None) -> Tensor:
        """What the output layer reads: the body's features ``hidden``, then the feedback."""
        if not self.feedback_features:
            return hidden
        if feedback is None:
            raise ValueError(f"{type(self).__name__} was built with feedback; pass the feedback tensor")
        return torch.cat([hidden, feedback.to(hidden.dtype)], dim=-1)

    def head_input(self, x: Tensor, feedback: Tensor | None = None) -> Tensor:
        """What the output layer reads for input frames ``x``: the body's features, then the feedback."""
        return self.join(self.body_features(x), feedback)

    def split_output(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """The output layer taken apart for body features ``hidden [..., H]``: the currents without
        the feedback, and the feedback's weights ``[F, n_out]``; the currents for a feedback ``p``
        are ``drive + p @ weights`` (what ``out(join(hidden, p))`` gives, up to rounding)."""
        h = hidden.shape[-1]
        return nn.functional.linear(hidden, self.out.weight[:, :h], self.out.bias), self.out.weight[:, h:].T

    def _frames(self, x: Tensor) -> Tensor:
        """The body's input for frames ``x``."""
        return x

    def forward(self, x: Tensor, feedback: Tensor | None = None) -> Tensor:
        return self.out(self.head_input(x, feedback))


def _linear_stack(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers)


class MLPEncoder(Encoder):
    """Channel data (e.g. SHD's 700 channels): flatten, ReLU hidden layers, linear output.

    With ``hidden=()`` it is a single linear map (a linear encoder).
    """

    def __init__(
        self,
        input_shape: Sequence[int] | int,
        n_out: int,
        hidden: Sequence[int] = (128,),
        feedback_features: int = 0,
        gain: float = 1.0,
    ) -> None:
        shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
        super().__init__(shape, n_out, feedback_features, gain)
        n_in = math.prod(shape)
        self.body = _linear_stack([n_in, *hidden])
        self._init_output((hidden[-1] if hidden else n_in) + feedback_features)

    def _frames(self, x: Tensor) -> Tensor:
        return x.flatten(1).to(self.out.weight.dtype)


class ConvEncoder(Encoder):
    """2-D event frames (e.g. N-MNIST's 2x34x34): strided convolutions, then a linear output;
    the feedback joins after the convolutions."""

    def __init__(
        self,
        input_shape: Sequence[int],
        n_out: int,
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
        feedback_features: int = 0,
        gain: float = 1.0,
    ) -> None:
        super().__init__(input_shape, n_out, feedback_features, gain)
        if len(self.input_shape) != 3:
            raise ValueError(f"ConvEncoder needs (channels, height, width), got {self.input_shape}")
        layers: list[nn.Module] = []
        c_in = self.input_shape[0]
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, kernel_size, stride=2, padding=kernel_size // 2), nn.ReLU()]
            c_in = c_out
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.body(torch.zeros(1, *self.input_shape)).shape[1]
        self._init_output(n_flat + feedback_features)
