"""spiking-maelstrom: Maelstrom networks (arXiv 2408.16632) as neuromorphic spiking reservoirs.

Data -> trainable encoder -> frozen spiking maelstrom -> trainable readout; no gradient ever
crosses the maelstrom.

The public names load on first use (PEP 562), so that importing one part (e.g. the export) does
not load the trainer and the data stack.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

# Each public name and the module it lives in.
_HOMES = {
    **dict.fromkeys(("TASKS", "Task", "load_task"), "data"),
    **dict.fromkeys(("Encoder", "MLPEncoder", "ConvEncoder"), "encoders"),
    **dict.fromkeys(("Maelstrom", "MaelstromConfig"), "maelstrom"),
    **dict.fromkeys(("Probe", "Feedback"), "probe"),
    **dict.fromkeys(("CubaLIFState", "cuba_lif_step"), "neuron"),
    **dict.fromkeys(("LinearReadout", "MLPReadout", "RidgeReadout"), "readouts"),
    **dict.fromkeys(
        ("MaelstromNetwork", "NetworkConfig", "NetworkState", "build_network", "network_config_for"), "network"
    ),
    "Ensemble": "ensemble",
    **dict.fromkeys(("RULES", "make_rule", "train_batch", "predict"), "learning"),
    **dict.fromkeys(("Trainer", "TrainConfig"), "trainer"),
    "load_network": "evaluation",
    **dict.fromkeys(("RunConfig", "TaskConfig", "CVConfig", "read_config", "resolve"), "config"),
}

__all__ = ["__version__", *_HOMES]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
