"""Continual learning: scenarios, heads, the strategies' guarantees and the ``maelstrom continual`` run."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from spiking_maelstrom.cli import main
from spiking_maelstrom.config import layered, resolve
from spiking_maelstrom.continual import ContinualConfig, ContinualTrainer, make_scenario, summary
from spiking_maelstrom.data.task import labels_of

from .conftest import SHARED_DATA, TINY_RANDMAN, tiny_network

SMALL = {"task": {"name": "randman", **TINY_RANDMAN}, "network": {"maelstrom": {"n_neurons": 60}}}
SMALL_ARGS = ["--task.n_channels", "40", "--task.noise_channels", "20", "--task.n_steps", "30"]
SMALL_ARGS += ["--task.train_per_class", "6", "--task.test_per_class", "3", "--neurons", "60", "--quiet"]


def continual_run(strategy: str, scenario: str = "class-incremental", experiences: int = 5, **given):
    config = ContinualConfig(scenario=scenario, strategy=strategy, experiences=experiences)
    run, task = resolve(layered(None, {**SMALL, **given}, config.implied()))
    return ContinualTrainer(run, config, make_scenario(task, scenario, experiences, run.seed))


def test_class_splits_deal_every_class_once_in_a_seeded_order(tiny_task):
    scenario = make_scenario(tiny_task, "class-incremental", 4, seed=3)
    classes = [c for e in scenario.experiences for c in e.classes]
    assert sorted(classes) == list(range(tiny_task.n_classes)) and [len(e.classes) for e in scenario.experiences] == [
        3,
        3,
        2,
        2,
    ]
    for e in scenario.experiences:
        assert set(labels_of(e.train)) == set(e.classes) == set(labels_of(e.test))
    assert scenario.record()["classes"] == make_scenario(tiny_task, "class-incremental", 4, seed=3).record()["classes"]
    assert scenario.record()["classes"] != make_scenario(tiny_task, "class-incremental", 4, seed=4).record()["classes"]
    task_il = make_scenario(tiny_task, "task-incremental", 4, seed=3)
    local = task_il.experience_task(1)
    assert local.n_classes == 3 and set(labels_of(local.train)) == {0, 1, 2}


def test_domains_are_permutations_of_the_input_or_one_speaker_each(tiny_task):
    scenario = make_scenario(tiny_task, "domain-incremental", 3, seed=0)
    x0, y0 = scenario.experiences[0].train[5]
    x1, y1 = scenario.experiences[1].train[5]
    original, label = tiny_task.train[5]
    assert torch.equal(x0, original) and y0 == y1 == label
    assert not torch.equal(x1, original) and torch.equal(x1.sum(1).sort().values, original.sum(1).sort().values)
    speakers = np.array([0, 1, 2] * 20)
    grouped = replace(tiny_task, train=_Grouped(tiny_task.train, speakers), test=_Grouped(tiny_task.test, speakers))
    domains = make_scenario(grouped, "domain-incremental", 3)
    assert [e.domain for e in domains.experiences] == ["speaker 0", "speaker 1", "speaker 2"]
    assert all(len(e.train) == 20 for e in domains.experiences)
    with pytest.raises(ValueError, match="has 3 speakers, one per experience"):
        make_scenario(grouped, "domain-incremental", 5)


class _Grouped(torch.utils.data.Dataset):
    def __init__(self, dataset, speakers):
        self.dataset, self.groups = dataset, {"speaker": speakers[: len(dataset)]}

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: make_scenario(t, "class-incremental", 11), "more experiences than randman's 10 classes"),
        (lambda t: make_scenario(t, "online", 2), "unknown scenario 'online'"),
        (lambda t: ContinualConfig(strategy="ewc"), "unknown strategy 'ewc'"),
        (lambda t: ContinualConfig(strategy="naive").check("ridge"), "cannot run with readout ridge"),
        (lambda t: ContinualConfig(strategy="stream-ridge").check("linear"), "cannot run with readout linear"),
    ],
)
def test_bad_scenarios_and_strategies_are_refused(tiny_task, make, message):
    with pytest.raises(ValueError, match=message):
        make(tiny_task)


def test_a_head_never_changes_another_heads_scores(tiny_task):
    network = tiny_network(tiny_task, rule_feedback=False)
    network.add_head("a", 3)
    x = torch.stack([tiny_task.test[i][0] for i in range(4)])
    before = network(x, head_names=("a",))
    network.add_head("b", 4)
    after = network(x, head_names=("a", "b"))
    assert torch.equal(before.heads["a"], after.heads["a"]) and torch.equal(before.logits, after.logits)
    assert torch.equal(network.head("b")(x).logits, after.heads["b"]) and after.heads["b"].shape[-1] == 4
    with pytest.raises(ValueError, match="feedback off"):
        tiny_network(tiny_task, rule_feedback=True).add_head("a", 3)


def test_summary_gives_the_fields_metrics():
    matrix = [[0.9, 0.1, 0.0], [0.5, 0.8, 0.2], [0.4, 0.6, 0.7]]
    result = summary(matrix, [0.1, 0.1, 0.1])
    assert result["acc"] == pytest.approx(1.7 / 3)
    assert result["bwt"] == pytest.approx(((0.4 - 0.9) + (0.6 - 0.8)) / 2)
    assert result["fwt"] == pytest.approx(((0.1 - 0.1) + (0.2 - 0.1)) / 2)
    assert result["acc_curve"] == pytest.approx([0.9, 0.65, 1.7 / 3])
    assert summary([[0.5, 0.7]], [0.0, 0.0], joint=True)["bwt"] is None


@pytest.mark.parametrize("scenario", ["class-incremental", "domain-incremental"])
def test_stream_ridge_ends_where_joint_training_does(scenario):
    streamed, joint = continual_run("stream-ridge", scenario, 3), continual_run("joint", scenario, 3)
    streamed.fit()
    joint.fit()
    a, b = streamed.network.readout, joint.network.readout
    scale = b.weight.abs().max()
    assert torch.allclose(a.weight, b.weight, atol=1e-4 * scale) and torch.allclose(a.bias, b.bias, atol=1e-4)
    assert streamed.matrix[-1] == joint.matrix[0]
    assert len(set(streamed.learner_bytes)) == 1  # the statistics' size does not grow with the experiences


def test_stream_ridge_heads_forget_nothing_on_task_incremental():
    trainer = continual_run("stream-ridge", "task-incremental", 4)
    results = trainer.fit()
    for i, row in enumerate(trainer.matrix):
        assert all(row[j] == trainer.matrix[j][j] for j in range(i + 1))
    assert results["bwt"] == 0.0
    joint = continual_run("joint", "task-incremental", 4).fit()
    assert results["matrix"][-1] == joint["matrix"][0]


def test_naive_training_forgets_and_replay_keeps_a_bounded_buffer():
    given = {
        "train": {"epochs": 10, "lr": 0.05, "batch_size": 8, "encoder_rule": "dfa"},
        "network": {"maelstrom": {"n_neurons": 60}, "feedback": False},
    }
    naive = continual_run("naive", "class-incremental", 2, **given)
    naive.fit()
    assert naive.matrix[1][0] < naive.matrix[0][0]
    replay = continual_run("replay", "class-incremental", 3, **given)
    replay.config.buffer_size = 10
    replay.fit()
    sample = 30 * 60 * 4
    assert replay.learner_bytes == [10 * sample, 10 * sample, 9 * sample]  # 10 // k samples of each of k experiences


def test_continual_cli_writes_the_matrix_and_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "streamed"
    base = ["continual", "--scenario", "class-incremental", "--experiences", "5", *SMALL_ARGS]
    assert main([*base, "--strategy", "stream-ridge", "--out", str(out)]) == 0
    result = json.loads((out / "continual.json").read_text())
    assert {"matrix", "acc", "bwt", "fwt", "strategy", "scenario", "seconds", "learner_bytes"} <= set(result)
    assert len(result["matrix"]) == 5 and result["finished"] and (out / "continual.png").is_file()
    assert main([*base, "--strategy", "joint", "--out", str(tmp_path / "joint")]) == 0
    joint = json.loads((tmp_path / "joint" / "continual.json").read_text())
    assert set(result) == set(joint) and joint["acc"] == result["acc"] and len(joint["matrix"]) == 1

    config = ContinualConfig(experiences=5)
    run, task = resolve(layered(None, SMALL, config.implied()))
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    ContinualTrainer(run, config, make_scenario(task, config.scenario, 5, run.seed)).fit(stopped, until=2)
    assert json.loads((stopped / "continual.json").read_text())["learned"] == 2
    assert main(["continual", "--resume", "--out", str(stopped), "--quiet"]) == 0
    assert json.loads((stopped / "continual.json").read_text())["matrix"] == result["matrix"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "naive", "--readout", "ridge", *SMALL_ARGS], "trains the readout by gradient"),
        (["--experiences", "12", *SMALL_ARGS], "more experiences than randman's 10 classes"),
        (["--scenario", "sideways", *SMALL_ARGS], "unknown scenario 'sideways'"),
        (["--resume", "--quiet"], "no continual checkpoint"),
        (["--resume", "--strategy", "naive"], "it takes no continual.strategy"),
    ],
)
def test_continual_cli_refuses_bad_arguments_in_one_line(tmp_path, capsys, args, message):
    assert main(["continual", *args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


FSDD = SHARED_DATA / "fsdd-shd"


@pytest.mark.skipif(not FSDD.is_dir(), reason="../shared/data/fsdd-shd is absent")
def test_fsdd_speakers_are_the_domains_of_a_real_continual_run(tmp_path):
    out = tmp_path / "run"
    args = ["continual", "--dataset", "shd", "--data-dir", str(FSDD), "--task.cache_dir", str(tmp_path / "cache")]
    args += ["--scenario", "domain-incremental", "--experiences", "5", "--neurons", "80", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    result = json.loads((out / "continual.json").read_text())
    assert result["split"]["domains"] == [f"speaker {k}" for k in range(5)]
    assert result["split"]["train_samples"] == [450] * 5 and result["split"]["test_samples"] == [50] * 5
    assert result["acc"] > 0.5  # chance is 0.1


def test_stream_ridge_can_train_the_encoder_on_the_first_experience_then_freezes_it():
    trainer = continual_run("stream-ridge", "class-incremental", 3, train={"epochs": 2})
    trainer.config.first_rule = "dfa"
    before = {k: v.clone() for k, v in trainer.network.encoder.state_dict().items()}
    trainer.fit(until=1)
    after_first = {k: v.clone() for k, v in trainer.network.encoder.state_dict().items()}
    assert any(not torch.equal(before[k], after_first[k]) for k in before)
    trainer.fit()
    assert all(torch.equal(after_first[k], v) for k, v in trainer.network.encoder.state_dict().items())
    assert not any(p.requires_grad for p in trainer.network.encoder.parameters())
    with pytest.raises(ValueError, match="stream-ridge alone takes one"):
        ContinualConfig(strategy="naive", first_rule="dfa")


def test_evaluate_scores_a_task_incremental_run_through_each_experiences_head(tmp_path, capsys):
    out = tmp_path / "tasks"
    args = ["continual", "--scenario", "task-incremental", "--experiences", "3", *SMALL_ARGS, "--out", str(out)]
    assert main(args) == 0
    result = json.loads((out / "continual.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json", str(tmp_path / "scores.json")]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["accuracy_per_experience"] == result["matrix"][-1]
    assert scores["scenario"] == "task-incremental" and scores["learned"] == 3
    assert main(["evaluate", str(out), "--plot", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a continual run" in err and len(err.splitlines()) == 1
    assert main(["evaluate", str(out), "--dataset", "randman"]) == 2
    assert "one head per experience" in capsys.readouterr().err
