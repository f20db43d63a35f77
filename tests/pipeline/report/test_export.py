"""``ggevo-export``: a front member as a standalone model that reproduces its logged metrics."""

import json
import subprocess
import sys

import pytest
import torch

from ggevo.lit.tasks import extra_scores, loss_for
from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.report.held_out import load_run
from ggevo.pipeline.report.export import export_member, load_exported, register_member
from ggevo.pipeline.run.train import train
from ggevo.pipeline.score.artifacts import choose_member
from tests.conftest import ROOT


def _split_means(model, data, split: str, task: str) -> dict[str, float]:
    """Full-split means of the loss (and accuracy) computed by plain forward passes of ``model``."""
    scores = {"loss": loss_for(task)} | extra_scores(task)
    sums, count = dict.fromkeys(scores, 0.0), 0
    with torch.no_grad():
        for x, y in data.batches(split):
            out = model(x)
            for k, fn in scores.items():
                sums[k] += float(fn(out, (x, y))) * len(x)
            count += len(x)
    return {k: v / count for k, v in sums.items()}


@pytest.mark.parametrize("select", ["knee", "density<=0.5"])
def test_exported_member_reloads_with_its_logged_loss(compose_cfg, tmp_path, select):
    cfg = compose_cfg("trainer.max_steps=3")
    train(cfg)
    run_dir = tmp_path / "run"
    record = export_member(run_dir, select)
    table = read_front_csv(run_dir / "front.csv")
    i = choose_member(table, select)
    assert record["member"] == i and record["density"] == table["density"][i]
    model = load_exported(run_dir / "export" / "model.pt")
    _, _, data, _ = load_run(run_dir)
    got = _split_means(model, data, "train", "reconstruction")
    assert got["loss"] == pytest.approx(table["train_loss"][i], rel=1e-5)
    dense = torch.load(run_dir / "export" / "model.pt", weights_only=False)["state_dict"]
    sparse = torch.load(run_dir / "export" / "model_sparse.pt", weights_only=False)
    assert sum(int(torch.count_nonzero(v)) for v in dense.values()) == record["nonzeros"]
    for name, tensor in dense.items():
        if tensor.dim() >= 2:
            assert sparse[name].is_sparse
            assert sparse[name]._nnz() == int(torch.count_nonzero(tensor))
            assert torch.equal(sparse[name].to_dense(), tensor)
        else:
            assert torch.equal(sparse[name], tensor)
    assert json.loads((run_dir / "export" / "model.json").read_text())["nonzeros"] == record["nonzeros"]


@pytest.mark.slow
def test_export_cli_fails_in_one_line_on_an_impossible_budget(compose_cfg, tmp_path):
    train(compose_cfg("trainer.max_steps=2"))
    proc = subprocess.run([sys.executable, "-m", "ggevo.pipeline.report.export", str(tmp_path / "run"), "--select",
                           "density<=0.0001"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: select: no front member has density ≤ 0.0001")


def test_a_registered_member_loads_from_the_registry_with_its_zeros_and_loss(compose_cfg, tmp_path):
    import mlflow
    import mlflow.pytorch

    cfg = compose_cfg("trainer.max_steps=3")
    train(cfg)
    run_dir = tmp_path / "run"
    record = register_member(run_dir, "ggevo-smoke", "knee", alias="champion")
    assert record["model_uri"] == "models:/ggevo-smoke@champion"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(cfg.logger.tracking_uri)
    try:
        model = mlflow.pytorch.load_model("models:/ggevo-smoke@champion")
    finally:
        mlflow.set_tracking_uri(previous)
    exported = load_exported(run_dir / "export" / "model.pt")
    assert model.state_dict().keys() == exported.state_dict().keys()
    for k, v in exported.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    flat = torch.cat([v.reshape(-1) for v in model.state_dict().values()])
    assert int(torch.count_nonzero(flat)) == record["nonzeros"] < flat.numel()  # the zeros are kept
    _, _, data, _ = load_run(run_dir)
    table = read_front_csv(run_dir / "front.csv")
    loss = _split_means(model.eval(), data, "train", "reconstruction")["loss"]
    assert loss == pytest.approx(table["train_loss"][record["member"]], rel=1e-5)
    client = mlflow.tracking.MlflowClient(cfg.logger.tracking_uri)
    version = client.get_model_version_by_alias("ggevo-smoke", "champion")
    assert version.tags["ggevo.select"] == "knee"
    (run,) = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment_name).experiment_id])
    assert run.info.status == "FINISHED"  # registering attached the model without reopening the run for good


def test_every_run_logs_its_knee_model_and_its_dataset(compose_cfg, tmp_path):
    import mlflow
    import mlflow.pytorch

    cfg = compose_cfg("trainer.max_steps=3")
    train(cfg)
    client = mlflow.tracking.MlflowClient(cfg.logger.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment_name).experiment_id])
    assert run.info.status == "FINISHED"  # logging the model left the run's end to the recorder
    (dataset,) = [d.dataset for d in run.inputs.dataset_inputs]
    assert dataset.name == run.data.tags["data.name"]
    assert run.data.tags["data.data_sha1"].startswith(dataset.digest)
    assert json.loads(dataset.profile)["splits"] == run.data.tags["data.splits"]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(cfg.logger.tracking_uri)
    try:
        (logged,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
        assert logged.name == "knee_model" and logged.source_run_id == run.info.run_id
        model = mlflow.pytorch.load_model(logged.model_uri)
        info = mlflow.models.get_model_info(logged.model_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    knee = torch.load(tmp_path / "run" / "knee_model.pt", weights_only=False)
    for name, tensor in knee["state_dict"].items():
        assert torch.equal(model.state_dict()[name], tensor), name  # the knee's weights, zeros included
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"][-1] == int(run.data.tags["data.features"])
    _, _, data, _ = load_run(tmp_path / "run")
    loss = _split_means(model.eval(), data, "train", "reconstruction")["loss"]
    assert loss == pytest.approx(knee["train_loss"], rel=1e-5)
