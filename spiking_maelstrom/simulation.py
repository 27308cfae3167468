"""``maelstrom simulate``: run a maelstrom, stream its spikes to HDF5 and write what it does.

A simulation directory holds ``measures.json`` (``diagnostics.measure``'s numbers and the
settings), ``spikes.h5`` (every spike of the run the measures read, ``recording``),
``raster.png`` (one sample, with the population rate), ``measures.png`` (ISI histogram, memory
capacity per delay, the perturbation's distance, separation) and, with a sweep over the
spectral radius, ``sweep.json`` and ``sweep.png`` (memory capacity and validation accuracy per
radius).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from .data.task import Task, labels_of, validation_split
from .diagnostics import MeasureConfig, generated_memory, measure, scalar_drive
from .files import write_json
from .maelstrom import Maelstrom
from .network import MaelstromNetwork, NetworkConfig
from .plots import plot_measures, plot_raster, plot_sweep
from .progress import bar, note
from .recording import record_to_hdf5
from .trainer import TrainConfig, train_and_score

MEASURES, SPIKES, RASTER, PLOT, SWEEP, SWEEP_PLOT = (
    "measures.json",
    "spikes.h5",
    "raster.png",
    "measures.png",
    "sweep.json",
    "sweep.png",
)
SIMULATION_FILES = (MEASURES, SPIKES, RASTER, PLOT, SWEEP, SWEEP_PLOT)


@dataclass
class SimulateConfig:
    """What ``maelstrom simulate`` runs besides the measures."""

    sweep: Annotated[tuple[float, ...], "spectral radii to sweep: memory capacity and validation accuracy at each"] = ()
    record: Annotated[bool, f"stream the run's spikes to {SPIKES}"] = True


def task_samples(task: Task, count: int, seed: int) -> list[int]:
    """Training samples to run: ``count`` in a seeded random order, then more of the first one's
    class until it has ``count`` (the ranks' inputs: distinct samples, and samples of one class)."""
    labels = labels_of(task.train)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).tolist()
    first = order[:count]
    alike = [i for i in order if labels[i] == labels[order[0]]]
    chosen = set(first)
    have = sum(i in chosen for i in alike)
    return first + [i for i in alike if i not in chosen][: count - have]


def task_currents(network: MaelstromNetwork, task: Task, indices: list[int]) -> tuple[Tensor, Tensor]:
    """The encoder's currents ``[B, T, N]`` for the training samples ``indices`` and their labels,
    open loop: the feedback held at the uniform prior that starts every sample."""
    x, y = next(iter(DataLoader(Subset(task.train, indices), batch_size=len(indices), shuffle=False)))
    x = x.to(network.maelstrom.weight.device)
    flat = x.flatten(0, 1)
    prior = None
    if network.feedback:
        prior = torch.full((flat.shape[0], network.n_classes), 1.0 / network.n_classes, device=flat.device)
    with torch.no_grad():
        currents = network.encoder(flat, prior).unflatten(0, x.shape[:2])
    return currents.to(network.maelstrom.weight.dtype), y


def simulate(
    network: MaelstromNetwork, config: MeasureConfig, settings: SimulateConfig, out: Path, task: Task | None = None
) -> dict[str, Any]:
    """Measure ``network``'s maelstrom on the generated input, or on ``task``'s training samples
    (``task_samples``) through its encoder, and write the simulation directory ``out``; returns
    the measures."""
    maelstrom = network.maelstrom
    currents = labels = None
    if task is not None:
        indices = task_samples(task, max(config.samples, config.rank_inputs), config.seed)
        currents, labels = task_currents(network, task, indices)
    note("simulate: measuring the maelstrom")
    measures = measure(maelstrom, config, currents, labels)
    recorded = measures.pop("recorded")
    run_on = (currents if currents is not None else scalar_drive(maelstrom, config)[1])[: config.samples]
    if settings.record:
        record_to_hdf5(maelstrom, run_on, out / SPIKES)
    spikes = recorded.pop("spikes")
    plot_raster(spikes[0], maelstrom.excitatory, maelstrom.dt, out / RASTER, title=f"{maelstrom.n_neurons} neurons")
    plot_measures(recorded, measures["separation"], maelstrom.dt, out / PLOT)
    result = {
        "input": task.name if task is not None else "generated",
        "neurons": maelstrom.n_neurons,
        "recurrent": network.config.maelstrom.recurrent if network.config else None,
        "spectral_radius": network.config.maelstrom.spectral_radius if network.config else None,
        "dt": maelstrom.dt,
        "steps": int(run_on.shape[1]),
        "samples": int(run_on.shape[0]),
        **measures,
        "memory_capacity_per_delay": recorded["memory_capacity_per_delay"],
        "perturbation_distance": recorded["perturbation_distance"],
        "settings": asdict(config),
    }
    write_json(out / MEASURES, result)
    return result


def sweep(
    network_config: NetworkConfig,
    train: TrainConfig,
    task: Task,
    config: MeasureConfig,
    radii: tuple[float, ...],
    out: Path,
) -> list[dict[str, Any]]:
    """Memory capacity (generated input) and validation accuracy (``train`` on 80 % of the task's
    training files, scored on the other 20 %) of the maelstrom at each spectral radius in ``radii``,
    all else equal; writes ``sweep.json`` and ``sweep.png``."""
    fit, held = validation_split(task.train, 0.2, network_config.seed)
    validation = replace(task, train=fit, test=held)
    points = []
    for radius in bar(radii, desc="sweep"):
        swept = replace(network_config, maelstrom=replace(network_config.maelstrom, spectral_radius=radius))
        maelstrom = Maelstrom(swept.maelstrom)
        per_delay, _, spikes = generated_memory(maelstrom, config)
        scored = train_and_score(swept, train, validation)
        points.append(
            {
                "spectral_radius": radius,
                "memory_capacity": sum(per_delay),
                "rate_hz": float(spikes.mean()) / maelstrom.dt,
                "validation_accuracy": scored["accuracy"],
            }
        )
        write_json(out / SWEEP, points)
    plot_sweep(points, out / SWEEP_PLOT, title=f"{task.name}, {network_config.maelstrom.n_neurons} neurons")
    return points
