"""The autoencoder's yardstick: mean-image baseline, explained variance, reconstruction pictures."""

import mlflow
import pytest
import torch

from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.run.train import train
from ggevo.pipeline.score.reconstructions import add_explained_variance, mean_image_mse, spread_members


class _Splits:
    def __init__(self, train, val):
        self.splits = {"train": (train, None), "val": (val, None)}


def test_mean_image_mse_is_the_pixel_variance_and_a_constant_explains_nothing():
    g = torch.Generator().manual_seed(0)
    train_x, val_x = torch.rand(200, 16, generator=g), torch.rand(50, 16, generator=g)
    base = mean_image_mse(_Splits(train_x, val_x))
    assert base["train"] == pytest.approx(float(train_x.double().var(0, unbiased=False).mean()), rel=1e-9)
    mean = train_x.double().mean(0)
    assert base["val"] == pytest.approx(float(((val_x.double() - mean) ** 2).mean()), rel=1e-9)
    table = {"train_loss": torch.tensor([base["train"], 0.0, 2 * base["train"]], dtype=torch.float64),
             "val_loss": torch.tensor([base["val"]] * 3, dtype=torch.float64)}
    add_explained_variance(table, base)
    assert table["train_explained_variance"].tolist() == pytest.approx([0.0, 1.0, -1.0])


def test_members_are_spread_over_the_log_density_range():
    density = torch.tensor([0.01, 0.012, 0.03, 0.1, 0.11, 0.3, 0.5, 1.0])
    rows = spread_members(density, 5)
    assert rows[0] == 0 and rows[-1] == 7 and len(rows) == 5


def test_every_autoencoder_run_records_baseline_explained_variance_and_pictures(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.max_steps=3")
    train(cfg)
    client = mlflow.tracking.MlflowClient(cfg.logger.tracking_uri)
    run = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment_name).experiment_id])[0]
    base = run.data.metrics["baseline/mean_image_mse"]
    assert 0.05 < base < 0.1  # MNIST's pixel variance
    front = read_front_csv(tmp_path / "run" / "front.csv")
    for loss, ev in zip(front["train_loss"], front["train_explained_variance"]):
        assert ev == pytest.approx(1 - loss / base, rel=1e-5, abs=1e-6)
    knee = front["knee"].index(1.0)
    assert run.data.metrics["final/explained_variance_knee"] == pytest.approx(front["train_explained_variance"][knee],
                                                                              rel=1e-5, abs=1e-6)
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"reconstructions.png", "reconstructions.pt"} <= names
    record = torch.load(tmp_path / "run" / "reconstructions.pt", weights_only=False)
    assert record["images"].shape == (8, 784) and record["outputs"].shape[1:] == (8, 784)
    assert record["outputs"].shape[0] == len(record["density"]) >= 1
