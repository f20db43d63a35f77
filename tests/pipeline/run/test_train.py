"""End to end: tiny runs through the real Hydra config, Lightning and MLflow, read back through MLflow.
GEMONN+ as the default job (the gradient baselines end to end: tests/lit/test_gradient.py)."""

import subprocess
import sys

import mlflow
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.interrupts import RunKilled
from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.run.train import apply_budget, evaluations_for, generations_for, train
from ggevo.pipeline.run.validate import optimizer_arguments
from tests.conftest import ROOT, full_and_resumed
from tests.pipeline.records import runs as _runs


def _client(cfg):
    return mlflow.tracking.MlflowClient(tracking_uri=cfg.logger.tracking_uri)


def _only_run(cfg):
    client = _client(cfg)
    exp = client.get_experiment_by_name(cfg.logger.experiment_name)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_tiny_run_is_recorded_in_mlflow(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.max_steps=6", "trainer.val_check_interval=3", "evaluation.strategy=auto")
    hv = train(cfg)
    client, run = _only_run(cfg)
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer.pop_size"] == "8"
    assert run.data.params["model.hidden"] == "16"
    assert run.data.tags["dataset"] == "mnist5k" and "version.torch" in run.data.tags
    assert run.data.tags["mlflow.source.git.commit"] == run.data.tags["git_commit"]  # MLflow's own provenance
    assert run.data.tags["mlflow.source.name"] == "ggevo-train"
    # evaluation.strategy=auto: the measured choice and each candidate's time are run tags
    assert run.data.tags["evaluation.strategy"] in ("loop", "vmap")
    assert run.data.tags["evaluation.decided_by"] == "measurement"
    assert {"evaluation.time_s.loop", "evaluation.time_s.vmap"} <= set(run.data.tags)
    history = client.get_metric_history(run.info.run_id, "hypervolume")
    assert [m.step for m in history] == list(range(1, 7))
    assert run.data.metrics["final/hypervolume"] == pytest.approx(hv)
    assert run.data.metrics["evaluations"] == 8 + 6 * 8 + 5 * 8
    assert "val/loss_knee" in run.data.metrics
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"front.csv", "pareto.png", "knee_model.pt"} <= names
    front = read_front_csv(tmp_path / "run" / "front.csv")
    assert len(front["density"]) == int(run.data.metrics["final/front_size"])
    assert min(front["train_loss"]) == pytest.approx(run.data.metrics["final/train_loss_best"], rel=1e-6)
    assert sum(front["knee"]) == 1
    knee = torch.load(tmp_path / "run" / "knee_model.pt", weights_only=False)
    nonzero = sum(int((v != 0).sum()) for v in knee["state_dict"].values())
    total = sum(v.numel() for v in knee["state_dict"].values())
    assert nonzero / total == pytest.approx(knee["density"], abs=1e-6)


def test_resume_from_checkpoint_equals_uninterrupted_run(compose_cfg, tmp_path):
    # two separate runs compared bit for bit: one named strategy (auto may measure differently in each)
    full_cfg = compose_cfg("trainer.max_steps=6", "checkpoint.every_n_steps=3", "evaluation.strategy=vmap",
                           run="full")
    train(full_cfg)
    part = compose_cfg("trainer.max_steps=3", "checkpoint.every_n_steps=3", "logger.experiment_name=resume",
                       "evaluation.strategy=vmap", run="part")
    train(part)
    ckpt = tmp_path / "part" / "checkpoints" / "last.ckpt"
    resumed = compose_cfg("trainer.max_steps=6", "checkpoint.every_n_steps=3", "logger.experiment_name=resume",
                          "evaluation.strategy=vmap", f"ckpt_path={ckpt}", run="part")
    train(resumed)
    state = lambda run: torch.load(tmp_path / run / "checkpoints" / "last.ckpt",  # noqa: E731
                                   weights_only=False)["optimizer_states"][0]["state"][0]
    a, b = state("full"), state("part")
    assert a["generation"] == b["generation"] == 6
    assert torch.equal(a["X"], b["X"]) and torch.equal(a["F"], b["F"])
    client, run = _only_run(resumed)  # the resumed run continues the same MLflow run
    assert [m.step for m in client.get_metric_history(run.info.run_id, "hypervolume")] == list(range(1, 7))


class _CtrlC(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 3:
            raise KeyboardInterrupt


def test_interrupted_run_keeps_its_state_and_resumes(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.max_steps=6", "checkpoint.every_n_steps=100", "evaluation.strategy=auto", run="killed")
    with pytest.raises(RunKilled) as killed:
        train(cfg, callbacks=[_CtrlC()])
    assert killed.value.exit_code == 130
    client, run = _only_run(cfg)
    assert run.info.status == "KILLED"
    assert "front.csv" in {a.path for a in client.list_artifacts(run.info.run_id)}
    ckpt = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["optimizer_states"][0]["state"][0]["generation"] == 3
    choice = torch.load(ckpt, weights_only=False)["ggevo"]["evaluation"]["choice"]
    train(compose_cfg("trainer.max_steps=6", "evaluation.strategy=auto", f"ckpt_path={ckpt}", run="killed"))
    _, run = _only_run(cfg)
    # the resumed part evaluates as the first part measured, instead of measuring again
    assert (run.data.tags["evaluation.strategy"], run.data.tags["evaluation.chunk_size"]) == \
        (choice[0], str(choice[1]))
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "generation")
    assert sorted(m.step for m in history) == list(range(1, 7))
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == list(range(1, 7))


@pytest.mark.parametrize("override,key", [
    ("optimizer.pop_size=7", "optimizer.pop_size"), ("optimizer.pop_size=-2", "optimizer.pop_size"),
    ("optimizer.eta=-1", "optimizer.eta"), ("data.name=imagenet", "data.name"),
    ("optimizer.sparsity_preservation=1.5", "optimizer.sparsity_preservation"),
    ("trainer.max_steps=0", "trainer.max_steps"), ("model.sign_agreement=maybe", "model.sign_agreement"),
    ("+optimizer.trunk_prune=cubic", "optimizer.trunk_prune"), ("+optimizer.select_on=test", "optimizer.select_on"),
])
def test_invalid_config_fails_before_compute(compose_cfg, override, key):
    with pytest.raises(ConfigError, match=f"^{key}:"):
        train(compose_cfg(override))


def test_held_out_selection_without_a_validation_split_fails_before_compute(compose_cfg, tmp_path):
    with pytest.raises(ConfigError, match="^optimizer.select_on: val needs a validation split"):
        train(compose_cfg("+optimizer.select_on=val", "data.val_fraction=0"))
    assert not (tmp_path / "mlflow.db").exists()  # nothing recorded


@pytest.mark.slow
def test_cli_reports_bad_values_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ggevo.train", "experiment=smoke", "optimizer.pop_size=7",
         f"logger.tracking_uri=sqlite:///{tmp_path / 'm.db'}", f"run_dir={tmp_path / 'r'}"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: optimizer.pop_size: must be an even integer ≥ 2, got 7"


@pytest.mark.parametrize("override, message", [
    ("model._target_=no_such_package.Net", "model._target_: cannot import 'no_such_package.Net'"),
    ("+model.nonsense=3", "model (ggevo.models.TiedAutoencoder): "),
])
def test_a_model_that_cannot_be_built_is_a_config_error(compose_cfg, override, message):
    with pytest.raises(ConfigError) as err:
        train(compose_cfg(override))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_sparse_finetuning_is_logged_as_a_second_front(compose_cfg, tmp_path):
    cfg = compose_cfg("finetune.steps=10", "finetune.lr=0.01")
    train(cfg)
    client, run = _only_run(cfg)
    assert run.data.metrics["finetuned/evaluations"] == 10 * run.data.metrics["final/front_size"]
    assert run.data.metrics["finetuned/hypervolume"] > run.data.metrics["final/hypervolume"]
    assert "front_finetuned.csv" in {a.path for a in client.list_artifacts(run.info.run_id)}
    before = read_front_csv(tmp_path / "run" / "front.csv")
    after = read_front_csv(tmp_path / "run" / "front_finetuned.csv")
    assert after["density"] == before["density"]  # zeros held: every member keeps its density


def test_resuming_against_a_store_without_its_run_fails_naming_both(compose_cfg, tmp_path):
    train(compose_cfg("trainer.max_steps=3", "checkpoint.every_n_steps=3", run="first"))
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    (tmp_path / "elsewhere").mkdir()
    other = f"sqlite:///{tmp_path / 'elsewhere' / 'm.db'}"
    cfg = compose_cfg("trainer.max_steps=6", f"ckpt_path={ckpt}", f"logger.tracking_uri={other}", run="first")
    with pytest.raises(ConfigError, match=r"ckpt_path: .*last\.ckpt belongs to MLflow run [0-9a-f]+, which the store "
                                          r"sqlite:///.*elsewhere/m\.db \(logger.tracking_uri\) does not hold"):
        train(cfg)
    client = mlflow.tracking.MlflowClient(other)
    assert all(not client.search_runs([e.experiment_id]) for e in client.search_experiments())  # nothing opened


def _job(*overrides: str):
    """The config ``ggevo-train *overrides`` runs (no test settings)."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_the_default_checkpoint_interval_is_the_measured_one():
    """Every 50 generations: every 10 cost 14% of the paper configuration's run (159 MB checkpoints),
    every 50 about 3% (conf/config.yaml, README)."""
    assert _job().checkpoint.every_n_steps == 50


class _CtrlCInValidation(pl.Callback):
    def on_validation_start(self, trainer, pl_module):
        if trainer.global_step == 4:
            raise KeyboardInterrupt


def test_a_validation_interrupted_is_made_up_on_resume(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.max_steps=6", "trainer.val_check_interval=2")
    with pytest.raises(RunKilled):
        train(cfg, callbacks=[_CtrlCInValidation()])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    train(compose_cfg("trainer.max_steps=6", "trainer.val_check_interval=2", f"ckpt_path={ckpt}"))
    client, (run,) = _runs(cfg)
    assert run.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/loss_min")) == [2, 4, 6]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "hypervolume")] == list(range(1, 7))


# ------------------------------------------------------------------ GEMONN+, the default job
PLUS = ("optimizer=gemonn_plus", "optimizer.pop_size=6", "optimizer.warmup=2", "trainer.max_steps=6",
        "checkpoint.every_n_steps=3")


def test_the_default_job_runs_a_gemonn_plus_preset(compose_cfg):
    assert compose_cfg("optimizer=gemonn_plus").optimizer.local_search_lr > 0
    default, faithful = _job(), _job("experiment=paper_ae")
    assert default.optimizer.local_search_lr > 0 and default.optimizer.mutation == "magnitude"
    assert "local_search_lr" not in faithful.optimizer and faithful.optimizer.mutation == "zero"


def test_what_exempt_biases_auto_decided_is_a_run_tag(compose_cfg):
    cfg = compose_cfg(*PLUS[:-2], "optimizer.exempt_biases=auto")
    train(cfg)
    _, run = _only_run(cfg)
    assert run.data.params["optimizer.exempt_biases"] == "auto"
    # 800 biases of the 13,344 entries of 784-16-784: 6 times a network's at min_density 0.01 (133 entries)
    assert run.data.tags["optimizer.exempt_biases_resolved"] == "false"


def test_a_budgeted_trunk_run_interrupted_resumes(compose_cfg, tmp_path):
    """A trunk whose length the budget derives (here 16 generations, not the preset's 8,000) resumes: the
    checkpoint's config is compared after the budget is applied, as it was stamped."""
    run = ("model=mlp", "~model.hidden", "model.widths=[16]", "data=digits", "optimizer=gemonn_plus_gradual",
           "optimizer.pop_size=4", "optimizer.warmup=1", "budget=50", "hv_ref=[1.1,1.1]", "checkpoint.every_n_steps=100")
    with pytest.raises(RunKilled):
        train(compose_cfg(*run, run="killed"), callbacks=[_CtrlC()])
    ckpt = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    train(compose_cfg(*run, f"ckpt_path={ckpt}", run="killed"))
    state = torch.load(ckpt, weights_only=False)["optimizer_states"][0]["state"][0]
    assert state["evaluations"] == 50 and state["generation"] == generations_for(50, 4, True, 2, warmup=1, trunk=16)


def test_a_trunk_validates_its_front_as_often_as_it_is_checkpointed(compose_cfg):
    """A trunk's front (the trunk and the networks not yet branched) is validated where its checkpoint is due: of a
    trunk of 12 generations of 4 networks, validated every 2, at 8 and 12; after it at every 2."""
    cfg = compose_cfg("model=mlp", "~model.hidden", "model.widths=[16]", "data=digits", "optimizer=gemonn_plus_trunk",
                      "optimizer.pop_size=4", "optimizer.warmup=1", "optimizer.trunk_fraction=null", "optimizer.trunk=12",
                      "trainer.max_steps=18", "trainer.val_check_interval=2", "hv_ref=[1.1,1.1]")
    train(cfg)
    client, (run,) = _runs(cfg)
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/loss_min")) == [8, 12, 14, 16, 18]


def test_budget_counts_warmup_and_offspring():
    # warm-up generations score N; later ones N re-scored parents + M children
    g = generations_for(10 * 3 + 12 * 5, 10, True, 2, warmup=3)
    assert g == 8
    assert generations_for(10 * 3 + 2 * 5, 10, False, 2, warmup=3) == 8
    # a trunk's generations score one network each, before the warm-up
    assert generations_for(40 + 10 * 3 + 12 * 5, 10, True, 2, warmup=3, trunk=40) == 48
    with pytest.raises(ConfigError, match="trunk"):
        generations_for(40, 10, True, 2, trunk=40)
    assert generations_for(12 * 5, 10, True, 2) == 5


@pytest.mark.parametrize("g", [0, 1, 2, 3, 4, 9, 3000])
@pytest.mark.parametrize("reevaluate, warmup", [(True, 0), (False, 0), (True, 3), (False, 3)])
def test_evaluations_invert_generations(g, reevaluate, warmup):
    if g == 0 and not warmup and not reevaluate:
        return  # the N initial networks' scores alone are no generation
    spent = evaluations_for(g, 10, reevaluate, 2, warmup)
    if g:
        assert generations_for(spent, 10, reevaluate, 2, warmup) == g
        assert generations_for(spent + 1, 10, reevaluate, 2, warmup) == g  # one evaluation short of the next


def test_a_trunk_preset_without_budget_spends_the_population_generations_budget():
    """trainer.max_steps=3000 generations of GEMONN+'s population are 35,400 evaluations; a trunk preset without
    a budget spends as many, 32% of them in its trunk, instead of a trunk that outlasts the run."""
    plus, rebase = _job("optimizer=gemonn_plus"), _job("optimizer=gemonn_plus_rebase")
    assert _job() == rebase  # the default job runs the bench's candidate preset
    apply_budget(plus)
    assert plus.budget is None and plus.trainer.max_steps == 3000
    o = plus.optimizer
    assert evaluations_for(3000, o.pop_size, o.reevaluate_parents, o.offspring, o.warmup) == 35400
    apply_budget(rebase)
    trunk = round(0.32 * 35400)
    assert rebase.budget == 35400 and rebase.optimizer.trunk == trunk
    assert rebase.trainer.max_steps == trunk + 300 + (35400 - trunk - 10 * 300) // 12
    fixed = _job("optimizer=gemonn_plus_rebase", "optimizer.trunk_fraction=null", "optimizer.trunk=100")
    apply_budget(fixed)  # a trunk given in generations: trainer.max_steps counts them too
    assert fixed.budget is None and fixed.trainer.max_steps == 3000 and fixed.optimizer.trunk == 100


def test_the_trunk_share_and_the_warmup_follow_the_model_task():
    """gemonn_plus_rebase gives the trunk's share and the warm-up by task: on a classifier half the budget and 150
    generations, on an autoencoder 0.32 and 300 (above); the optimizer is built with the warm-up the budget counted."""
    mlp = _job("optimizer=gemonn_plus_rebase", "model=mlp", "budget=10000")
    apply_budget(mlp)
    assert mlp.optimizer.trunk == 5000
    assert mlp.trainer.max_steps == 5000 + 150 + (10000 - 5000 - 10 * 150) // 12
    assert optimizer_arguments(mlp.optimizer, mlp.model.task)["warmup"] == 150
    one = _job("optimizer=gemonn_plus_rebase", "model=mlp", "budget=10000", "optimizer.warmup=20",
               "optimizer.trunk_fraction=0.1")  # a plain value is every task's
    apply_budget(one)
    assert one.optimizer.trunk == 1000 and one.trainer.max_steps == 1000 + 20 + (10000 - 1000 - 10 * 20) // 12
    partial = _job("optimizer=gemonn_plus_rebase", "model=mlp", "budget=10000",
                   "~optimizer.trunk_fraction", "+optimizer.trunk_fraction={reconstruction: 0.5}")
    with pytest.raises(ConfigError, match=r"optimizer\.trunk_fraction: gives no value for the model's task"):
        apply_budget(partial)


def test_a_classifiers_step_falls_after_the_trunk_and_an_autoencoders_stays_whole():
    """gemonn_plus_rebase lowers a classifier's step along a cosine over the evaluations after its trunk, to a tenth
    at the budget's last (``lr_schedule: after_trunk``, the budget passed as ``optimizer.evaluations``); an
    autoencoder's step stays whole, and its config gains no key."""
    mlp = _job("optimizer=gemonn_plus_rebase", "model=mlp", "budget=10000")
    apply_budget(mlp)
    args = optimizer_arguments(mlp.optimizer, mlp.model.task)
    assert (args["lr_final"], args["lr_schedule"], args["evaluations"], args["trunk"]) == (0.1, "after_trunk", 10000, 5000)
    unbudgeted = _job("optimizer=gemonn_plus_rebase", "model=mlp", "optimizer.trunk_fraction=null", "optimizer.trunk=100")
    apply_budget(unbudgeted)  # no budget: the evaluations trainer.max_steps generations spend, the trunk's among them
    o = unbudgeted.optimizer
    assert o.evaluations == 100 + evaluations_for(3000 - 100, o.pop_size, o.reevaluate_parents, o.offspring, 150)
    ae = _job("optimizer=gemonn_plus_rebase", "budget=10000")
    apply_budget(ae)
    assert optimizer_arguments(ae.optimizer, ae.model.task)["lr_final"] is None
    assert "evaluations" not in ae.optimizer and "generations" not in ae.optimizer


def test_gemonn_plus_resumes_exactly_mid_run(compose_cfg, tmp_path):
    a, b = full_and_resumed(compose_cfg, tmp_path, PLUS[:-2], steps=6, split=3)
    assert a["generation"] == b["generation"] == 6
    for key in ("X", "F", "M", "V", "T"):
        assert torch.equal(a[key], b[key]), key
    assert float(a["T"].max()) >= 5  # networks learnt through warm-up and evolution alike
