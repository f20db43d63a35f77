"""Gradient baselines (SGD, Adam, iterative magnitude pruning) through the same entry point and schema."""

import mlflow
import pytest
import torch

from ggevo.pipeline.artifacts import read_front_csv
from ggevo.pipeline.train import train

SCHEMA = ("hypervolume", "evaluations", "loss/min", "loss/knee", "density/knee", "front/size",
          "final/hypervolume", "final/train_loss_best", "final/density_knee", "wall_time_s")


def _run(cfg):
    client = mlflow.tracking.MlflowClient(cfg.logger.tracking_uri)
    exp = client.get_experiment_by_name(cfg.logger.experiment_name)
    (run,) = client.search_runs([exp.experiment_id])
    return client, run


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "imp"])
def test_baseline_logs_the_common_schema(compose_cfg, tmp_path, optimizer):
    cfg = compose_cfg(f"optimizer={optimizer}", "budget=120", f"logger.experiment_name={optimizer}")
    train(cfg)
    client, run = _run(cfg)
    assert set(SCHEMA) <= set(run.data.metrics)
    assert run.data.metrics["evaluations"] == 120
    assert run.data.params["optimizer._target_"].startswith("torch.optim.")
    assert {"front.csv", "pareto.png", "knee_model.pt"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    front = read_front_csv(tmp_path / "run" / "front.csv")
    if optimizer == "imp":
        assert front["density"] == pytest.approx([1.0, 0.5, 0.25, 0.1, 0.05, 0.02], abs=2e-3)
    else:
        assert front["density"] == [1.0]


def test_dense_baseline_spends_the_budget_of_its_paired_ea_run(compose_cfg):
    ea = compose_cfg("budget=192", "logger.experiment_name=ea")
    train(ea)
    adam = compose_cfg("optimizer=adam", "budget=192", "logger.experiment_name=adam", run="adam")
    train(adam)
    evaluations = [_run(c)[1].data.metrics["evaluations"] for c in (ea, adam)]
    assert evaluations == [192, 192]  # N=8 re-scoring: 12 generations x 2N, and 192 Adam steps
    paper = compose_cfg("experiment=paper_ae", "budget=25000")
    from ggevo.pipeline.train import apply_budget

    apply_budget(paper)
    assert paper.trainer.max_steps == 499  # 50 initial + 499 x 50 children = 25,000


def test_pruned_weights_stay_zero_through_retraining(compose_cfg, tmp_path):
    train(compose_cfg("optimizer=imp", "budget=120", "logger.experiment_name=imp"))
    X = torch.load(tmp_path / "run" / "front.pt", weights_only=False)["X"]
    for earlier, later in zip(X[1:], X[2:]):
        assert bool((later[earlier == 0] == 0).all())


def test_pymoo_nsga2_through_the_entry_point_logs_the_schema_and_resumes(compose_cfg, tmp_path):
    """pymoo's own NSGA-II: same schema, N + N·g evaluations, and a Lightning checkpoint resumes it exactly."""
    # two runs compared bit for bit: one named evaluation strategy (auto may measure differently in each)
    full = compose_cfg("optimizer=pymoo_nsga2", "budget=56", "logger.experiment_name=full",
                       "evaluation.strategy=vmap", run="full")
    train(full)
    _, run = _run(full)
    assert set(SCHEMA) <= set(run.data.metrics)
    assert run.data.metrics["evaluations"] == 56 and run.data.metrics["generation"] == 6  # 8 + 6 x 8
    assert run.data.params["optimizer._target_"] == "ggevo.ea.PymooNSGA2"
    part = compose_cfg("optimizer=pymoo_nsga2", "trainer.max_steps=3", "checkpoint.every_n_steps=3",
                       "logger.experiment_name=part", "evaluation.strategy=vmap", run="part")
    train(part)
    ckpt = tmp_path / "part" / "checkpoints" / "last.ckpt"
    train(compose_cfg("optimizer=pymoo_nsga2", "trainer.max_steps=6", f"ckpt_path={ckpt}",
                      "logger.experiment_name=part", "evaluation.strategy=vmap", run="part"))
    state = lambda run: torch.load(tmp_path / run / "checkpoints" / "last.ckpt",  # noqa: E731
                                   weights_only=False)["optimizer_states"][0]["state"][0]
    a, b = state("full"), state("part")
    assert a["generation"] == b["generation"] == 6
    assert torch.equal(a["X"], b["X"]) and torch.equal(a["F"], b["F"])
