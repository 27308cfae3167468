"""Spike recordings streamed to HDF5, so long runs keep O(B*N) memory instead of O(T*B*N).

The maelstrom itself never stores spikes unless asked (``Maelstrom.run(record=False)``);
:func:`record_to_hdf5` runs it chunk by chunk and appends each chunk's spikes to a file:

- ``spikes``: bool ``[batch, T, neurons]``, chunked along time and lzf-compressed;
- attributes ``dt`` (seconds), ``n_neurons``, ``steps`` and ``complete = True``, written last.

The file is written beside its target and renamed into place when complete, so an interrupted
run never leaves a half-written recording.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor

from .files import atomic_write
from .maelstrom import Maelstrom
from .neuron import CubaLIFState


def record_to_hdf5(
    maelstrom: Maelstrom,
    currents: Tensor | Iterable[Tensor],
    path: str | Path,
    chunk_steps: int = 256,
    state: CubaLIFState | None = None,
) -> CubaLIFState:
    """Run ``maelstrom`` on ``currents`` (``[B, T, N]``, or an iterable of ``[B, K, N]`` chunks,
    e.g. produced on the fly) and stream every spike to ``path``; returns the final state.

    Only one chunk of spikes is held in memory at a time.
    """
    if chunk_steps < 1:
        raise ValueError(f"chunk_steps must be >= 1, got {chunk_steps}")
    chunks = currents.split(chunk_steps, dim=1) if isinstance(currents, Tensor) else currents
    n = maelstrom.n_neurons
    steps = 0
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as handle:
        spikes = None
        for chunk in chunks:
            if chunk.dim() != 3 or chunk.shape[-1] != n:
                raise ValueError(f"current chunks must be [batch, time, {n}], got {tuple(chunk.shape)}")
            if spikes is None:
                batch = chunk.shape[0]
                chunk_len = max(1, min(chunk_steps, (1 << 20) // (batch * n)))  # ~1 MB per HDF5 chunk
                spikes = handle.create_dataset(
                    "spikes",
                    (batch, 0, n),
                    dtype=bool,
                    maxshape=(batch, None, n),
                    chunks=(batch, chunk_len, n),
                    compression="lzf",
                )
            elif chunk.shape[0] != spikes.shape[0]:
                raise ValueError(f"every chunk needs batch {spikes.shape[0]}, got {chunk.shape[0]}")
            z, state = maelstrom.run(chunk, state)
            spikes.resize(steps + chunk.shape[1], axis=1)
            spikes[:, steps:] = z.bool().cpu().numpy()
            steps += chunk.shape[1]
        if spikes is None:
            raise ValueError("no currents to run: the chunk iterable was empty")
        handle.attrs.update(dt=maelstrom.dt, n_neurons=n, steps=steps, complete=True)
    return state


def read_spikes(path: str | Path, steps: slice = slice(None)) -> Tensor:
    """Spikes ``[B, T, N]`` (float32, 0/1) of a recording, or of the time ``steps`` asked for."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            if not handle.attrs.get("complete", False) or "spikes" not in handle:
                raise ValueError(f"{path}: not a complete spike recording (no 'spikes' or no complete flag)")
            return torch.from_numpy(np.asarray(handle["spikes"][:, steps], dtype=np.float32))
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 spike recording ({err})") from err
