"""Continual learners (strategies): how a network learns experience after experience.

* ``stream-ridge``: the maelstrom and the encoder frozen (with ``first_rule``, the encoder is first
  trained on experience 0 by that rule through a linear readout, then frozen); a ridge readout
  whose sufficient statistics only ever get the new experience's added, then solved. After
  experience i it is the ridge fit on experiences 0..i together (``joint`` on them), up to float
  summation order, in ``O(F^2)`` memory whatever the number of experiences;
* ``joint``: every experience at once (the upper bound), with the run's readout and encoder rule;
* ``naive``: keeps training the whole network (the encoder rule and a gradient readout) on each
  new experience, a fresh optimiser each time (the forgetting reference);
* ``replay``: ``naive`` with experience replay: each experience's training set joined with a
  buffer of at most ``buffer_size`` earlier samples, shared equally between the earlier experiences
  (Avalanche's experience-balanced buffer; each experience keeps a fixed seeded order of its
  samples, so a shrinking share keeps a prefix of it).

Task-incremental scenarios give each experience its own head; with ``stream-ridge`` and ``joint``
a head is fitted on its experience alone, so learning a later one never changes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from ..evaluation import evaluate_network
from ..learning import RULES
from ..network import MaelstromNetwork, build_readout
from ..progress import verbosity
from ..readouts import RidgeReadout
from ..trainer import TrainConfig, Trainer, accumulate_ridge
from .scenarios import SCENARIOS, Scenario

STRATEGIES = ("stream-ridge", "joint", "naive", "replay")
RIDGE_STRATEGIES = ("stream-ridge",)
GRADIENT_STRATEGIES = ("naive", "replay")


@dataclass
class ContinualConfig:
    """A continual run: the scenario cut from the run's task and the strategy that learns it."""

    scenario: Annotated[str, f"how the task is cut into experiences: {', '.join(SCENARIOS)}"] = "class-incremental"
    strategy: Annotated[str, f"how the experiences are learned: {', '.join(STRATEGIES)}"] = "stream-ridge"
    experiences: Annotated[int, "experiences the task is cut into (class splits; domain: one per speaker)"] = 5
    buffer_size: Annotated[int, "replay: earlier samples kept, shared equally by the earlier experiences"] = 200
    first_rule: Annotated[
        str | None,
        f"stream-ridge: train the encoder on the first experience with this rule ({', '.join(RULES[1:])}) and a "
        "linear readout, then freeze it",
    ] = None

    def __post_init__(self) -> None:
        for name, allowed in (("scenario", SCENARIOS), ("strategy", STRATEGIES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}: choose one of {', '.join(allowed)}")
        if self.experiences < 1:
            raise ValueError(f"experiences must be >= 1, got {self.experiences}")
        if self.buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {self.buffer_size}")
        if self.first_rule is not None and (self.first_rule not in RULES[1:] or self.strategy != "stream-ridge"):
            raise ValueError(f"first_rule {self.first_rule!r}: stream-ridge alone takes one, of {', '.join(RULES[1:])}")

    def implied(self) -> dict[str, Any]:
        """The run settings the strategy needs, beneath those given (a ridge readout on a frozen
        encoder for ``stream-ridge`` and ``joint``; feedback off where heads are used)."""
        tree: dict[str, Any] = {}
        if self.strategy in (*RIDGE_STRATEGIES, "joint"):
            tree = {"network": {"readout": "ridge", "feedback": False}, "train": {"encoder_rule": "frozen"}}
        if self.scenario == "task-incremental":
            tree.setdefault("network", {})["feedback"] = False
        return tree

    def check(self, readout: str) -> None:
        """Refuse a strategy that cannot run with ``readout`` or on this scenario."""
        if self.strategy in RIDGE_STRATEGIES and readout != "ridge":
            raise ValueError(f"strategy {self.strategy} fits a ridge readout: it cannot run with readout {readout}")
        if self.strategy in GRADIENT_STRATEGIES and readout == "ridge":
            raise ValueError(
                f"strategy {self.strategy} trains the readout by gradient: it cannot run with readout ridge"
            )
        if self.scenario == "task-incremental" and readout != "ridge" and self.strategy in ("joint", "replay"):
            raise ValueError(
                f"strategy {self.strategy} with a trained readout on task-incremental is not built: "
                "use readout ridge (stream-ridge, joint) or strategy naive"
            )


def head_name(index: int) -> str:
    return f"experience-{index}"


class Learner:
    """A strategy's state across experiences: ``learn(i)`` trains on experience ``i`` (``joint``:
    on all at once), ``evaluate(j)`` scores experience ``j``'s test samples (with its head, where
    the scenario gives task labels)."""

    name = ""

    def __init__(self, network: MaelstromNetwork, scenario: Scenario, train: TrainConfig, config: ContinualConfig):
        self.network = network
        self.scenario = scenario
        self.train = replace(train, val_fraction=0.0)
        self.config = config
        if scenario.task_labels:
            for e in scenario.experiences:
                if head_name(e.index) not in network.heads:
                    network.add_head(head_name(e.index), len(e.classes))

    def network_for(self, index: int) -> MaelstromNetwork:
        """The network that learns and scores experience ``index``: its head's view, or the network."""
        return self.network.head(head_name(index)) if self.scenario.task_labels else self.network

    def learn(self, index: int) -> None:
        raise NotImplementedError

    def evaluate(self, index: int) -> float:
        task = self.scenario.experience_task(index)
        network = self.network_for(index)
        return evaluate_network(network, task.test, task.mask, self.train.batch_size)["accuracy"]

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps beside the network's weights (tensors and plain data)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""

    def memory_bytes(self) -> int:
        """Bytes the learner keeps beside the network's weights (statistics, replayed samples)."""
        return 0

    def _trained(self, network: MaelstromNetwork, task: Any, **train: Any) -> None:
        with verbosity(False):
            Trainer(network, task, replace(self.train, **train)).fit()

    def _fit_ridge(self, network: MaelstromNetwork, dataset: Dataset, keep: bool) -> None:
        """Add ``dataset``'s statistics to ``network``'s ridge readout and solve it; the statistics
        are kept for later experiences only with ``keep``."""
        accumulate_ridge(network, network.readout, dataset, self.scenario.task.mask, self.train.batch_size)
        network.readout.solve()
        if not keep:
            network.readout.reset_statistics()

    def _ridge_head(self, index: int) -> None:
        """Fit experience ``index``'s head on it alone (a head never sees another experience)."""
        self._fit_ridge(self.network_for(index), self.scenario.experience_task(index).train, keep=False)


class StreamRidge(Learner):
    name = "stream-ridge"

    def _readouts(self) -> dict[str, RidgeReadout]:
        if self.scenario.task_labels:
            return dict(self.network.heads.items())
        return {"readout": self.network.readout}

    def learn(self, index: int) -> None:
        if index == 0 and self.config.first_rule is not None:
            self._train_encoder()
        if self.scenario.task_labels:
            self._ridge_head(index)
        else:
            self._fit_ridge(self.network, self.scenario.experience_task(index).train, keep=True)

    def _train_encoder(self) -> None:
        """Experience 0 trains the encoder (``first_rule``, a linear readout thrown away after), then it is frozen."""
        task = self.scenario.experience_task(0)
        config = replace(self.network.config, readout="linear")
        readout = build_readout(config, task.n_classes, seed=config.seed).to(self.network.maelstrom.weight.device)
        self.network.encoder.requires_grad_(True)
        self._trained(self.network.through(readout, "linear"), task, encoder_rule=self.config.first_rule)
        self.network.encoder.requires_grad_(False)

    def state_dict(self) -> dict[str, Any]:
        return {"statistics": {name: r.statistics() for name, r in self._readouts().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        readouts = self._readouts()
        for name, statistics in state["statistics"].items():
            if name not in readouts:
                raise ValueError(f"ridge statistics for {name!r}, which this network does not have")
            readouts[name].load_statistics(statistics)

    def memory_bytes(self) -> int:
        return sum(t.nbytes for r in self._readouts().values() for t in r.statistics().values())


class Joint(Learner):
    name = "joint"

    def learn(self, index: int) -> None:
        if self.scenario.task_labels:
            for e in self.scenario.experiences:
                self._ridge_head(e.index)
            return
        union = ConcatDataset([e.train for e in self.scenario.experiences])
        if self.network.config.readout == "ridge":
            self._fit_ridge(self.network, union, keep=False)
        else:
            self._trained(self.network, replace(self.scenario.task, train=union))


class Naive(Learner):
    name = "naive"

    def learn(self, index: int) -> None:
        self._trained(self.network_for(index), self.scenario.experience_task(index))


def replay_orders(scenario: Scenario, seed: int) -> list[torch.Tensor]:
    """Each experience's fixed seeded order of its training samples, from which a replay buffer keeps a prefix."""
    return [
        torch.randperm(len(e.train), generator=torch.Generator().manual_seed(seed * 1000 + e.index))
        for e in scenario.experiences
    ]


def replay_buffer(scenario: Scenario, orders: list[torch.Tensor], learned: int, size: int) -> Dataset | None:
    """The replayed samples once ``learned`` experiences are learned: ``size // learned`` of each."""
    if not learned:
        return None
    share = size // learned
    experiences = scenario.experiences[:learned]
    return ConcatDataset([Subset(e.train, orders[e.index][:share].tolist()) for e in experiences])


def sample_bytes(task: Any) -> int:
    """Bytes of one sample's frames held as float32 (what a replay buffer keeps per sample)."""
    return task.mask.numel() * int(np.prod(task.input_shape)) * torch.finfo(torch.float32).bits // 8


class Replay(Learner):
    name = "replay"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.orders = replay_orders(self.scenario, self.train.seed)
        self.learned = 0

    def buffer(self) -> Dataset | None:
        """The replayed samples: an equal share of ``buffer_size`` from each experience learned."""
        return replay_buffer(self.scenario, self.orders, self.learned, self.config.buffer_size)

    def learn(self, index: int) -> None:
        task = self.scenario.experience_task(index)
        buffer = self.buffer()
        if buffer is not None:
            task = replace(task, train=ConcatDataset([task.train, buffer]))
        self._trained(self.network, task)
        self.learned = index + 1

    def state_dict(self) -> dict[str, Any]:
        return {"learned": self.learned}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learned = int(state["learned"])

    def memory_bytes(self) -> int:
        buffer = self.buffer()
        return 0 if buffer is None else len(buffer) * sample_bytes(self.scenario.task)


LEARNERS: dict[str, type[Learner]] = {cls.name: cls for cls in (StreamRidge, Joint, Naive, Replay)}


def make_learner(network: MaelstromNetwork, scenario: Scenario, train: TrainConfig, config: ContinualConfig) -> Learner:
    """The learner ``config.strategy`` names, for ``network`` on ``scenario``."""
    config.check(network.config.readout)
    return LEARNERS[config.strategy](network, scenario, train, config)
