"""Readouts (output networks): per-step predictions from the maelstrom's state features.

``LinearReadout`` and ``MLPReadout`` are trained by their exact gradient; ``RidgeReadout`` is the
classic liquid-state-machine baseline, fitted in closed form from streamed sufficient statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn


class FeatureNorm(nn.Module):
    """Standardises features with running (exponential moving average) statistics.

    The statistics are updated in training mode while gradients are on (that is, inside training
    steps, not in ``torch.no_grad`` inference) and used as they are otherwise, so the map is
    always a fixed per-feature affine transform: no batch dependence, foldable into the next
    affine layer for export. Without it, gradient-trained readouts on raw spike traces and
    currents (whose scales differ by orders of magnitude across neurons) barely learn.
    """

    def __init__(self, n_features: int, momentum: float = 0.05, eps: float = 1e-3) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("var", torch.ones(n_features))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, x: Tensor) -> Tensor:
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                flat = x.detach().reshape(-1, x.shape[-1])
                mean = flat.mean(0)
                centred = flat - mean
                var = centred.mul_(centred).mean(0)  # 3x faster on the CPU than Tensor.var over dim 0
                m = 1.0 if not bool(self.initialised) else self.momentum
                self.mean.lerp_(mean.to(self.mean.dtype), m)
                self.var.lerp_(var.to(self.var.dtype), m)
                self.initialised.fill_(True)
        return torch.sub(x, self.mean).mul_(torch.rsqrt(self.var + self.eps))


def fold_normalisation(norm: FeatureNorm, linear: nn.Linear) -> tuple[Tensor, Tensor]:
    """``linear(norm(x))`` as one affine map ``(weight, bias)`` on the raw features, computed in
    float64: what an export writes, and one product per step instead of three passes."""
    scale = torch.rsqrt(norm.var.double() + norm.eps)
    weight = linear.weight.double() * scale
    bias = linear.bias.double() - weight @ norm.mean.double()
    return weight.to(linear.weight.dtype), bias.to(linear.bias.dtype)


class LinearReadout(nn.Sequential):
    """Standardised features, then one affine map to class scores, applied at every step."""

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__(FeatureNorm(n_features), nn.Linear(n_features, n_classes))

    @torch.no_grad()
    def load_ridge(self, ridge: RidgeReadout) -> None:
        """Start from a fitted ridge solution: the normalisation takes the ridge data's moments and
        the affine map is re-expressed on the normalised features (same outputs as ``ridge``)."""
        norm, linear = self[0], self[1]
        mean, var = ridge.feature_moments()
        norm.mean.copy_(mean)
        norm.var.copy_(var)
        norm.initialised.fill_(True)
        scale = torch.sqrt(norm.var + norm.eps)
        linear.weight.copy_(ridge.weight * scale)
        linear.bias.copy_(ridge.bias + ridge.weight @ norm.mean)


class MLPReadout(nn.Sequential):
    """Standardised features, ReLU hidden layers, then an affine map to class scores, every step."""

    def __init__(self, n_features: int, n_classes: int, hidden: Sequence[int] = (128,)) -> None:
        layers: list[nn.Module] = [FeatureNorm(n_features)]
        n_in = n_features
        for n_out in hidden:
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
            n_in = n_out
        layers.append(nn.Linear(n_in, n_classes))
        super().__init__(*layers)


class RidgeReadout(nn.Module):
    """Closed-form ridge regression onto one-hot targets (the classic LSM readout).

    Stream feature/target pairs through :meth:`accumulate` (memory O(F^2), independent of the data
    size), then :meth:`solve`. Features are standardised inside the solve (``alpha`` is the
    penalty on the correlation matrix) and the result is folded into a plain affine map
    (``weight``, ``bias``), exportable like the linear layer of ``LinearReadout``.
    """

    def __init__(self, n_features: int, n_classes: int, alpha: float = 1e-2) -> None:
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"ridge alpha must be > 0, got {alpha}")
        self.alpha = alpha
        self.n_classes = n_classes
        self.register_buffer("weight", torch.zeros(n_classes, n_features))
        self.register_buffer("bias", torch.zeros(n_classes))
        self.register_buffer("fitted", torch.tensor(False))
        self.reset_statistics()

    def reset_statistics(self) -> None:
        """Forget the accumulated statistics (allocated again, on the features' device, by the next
        :meth:`accumulate`: a fitted readout kept for inference holds none)."""
        self._count = 0.0
        self._stats: dict[str, Tensor] | None = None

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        f, c = self.weight.shape[1], self.n_classes
        return {"sum_x": (f,), "sum_y": (c,), "xx": (f, f), "xy": (f, c)}

    @torch.no_grad()
    def accumulate(self, features: Tensor, targets: Tensor, weights: Tensor | None = None) -> None:
        """Add samples: ``features [..., F]``, integer ``targets`` broadcast to ``features[..., 0]``,
        optional non-negative ``weights`` of the same shape (e.g. the task's readout mask)."""
        x = features.reshape(-1, features.shape[-1]).to(torch.float64)
        y = nn.functional.one_hot(targets.expand(features.shape[:-1]).reshape(-1), self.n_classes).to(x)
        w = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        if weights is not None:
            w = weights.expand(features.shape[:-1]).reshape(-1).to(x)
        if self._stats is None:
            self._stats = {key: x.new_zeros(shape) for key, shape in self._shapes().items()}
        xw = x * w[:, None]
        self._count += float(w.sum())
        self._stats["sum_x"] += xw.sum(0)
        self._stats["sum_y"] += (y * w[:, None]).sum(0)
        self._stats["xx"] += xw.T @ x
        self._stats["xy"] += xw.T @ y

    def statistics(self) -> dict[str, Tensor]:
        """The accumulated sufficient statistics, float64 (empty before any data): what a continual
        learner checkpoints, ``O(F^2)`` bytes whatever the amount of data."""
        if self._stats is None:
            return {}
        return {"count": torch.tensor(self._count, dtype=torch.float64), **self._stats}

    def load_statistics(self, statistics: dict[str, Tensor]) -> None:
        """Continue from :meth:`statistics` (a ``ValueError`` if their shapes do not fit this readout)."""
        if not statistics:
            self.reset_statistics()
            return
        shapes = {"count": (), **self._shapes()}
        if set(statistics) != set(shapes) or any(tuple(statistics[k].shape) != v for k, v in shapes.items()):
            features = self.weight.shape[1]
            raise ValueError(f"ridge statistics {sorted(statistics)} do not fit a readout of {features} features")
        self._count = float(statistics["count"])
        self._stats = {k: v.to(torch.float64) for k, v in statistics.items() if k != "count"}

    def _accumulated(self) -> dict[str, Tensor]:
        if self._stats is None or self._count <= 0:
            raise RuntimeError("the ridge readout has no data accumulated")
        return self._stats

    def feature_moments(self) -> tuple[Tensor, Tensor]:
        """Mean and variance of the accumulated features (in the readout's dtype)."""
        stats = self._accumulated()
        mean = stats["sum_x"] / self._count
        var = (torch.diagonal(stats["xx"]) / self._count - mean**2).clamp_min(0)
        return mean.to(self.weight.dtype), var.to(self.weight.dtype)

    @torch.no_grad()
    def solve(self) -> None:
        """Fit ``weight`` and ``bias`` from the accumulated statistics."""
        stats, n = self._accumulated(), self._count
        mean_x, mean_y = stats["sum_x"] / n, stats["sum_y"] / n
        cov = stats["xx"] / n - torch.outer(mean_x, mean_x)
        cross = stats["xy"] / n - torch.outer(mean_x, mean_y)
        scale = torch.diagonal(cov).clamp_min(0).sqrt() + 1e-6
        corr = cov / torch.outer(scale, scale)
        eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        w = torch.linalg.solve(corr + self.alpha * eye, cross / scale[:, None]) / scale[:, None]
        self.weight.copy_(w.T.to(self.weight.dtype))
        self.bias.copy_((mean_y - mean_x @ w).to(self.bias.dtype))
        self.fitted.fill_(True)

    def forward(self, features: Tensor) -> Tensor:
        return nn.functional.linear(features, self.weight, self.bias)


class AffineReadout(NamedTuple):
    """A readout as an affine map of the raw features and what follows it:
    ``scores = head(features weight^T + bias)``, ``weight [H, F]``, ``bias [H]``; ``head`` is None
    for a linear or ridge readout (scores = the affine map) and an MLP readout's hidden layers
    otherwise. The fused CPU kernel runs the loop itself only when ``head`` is None."""

    weight: Tensor
    bias: Tensor
    head: nn.Module | None = None

    def __call__(self, features: Tensor) -> Tensor:
        """The scores of ``features [B, F]``."""
        scores = torch.addmm(self.bias, features, self.weight.T)
        return scores if self.head is None else self.head(scores)

    def to(self, dtype: torch.dtype) -> AffineReadout:
        """The affine map in ``dtype`` (the head as it is)."""
        return self._replace(weight=self.weight.to(dtype), bias=self.bias.to(dtype))


def readout_classes(readout: nn.Module) -> int:
    """How many classes ``readout`` (any of this module's readouts) scores."""
    return readout.n_classes if isinstance(readout, RidgeReadout) else readout[-1].out_features


def affine_split(readout: nn.Module) -> AffineReadout:
    """``readout`` as an :class:`AffineReadout` (the feature normalisation folded into the affine
    map, with its statistics as they are now): the same scores up to rounding, in one product per
    step. The one place a readout is folded; the export refuses what has a ``head``."""
    if isinstance(readout, RidgeReadout):
        return AffineReadout(readout.weight, readout.bias)
    if isinstance(readout, LinearReadout | MLPReadout):
        weight, bias = fold_normalisation(readout[0], readout[1])
        return AffineReadout(weight, bias, nn.Sequential(*list(readout)[2:]) if len(readout) > 2 else None)
    kinds = "a LinearReadout, MLPReadout or RidgeReadout"
    raise TypeError(f"only {kinds} folds into an affine map, not {type(readout).__name__}")
