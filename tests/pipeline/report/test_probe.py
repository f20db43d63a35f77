"""The linear probe of each front member's frozen encoder features (``ggevo-evaluate --probe``)."""

import mlflow
import pytest
import torch

from ggevo.ea.front import within
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.report.held_out import evaluate_probe, load_run
from ggevo.pipeline.report.probe import linear_probe
from ggevo.pipeline.run.train import train
from tests.pipeline.processes import cli as _cli
from tests.pipeline.processes import one_line as _one_line


@pytest.fixture
def ae_run(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.max_steps=4")
    train(cfg)
    return cfg, tmp_path / "run"


def test_features_that_carry_the_image_beat_features_that_carry_nothing(ae_run):
    _, run_dir = ae_run
    _, module, data, front = load_run(run_dir)
    model = module.evaluator.flat.module
    member = front["X"][-1]
    blank = torch.zeros_like(member)  # every hidden unit sigmoid(0): the same feature for every image
    before = [p.detach().clone() for p in model.parameters()]
    probe = linear_probe(model, torch.stack((member, blank)), data, C=1.0)  # 480 training images: a weak penalty
    _, y_test = data.splits["test"]
    majority = float(torch.bincount(y_test).max()) / len(y_test)
    assert probe["test_accuracy"][1] <= majority  # a constant feature: one class for every image
    assert probe["test_accuracy"][0] > majority + 0.3
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))  # the module's own weights untouched


def test_probe_csv_has_a_row_per_member_and_mlflow_has_the_metrics(ae_run):
    cfg, run_dir = ae_run
    metrics = evaluate_probe(run_dir)
    table = read_front_csv(run_dir / "front.csv")
    probe = read_front_csv(run_dir / "probe.csv")
    assert probe["density"] == table["density"]
    assert all(0.0 <= a <= 1.0 for a in probe["probe_test_accuracy"] + probe["probe_train_accuracy"])
    run_id = torch.load(run_dir / "front.pt", weights_only=False)["mlflow_run_id"]
    logged = mlflow.tracking.MlflowClient(cfg.logger.tracking_uri).get_run(run_id).data.metrics
    assert logged["probe/test_accuracy_knee"] == pytest.approx(metrics["probe/test_accuracy_knee"])
    under = [a for d, a in zip(probe["density"], probe["probe_test_accuracy"]) if within(torch.tensor(d), 0.5)]
    assert under and max(under) == pytest.approx(metrics["probe/test_accuracy_at_density_0.5"])


def test_a_classifier_has_no_encoder_to_probe(compose_cfg, tmp_path):
    train(compose_cfg("model=mlp", "~model.hidden", "model.widths=[16]", "data=digits", "trainer.max_steps=2"))
    _, module, data, front = load_run(tmp_path / "run")
    with pytest.raises(ConfigError, match="^a linear probe needs an autoencoder with encode"):
        linear_probe(module.evaluator.flat.module, front["X"], data)


@pytest.mark.slow
def test_a_bad_probe_c_fails_in_one_line_before_anything_is_written(compose_cfg, tmp_path):
    train(compose_cfg("trainer.max_steps=2"))
    proc, _ = _cli("ggevo.pipeline.report.held_out", str(tmp_path / "run"), "--probe", "--probe-c", "0")
    assert proc.returncode == 2
    assert _one_line(proc) == "error: --probe-c must be positive, got 0.0"
    assert not (tmp_path / "run" / "evaluation.csv").exists() and not (tmp_path / "run" / "probe.csv").exists()
