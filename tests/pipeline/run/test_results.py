"""What a run leaves: its front without duplicate members, and a front without one finite loss refused."""

import pytest
import torch

from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.run.results import distinct
from ggevo.pipeline.run.train import train
from tests.pipeline.records import runs as _runs


def test_a_model_whose_every_loss_is_nan_fails_in_one_line(compose_cfg):
    cfg = compose_cfg("model._target_=tests.pipeline.broken_models.NaNAutoencoder", "trainer.max_steps=2")
    with pytest.raises(FloatingPointError) as err:
        train(cfg)
    assert "\n" not in str(err.value) and "finite" in str(err.value)
    (run,) = _runs(cfg)[1]
    assert run.info.status == "FAILED" and run.data.tags["ggevo.failure"].startswith("FloatingPointError: ")


def test_duplicate_members_are_recorded_once():
    X = torch.tensor([[0.0, 1.0], [0.0, 1.0], [2.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 3.0]])
    F = torch.tensor([[0.5, 1.0], [0.5, 1.0], [0.5, 2.0], [0.5, 1.0], [0.5, 2.0], [1.0, 0.5]])
    Xd, Fd = distinct(X, F)
    assert Xd.tolist() == [[0.0, 1.0], [2.0, 0.0], [3.0, 3.0]]
    assert Fd.tolist() == [[0.5, 1.0], [0.5, 2.0], [1.0, 0.5]]


def test_the_recorded_front_has_no_duplicate_rows(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.max_steps=3", "optimizer.pop_size=10", "model.hidden=4")
    train(cfg)
    front = torch.load(tmp_path / "run" / "front.pt", weights_only=False)["X"]
    assert len(torch.unique(front, dim=0)) == len(front)
    assert len(read_front_csv(tmp_path / "run" / "front.csv")["density"]) == len(front)
