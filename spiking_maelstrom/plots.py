"""PNG plots a person would rather look at than read: learning curves, test results, spike rasters,
continual runs and reservoir measures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from torch import Tensor  # noqa: E402

from .files import atomic_write  # noqa: E402


def _save(fig: Any, path: str | Path) -> Path:
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    return Path(path)


def plot_accuracy(history: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Train/validation accuracy and train loss per epoch."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = [h["epoch"] for h in history]
    for key, label in (("train_accuracy", "train"), ("val_accuracy", "validation")):
        values = [h[key] for h in history if key in h]
        if values:
            ax_acc.plot(epochs[: len(values)], values, marker="o", label=label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title=title or "accuracy")
    ax_acc.grid(alpha=0.3)
    ax_acc.legend()
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", color="tab:red")
    ax_loss.set(xlabel="epoch", ylabel="per-step cross-entropy", title="training loss")
    ax_loss.grid(alpha=0.3)
    for ax in (ax_acc, ax_loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _save(fig, path)


def plot_test(
    confusion: list[list[int]], accuracy_over_time: list[float | None], dt: float, path: str | Path, title: str = ""
) -> Path:
    """A test result (``evaluation.evaluate_network``'s): the confusion matrix, and the accuracy of
    the online decision as it stands at each step, against time into the sample."""
    counts = torch.tensor(confusion)
    n = counts.shape[0]
    fig, (ax_c, ax_t) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    ax_c.imshow(counts.numpy(), cmap="Blues")
    if n <= 20:  # counts written in the cells while they stay legible
        half = int(counts.max()) / 2
        for row, col in torch.nonzero(counts).tolist():
            value = int(counts[row, col])
            colour = "white" if value > half else "black"
            ax_c.text(col, row, value, ha="center", va="center", fontsize=7, color=colour)
    ax_c.set(xlabel="decided class", ylabel="true class", title=title or "confusion")
    for axis in (ax_c.xaxis, ax_c.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    times = [(t + 1) * dt * 1e3 for t, a in enumerate(accuracy_over_time) if a is not None]
    ax_t.plot(times, [a for a in accuracy_over_time if a is not None], color="k", lw=1.5)
    ax_t.axhline(1.0 / n, color="tab:gray", ls="--", lw=1, label="chance")
    ax_t.set(
        xlabel="time into the sample (ms)",
        ylabel="accuracy",
        ylim=(0, 1.02),
        title="decision so far (online readout)",
    )
    ax_t.grid(alpha=0.3)
    ax_t.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def plot_raster(spikes: Tensor, excitatory: Tensor, dt: float, path: str | Path, title: str = "") -> Path:
    """Spike raster ``spikes [T, N]`` of one sample (excitatory red, inhibitory blue) and the
    population rate below it."""
    spikes = spikes.detach().cpu()
    excitatory = excitatory.detach().cpu()
    steps, n = spikes.shape
    fig, (ax_r, ax_rate) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    order = torch.cat([torch.nonzero(excitatory).flatten(), torch.nonzero(~excitatory).flatten()])
    t, idx = torch.nonzero(spikes[:, order], as_tuple=True)
    is_exc = idx < int(excitatory.sum())
    ms = 1e3 * dt
    ax_r.scatter(t[is_exc] * ms, idx[is_exc], s=1, c="tab:red", label="excitatory")
    ax_r.scatter(t[~is_exc] * ms, idx[~is_exc], s=1, c="tab:blue", label="inhibitory")
    ax_r.set(ylabel="neuron", ylim=(-1, n), title=title or "maelstrom spikes")
    ax_r.legend(loc="upper right", markerscale=6, fontsize=8)
    rate = spikes.mean(1) / dt
    ax_rate.plot(torch.arange(steps) * ms, rate, color="k", lw=1)
    ax_rate.set(xlabel="time (ms)", ylabel="rate (Hz)")
    fig.tight_layout()
    return _save(fig, path)


def plot_continual(matrix: list[list[float]], acc_curve: list[float], path: str | Path, title: str = "") -> Path:
    """A continual run: the accuracy matrix R[i, j] (test accuracy on experience j after learning
    experience i) as a heatmap, and the average accuracy over the experiences seen after each."""
    values = torch.tensor(matrix)
    rows, cols = values.shape
    fig, (ax_r, ax_acc) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 1.2]})
    image = ax_r.imshow(values.numpy(), cmap="viridis", vmin=0, vmax=1)
    if cols <= 12:
        for row in range(rows):
            for col in range(cols):
                value = float(values[row, col])
                ax_r.text(
                    col,
                    row,
                    f"{100 * value:.0f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if value > 0.6 else "white",
                )
    ax_r.set(xlabel="tested on experience j", ylabel="after learning experience i", title=title or "accuracy R[i, j]")
    if rows == 1:
        ax_r.set(ylabel="after learning all at once")
    for axis in (ax_r.xaxis, ax_r.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(image, ax=ax_r, fraction=0.046)
    steps = list(range(len(acc_curve)))
    ax_acc.plot(steps, acc_curve, marker="o", color="k", label="ACC over the experiences seen")
    for col in range(cols if cols <= 12 else 0):
        seen = list(range(col, rows))
        ax_acc.plot(seen, values[col:, col].tolist(), lw=0.8, marker=".", alpha=0.6, label=f"experience {col}")
    ax_acc.set(xlabel="after learning experience", ylabel="test accuracy", ylim=(0, 1.02), title="ACC")
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _save(fig, path)


def plot_measures(recorded: dict[str, Any], separation: list[dict[str, float]], dt: float, path: str | Path) -> Path:
    """``maelstrom simulate``'s measures: ISI histogram, memory capacity per delay, the one-spike
    perturbation's distance over time and the separation curve."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    isi, capacity, perturbed, separated = axes.flat
    ms = 1e3 * dt
    intervals = torch.tensor(recorded["isi_steps"], dtype=torch.float64) * ms
    if intervals.numel():
        isi.hist(intervals.numpy(), bins=50, color="tab:gray")
    isi.set(xlabel="inter-spike interval (ms)", ylabel="count", title="ISI histogram")
    per_delay = recorded["memory_capacity_per_delay"]
    capacity.bar(range(1, len(per_delay) + 1), per_delay, color="tab:green")
    capacity.set(xlabel="delay (input values back)", ylabel="MC_k (r squared)", ylim=(0, 1), title="memory capacity")
    distance = recorded["perturbation_distance"]
    perturbed.plot([t * ms for t in range(len(distance))], distance, color="tab:red")
    perturbed.set(xlabel="time after the extra spike (ms)", ylabel="state distance", title="one-spike perturbation")
    separated.plot([p["input_distance"] for p in separation], [p["state_distance"] for p in separation], marker="o")
    separated.set(xlabel="input distance (RMS)", ylabel="state distance", title="separation")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_sweep(points: list[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Memory capacity and validation accuracy against the spectral radius (the operating point)."""
    fig, capacity = plt.subplots(figsize=(6.5, 4))
    radii = [p["spectral_radius"] for p in points]
    capacity.plot(radii, [p["memory_capacity"] for p in points], marker="o", color="tab:green")
    capacity.set(xlabel="spectral radius", ylabel="memory capacity", title=title or "sweep")
    capacity.yaxis.label.set_color("tab:green")
    accuracy = capacity.twinx()
    accuracy.plot(radii, [p["validation_accuracy"] for p in points], marker="s", color="tab:blue")
    accuracy.set(ylabel="validation accuracy", ylim=(0, 1.02))
    accuracy.yaxis.label.set_color("tab:blue")
    capacity.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
