"""spiking-maelstrom: Maelstrom networks (arXiv 2408.16632) as neuromorphic spiking reservoirs.

Data -> trainable encoder -> frozen spiking maelstrom -> trainable readout; no gradient ever
crosses the maelstrom.
"""

from ._version import __version__
from .data import TASKS, Task, load_task
from .encoders import ConvEncoder, Encoder, MLPEncoder
from .ensemble import Ensemble
from .evaluation import load_network
from .learning import RULES, make_rule, predict, train_batch
from .maelstrom import Maelstrom, MaelstromConfig
from .network import MaelstromNetwork, NetworkConfig, NetworkState, build_network, network_config_for
from .neuron import CubaLIFState, cuba_lif_step
from .probe import Feedback, Probe
from .readouts import LinearReadout, MLPReadout, RidgeReadout
from .trainer import TrainConfig, Trainer

__all__ = [
    "__version__",
    "TASKS",
    "Task",
    "load_task",
    "Encoder",
    "MLPEncoder",
    "ConvEncoder",
    "Maelstrom",
    "MaelstromConfig",
    "Probe",
    "Feedback",
    "CubaLIFState",
    "cuba_lif_step",
    "LinearReadout",
    "MLPReadout",
    "RidgeReadout",
    "MaelstromNetwork",
    "Ensemble",
    "NetworkConfig",
    "NetworkState",
    "build_network",
    "network_config_for",
    "RULES",
    "make_rule",
    "train_batch",
    "predict",
    "Trainer",
    "TrainConfig",
    "load_network",
]
