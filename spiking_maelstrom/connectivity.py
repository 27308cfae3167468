"""Random recurrent connectivity for the maelstrom: Dale's law, per-pathway probabilities,
an optional distance-dependent 3-D column (Maass, Natschlaeger & Markram 2002), and a global
scale set from a target spectral radius.

Weights are stored ``W[post, pre]``. Pathway names read presynaptic then postsynaptic type:
``"EI"`` is excitatory -> inhibitory, as in Maass et al. 2002.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

PATHWAYS = ("EE", "EI", "IE", "II")


@dataclass(frozen=True)
class Connectivity:
    """A drawn recurrent network: weights ``[post, pre]``, neuron types, grid positions."""

    weight: Tensor
    excitatory: Tensor
    positions: Tensor | None


def neuron_types(n: int, excitatory_fraction: float, generator: torch.Generator) -> Tensor:
    """Boolean mask of excitatory neurons: exactly ``round(n * fraction)`` of them, at random places."""
    n_exc = round(n * excitatory_fraction)
    excitatory = torch.zeros(n, dtype=torch.bool)
    excitatory[torch.randperm(n, generator=generator)[:n_exc]] = True
    return excitatory


def column_positions(n: int) -> Tensor:
    """Integer grid positions of ``n`` neurons in a column ``s x s x depth`` (Maass: 3x3x15 for 135)."""
    side = max(1, round((n / 5) ** (1 / 3)))
    depth = math.ceil(n / (side * side))
    grid = torch.stack(
        torch.meshgrid(torch.arange(side), torch.arange(side), torch.arange(depth), indexing="ij"), -1
    ).reshape(-1, 3)
    order = torch.argsort(grid[:, 2] * side * side + grid[:, 0] * side + grid[:, 1])
    return grid[order][:n].to(torch.float64)


def pathway_matrix(excitatory: Tensor, values: dict[str, float]) -> Tensor:
    """``[post, pre]`` matrix holding ``values[pre type + post type]`` for every pair."""
    missing = set(PATHWAYS) - set(values)
    if missing:
        raise ValueError(f"connection values need every pathway {PATHWAYS}; missing {sorted(missing)}")
    pre_e = excitatory[None, :]
    post_e = excitatory[:, None]
    out = torch.empty(len(excitatory), len(excitatory), dtype=torch.float64)
    out[pre_e & post_e] = values["EE"]
    out[pre_e & ~post_e] = values["EI"]
    out[~pre_e & post_e] = values["IE"]
    out[~pre_e & ~post_e] = values["II"]
    return out


def connection_probability(
    excitatory: Tensor,
    probabilities: dict[str, float],
    positions: Tensor | None = None,
    length_scale: float = 2.0,
) -> Tensor:
    """Connection probability per pair; with ``positions`` it falls off as ``exp(-(d/length_scale)^2)``."""
    for name, p in probabilities.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"connection probability {name}={p} is outside [0, 1]")
    prob = pathway_matrix(excitatory, probabilities)
    if positions is not None:
        distance = torch.cdist(positions, positions)
        prob = prob * torch.exp(-((distance / length_scale) ** 2))
    prob.fill_diagonal_(0.0)
    return prob


def balance_inhibition(weight: Tensor, excitatory: Tensor) -> Tensor:
    """Scale each neuron's inhibitory inputs so its excitatory and inhibitory totals cancel."""
    exc_sum = weight[:, excitatory].sum(1)
    inh_sum = -weight[:, ~excitatory].sum(1)
    gain = torch.where(inh_sum > 0, exc_sum / inh_sum.clamp_min(1e-300), torch.ones_like(inh_sum))
    out = weight.clone()
    out[:, ~excitatory] *= gain[:, None]
    return out


def spectral_radius(weight: Tensor, method: str = "eigenvalues") -> float:
    """Spectral radius: exact (``"eigenvalues"``, O(N^3)) or the circular-law estimate
    ``||W||_F / sqrt(N)`` (``"circular-law"``, O(N^2); good for balanced random matrices)."""
    w = weight.to(torch.float64)
    if method == "eigenvalues":
        return float(torch.linalg.eigvals(w).abs().max())
    if method == "circular-law":
        return float(torch.linalg.norm(w) / math.sqrt(w.shape[0]))
    raise ValueError(f"unknown spectral radius method {method!r}: use 'eigenvalues' or 'circular-law'")


def draw_connectivity(
    n: int,
    *,
    excitatory_fraction: float,
    probabilities: dict[str, float],
    topology: str,
    length_scale: float,
    weight_spread: float,
    inhibitory_scale: float | None,
    radius: float,
    radius_method: str,
    generator: torch.Generator,
) -> Connectivity:
    """Draw the whole recurrent network on the CPU in float64, reproducibly from ``generator``.

    Magnitudes are log-normal (``weight_spread`` = sigma of the log) with mean 1; the sign follows
    the presynaptic type (Dale's law). Inhibition is balanced per neuron when
    ``inhibitory_scale`` is None, else multiplied by it. Finally the matrix is scaled to the target
    spectral ``radius``.
    """
    if n < 2:
        raise ValueError(f"a maelstrom needs at least 2 neurons, got {n}")
    if not 0.0 < excitatory_fraction <= 1.0:
        raise ValueError(f"excitatory_fraction must be in (0, 1], got {excitatory_fraction}")
    if topology not in ("random", "distance"):
        raise ValueError(f"unknown topology {topology!r}: use 'random' or 'distance'")
    excitatory = neuron_types(n, excitatory_fraction, generator)
    positions = column_positions(n) if topology == "distance" else None
    prob = connection_probability(excitatory, probabilities, positions, length_scale)
    mask = torch.rand(n, n, generator=generator, dtype=torch.float64) < prob
    magnitude = torch.exp(weight_spread * torch.randn(n, n, generator=generator, dtype=torch.float64))
    magnitude /= math.exp(weight_spread**2 / 2)
    sign = torch.where(excitatory, 1.0, -1.0).to(torch.float64)[None, :]
    weight = mask * magnitude * sign
    if inhibitory_scale is None:
        weight = balance_inhibition(weight, excitatory)
    else:
        weight[:, ~excitatory] *= inhibitory_scale
    if radius > 0:
        current = spectral_radius(weight, radius_method)
        if current == 0.0:
            raise ValueError(
                "the drawn network has spectral radius 0 (too few connections to form a loop): "
                "raise the connection probabilities or n_neurons"
            )
        # Rounded so that last-bit differences between LAPACK builds cannot change the weights.
        weight = weight * float(f"{radius / current:.10g}")
    else:
        weight.zero_()
    return Connectivity(weight=weight, excitatory=excitatory, positions=positions)
