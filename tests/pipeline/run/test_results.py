"""What a run leaves: its front without duplicate members, and a front without one finite loss refused."""

import json

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


def test_a_run_with_density_bands_reports_each_bands_best_beside_the_front(compose_cfg, tmp_path):
    """With ``band_edges`` the population keeps each band's best network alive though a sparser one dominates
    it; the run reports those beside the front (``dominated`` 1), so every band the population holds has a
    model, while the knee, front size and hypervolume stay the front's."""
    from ggevo.ea.front import first_front, hypervolume
    from ggevo.ea.selection import band_elites

    run = ("model=mlp", "~model.hidden", "model.widths=[16]", "data=digits", "optimizer=gemonn_plus_gradual",
           "optimizer.pop_size=8", "optimizer.warmup=1", "optimizer.trunk=4", "optimizer.trunk_fraction=null",
           "hv_ref=[1.1,1.1]", "trainer.max_steps=16")
    cfg = compose_cfg(*run)
    train(cfg)
    table = read_front_csv(tmp_path / "run" / "front.csv")
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    state = checkpoint["optimizer_states"][0]["state"][0]
    F, edges = state["F"].double(), list(cfg.optimizer.band_edges)
    key = lambda d, f: (round(float(d), 6), round(float(f), 6))  # noqa: E731
    rows = list(zip(table["density"], table["minibatch_loss"], table["dominated"]))
    listed = sorted(key(d, f) for d, f, x in rows if not x)
    added = sorted(key(d, f) for d, f, x in rows if x)
    assert set(listed) == {key(d, f) for d, f in F[first_front(F)].tolist()}  # the front (a copy recorded once)
    bands = lambda rows: {sum(d >= e for e in edges) for d, _ in rows if edges[0] <= d < edges[-1]}  # noqa: E731
    elites = [key(d, f) for d, f in F[band_elites(F, edges)].tolist()]
    assert added and added == sorted(e for e in elites if not bands([e]) <= bands(listed))  # the bands the front lacks
    assert bands(listed + added) == bands(key(d, f) for d, f in F.tolist())  # a model in every band the population has
    assert table["density"] == sorted(table["density"])
    assert not table["dominated"][table["knee"].index(1.0)]  # the knee is the front's
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["final/front_size"] == len(listed) and metrics["final/band_members"] == len(added)
    front = torch.tensor(listed, dtype=torch.float64)
    assert metrics["final/hypervolume"] == pytest.approx(hypervolume(front, [1.1, 1.1]), rel=1e-5)
    saved = torch.load(tmp_path / "run" / "front.pt", weights_only=False)
    assert len(saved["X"]) == len(table["density"])  # the band members' weights are saved with the front's


def test_a_run_without_bands_reports_its_front_alone(compose_cfg, tmp_path):
    train(compose_cfg("trainer.max_steps=3", "optimizer.pop_size=10", "model.hidden=4"))
    assert "dominated" not in read_front_csv(tmp_path / "run" / "front.csv")
    assert "final/band_members" not in json.loads((tmp_path / "run" / "metrics.json").read_text())
