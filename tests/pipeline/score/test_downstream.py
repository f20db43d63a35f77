"""Test-split scoring and downstream accuracy (CCR) of finished runs, read back through MLflow."""

import json

import mlflow
import pytest
import torch

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.report.held_out import evaluate_downstream, evaluate_run, load_run
from ggevo.pipeline.run.train import train
from ggevo.pipeline.score.artifacts import choose_member
from ggevo.pipeline.score.downstream import ClassifierRecipe, classifier_for, fine_tune

QUICK = ClassifierRecipe(epochs=10, lr=0.1, momentum=0.9, batch_size=32)


@pytest.fixture
def gemonn_run(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.max_steps=4")
    train(cfg)
    return cfg, tmp_path / "run"


def test_select_rules_pick_the_members_they_name():
    table = {"density": [0.05, 0.1, 0.4, 1.0], "train_loss": [0.2, 0.1, 0.05, 0.04], "knee": [0, 1, 0, 0]}
    assert choose_member(table, "knee") == 1
    assert choose_member(table, "best") == 3
    assert choose_member(table, "density<=0.2") == 1
    assert choose_member(table, "density<=0.5") == 2
    with pytest.raises(ConfigError, match="^select: no front member has density ≤ 0.01"):
        choose_member(table, "density<=0.01")
    with pytest.raises(ConfigError, match="^select: must be"):
        choose_member(table, "sparsest")


def test_downstream_accuracy_is_logged_and_beats_chance(gemonn_run):
    cfg, run_dir = gemonn_run
    metrics = evaluate_downstream(run_dir, "knee", [0, 1], QUICK)
    assert 0.3 < metrics["downstream/test_accuracy_mean"] <= 1.0  # ten classes: chance is 0.1
    record = json.loads((run_dir / "downstream.json").read_text())
    assert record["seeds"] == [0, 1]
    assert record["test_accuracy_mean"] == pytest.approx((record["test_accuracy_seed0"] + record["test_accuracy_seed1"]) / 2)
    table = read_front_csv(run_dir / "front.csv")
    assert record["density"] == table["density"][choose_member(table, "knee")]
    run_id = torch.load(run_dir / "front.pt", weights_only=False)["mlflow_run_id"]
    run = mlflow.tracking.MlflowClient(cfg.logger.tracking_uri).get_run(run_id)
    assert run.data.metrics["downstream/test_accuracy_mean"] == pytest.approx(metrics["downstream/test_accuracy_mean"])


def test_fine_tuning_holds_the_encoders_zeros(gemonn_run):
    _, run_dir = gemonn_run
    _, module, data, front = load_run(run_dir)
    member = front["X"][0]  # the sparsest member
    net = classifier_for(module.model, member, classes=10, seed=0)
    zeros = [p == 0 for p in net.autoencoder.parameters()]
    assert any(z.any() for z in zeros)
    fine_tune(net, data, QUICK, seed=0)
    assert all(torch.equal(p == 0, z) for p, z in zip(net.autoencoder.parameters(), zeros))


def test_test_split_scores_every_member(gemonn_run):
    _, run_dir = gemonn_run
    metrics = evaluate_run(run_dir)
    table = read_front_csv(run_dir / "front.csv")
    rows = (run_dir / "evaluation.csv").read_text().splitlines()
    assert len(rows) == 1 + len(table["density"])
    assert metrics["test/loss_best"] <= metrics["test/loss_knee"]


def test_downstream_of_a_dense_baseline(compose_cfg, tmp_path):
    cfg = compose_cfg("optimizer=adam", "budget=60")
    train(cfg)
    metrics = evaluate_downstream(tmp_path / "run", "best", [0], QUICK)
    assert metrics["downstream/density"] == 1.0
    assert metrics["downstream/test_accuracy_mean"] > 0.3


def test_downstream_after_training_in_the_same_run(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.max_steps=3", "downstream.seeds=2", "downstream.epochs=1", "downstream.select=best")
    train(cfg)
    run = mlflow.tracking.MlflowClient(cfg.logger.tracking_uri).search_runs(
        [mlflow.tracking.MlflowClient(cfg.logger.tracking_uri).get_experiment_by_name("ggevo").experiment_id])[0]
    record = json.loads((tmp_path / "run" / "downstream.json").read_text())
    assert record["select"] == "best" and record["recipe"]["epochs"] == 1
    assert run.data.metrics["downstream/test_accuracy_mean"] == pytest.approx(record["test_accuracy_mean"])


def test_bad_downstream_rule_fails_before_compute(compose_cfg):
    with pytest.raises(ConfigError, match="^downstream.select:"):
        train(compose_cfg("downstream.seeds=1", "downstream.select=sparsest"))
