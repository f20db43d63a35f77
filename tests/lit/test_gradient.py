"""The gradient baselines (SGD, Adam, iterative magnitude pruning, GMP, RigL, one-shot pruning; ``GradientModule``
and ``SparseModule``) end to end through the train entry point: the common schema, exactly their budget of
gradient evaluations, zeros that stay zero, and a diverging one failing in one line."""

import mlflow
import pytest
import pytorch_lightning as pl
import torch

from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.run.train import train
from tests.pipeline.records import runs as _runs


def _run(cfg):
    """The one run of the config's experiment."""
    client = mlflow.tracking.MlflowClient(tracking_uri=cfg.logger.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment_name).experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_diverging_gradient_baseline_fails_in_one_line(compose_cfg, optimizer):
    """Cross-entropy is unbounded: Adam at lr 1e9 once ran to a finite loss of 8e8 and "succeeded"."""
    cfg = compose_cfg("model=mlp", "data=digits", "~model.hidden", "model.widths=[16]", "hv_ref=[1.1,2.5]",
                      f"optimizer={optimizer}", "optimizer.lr=1e9", "budget=40")
    with pytest.raises(FloatingPointError) as err:
        train(cfg)
    assert str(err.value).startswith("optimizer.lr: training diverged") and "\n" not in str(err.value)
    (run,) = _runs(cfg)[1]
    assert run.info.status == "FAILED"


# ------------------------------------------------------------------ gradient baselines
SCHEMA = ("hypervolume", "evaluations", "loss/min", "loss/knee", "density/knee", "front/size",
          "final/hypervolume", "final/train_loss_best", "final/density_knee", "wall_time_s")


TARGETS = [0.5, 0.25, 0.1, 0.05, 0.02]
# each preset's front densities, and what its tiny run needs (a mask update every 5 steps fits 120)
PRESETS = {
    "sgd": ([1.0], ()),
    "adam": ([1.0], ()),
    "imp": ([1.0, *TARGETS], ()),
    "imp_lr3e-3": ([1.0, *TARGETS], ()),
    "imp_lr1e-2": ([1.0, *TARGETS], ()),
    "gmp": ([1.0, *TARGETS], ("optimizer.update_every=5",)),
    "rigl": (TARGETS, ("optimizer.update_every=5",)),
    "oneshot": ([1.0, *TARGETS], ()),
}


class CountEvaluations(pl.Callback):
    """Counts backward passes through each network the module trains: one gradient evaluation each."""

    def __init__(self):
        self.count = 0

    def on_fit_start(self, trainer, module):
        for net in getattr(module, "networks", None) or [module.model]:
            last = [p for p in net.parameters() if p.requires_grad][-1]
            last.register_post_accumulate_grad_hook(lambda p: setattr(self, "count", self.count + 1))




@pytest.mark.parametrize("optimizer", list(PRESETS))
def test_baseline_logs_the_common_schema_and_spends_its_budget(compose_cfg, tmp_path, optimizer):
    densities, overrides = PRESETS[optimizer]
    cfg = compose_cfg(f"optimizer={optimizer}", "budget=120", f"logger.experiment_name={optimizer}", *overrides)
    counter = CountEvaluations()
    train(cfg, callbacks=[counter])
    client, run = _run(cfg)
    assert run.info.status == "FINISHED"
    assert set(SCHEMA) <= set(run.data.metrics)
    assert counter.count == run.data.metrics["evaluations"] == 120
    assert run.data.params["optimizer._target_"].startswith("torch.optim.")
    assert {"front.csv", "pareto.png", "knee_model.pt"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    front = read_front_csv(tmp_path / "run" / "front.csv")
    assert front["density"] == pytest.approx(densities, abs=2e-3)
    assert run.data.metrics["final/front_size"] == len(densities)


@pytest.mark.parametrize(("optimizer", "spent"), [("rigl", 5 * 60), ("oneshot", 30 + 5 * 30)])
def test_whole_budget_per_density_gives_each_density_the_whole_budget(compose_cfg, tmp_path, optimizer, spent):
    """RigL's five networks get 60 steps each; one-shot's five fine-tuned ones the whole rest (30) each."""
    _, overrides = PRESETS[optimizer]
    cfg = compose_cfg(f"optimizer={optimizer}", "budget=60", "optimizer.budget_per_density=whole",
                      f"logger.experiment_name={optimizer}", *overrides)
    counter = CountEvaluations()
    train(cfg, callbacks=[counter])
    _, run = _run(cfg)
    assert counter.count == run.data.metrics["evaluations"] == spent
    assert run.data.metrics["generation"] == 60  # Lightning steps: the budget, several networks a step
    assert read_front_csv(tmp_path / "run" / "front.csv")["density"] == pytest.approx(PRESETS[optimizer][0], abs=2e-3)


def test_dense_baseline_spends_the_budget_of_its_paired_ea_run(compose_cfg):
    ea = compose_cfg("budget=192", "logger.experiment_name=ea")
    train(ea)
    adam = compose_cfg("optimizer=adam", "budget=192", "logger.experiment_name=adam", run="adam")
    train(adam)
    evaluations = [_run(c)[1].data.metrics["evaluations"] for c in (ea, adam)]
    assert evaluations == [192, 192]  # N=8 re-scoring: 12 generations x 2N, and 192 Adam steps
    paper = compose_cfg("experiment=paper_ae", "budget=25000")
    from ggevo.pipeline.run.train import apply_budget

    apply_budget(paper)
    assert paper.trainer.max_steps == 499  # 50 initial + 499 x 50 children = 25,000
    assert "generations" not in paper.optimizer  # no step schedule, nothing added


def test_a_step_schedule_learns_the_runs_length_from_the_budget_or_max_steps(compose_cfg):
    from ggevo.pipeline.run.train import apply_budget

    budgeted = compose_cfg("optimizer=gemonn_plus_gradual", "budget=5000", "+optimizer.lr_final=0.1")
    apply_budget(budgeted)
    assert budgeted.optimizer.generations == budgeted.trainer.max_steps > budgeted.optimizer.trunk == 1600
    plain = compose_cfg("+optimizer.lr_final=0.1", "trainer.max_steps=70")
    apply_budget(plain)
    assert plain.optimizer.generations == 70


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
