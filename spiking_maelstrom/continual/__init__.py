"""Continual learning: a task cut into experiences (``scenarios``), learned one after another by a
strategy (``strategies``) with the maelstrom frozen throughout, scored by the accuracy matrix and
its metrics (``metrics``), run and checkpointed experience by experience (``trainer``)."""

from .metrics import summary
from .scenarios import SCENARIOS, Experience, Scenario, make_scenario
from .strategies import STRATEGIES, ContinualConfig, Learner, make_learner
from .trainer import CONTINUAL, ContinualTrainer

__all__ = [
    "CONTINUAL",
    "SCENARIOS",
    "STRATEGIES",
    "ContinualConfig",
    "ContinualTrainer",
    "Experience",
    "Learner",
    "Scenario",
    "make_learner",
    "make_scenario",
    "summary",
]
