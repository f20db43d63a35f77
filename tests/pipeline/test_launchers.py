"""Launchers beyond this process: what a sweep's jobs need travels in the launcher's config (Ray's runtime
environment, submitit's setup commands); the shipped ray_cluster config connects to a running cluster."""

from __future__ import annotations

import shlex
import subprocess
import sys

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ggevo.pipeline.core.paths import project_root
from ggevo.pipeline.record.recorder import ensure_experiment
from ggevo.pipeline.record.tracking import EXPERIMENT_KIND, PARENT_ENV
from ggevo.pipeline.team.sweep import MlflowSweepCallback
from tests.conftest import ROOT

# The launchers come with the team extra (pip install -e ".[team]"), which the fast suite runs without: the
# tests that need one are slow tests (CI runs them after installing it) and skip where it is missing.
RAY_LAUNCHER, SUBMITIT_LAUNCHER = "hydra_plugins.hydra_ray_launcher", "hydra_plugins.hydra_submitit_launcher"


def _sweep_config(tmp_path, launcher: str, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"hydra/launcher={launcher}", "experiment=smoke",
                                            f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", *overrides],
                       return_hydra_config=True)


def _open_sweep(cfg, monkeypatch) -> MlflowSweepCallback:
    monkeypatch.setenv(PARENT_ENV, "")  # restored afterwards: the callback sets it for in-process jobs
    callback = MlflowSweepCallback()
    callback.on_multirun_start(cfg)
    return callback


@pytest.mark.slow
def test_ray_cluster_config_connects_to_a_running_cluster(tmp_path):
    pytest.importorskip(RAY_LAUNCHER)
    init = _sweep_config(tmp_path, "ray_cluster").hydra.launcher.ray.init
    assert init.address == "auto"
    # hydra-ray-launcher does init.setdefault("object_store_memory", 75 MB), which Ray refuses when
    # connecting; the shipped key (null) keeps it out
    init.setdefault("object_store_memory", 78643200)
    assert init.object_store_memory is None


@pytest.mark.slow
def test_ray_jobs_get_uri_parent_and_root_in_their_runtime_env(tmp_path, monkeypatch):
    pytest.importorskip(RAY_LAUNCHER)
    cfg = _sweep_config(tmp_path, "ray_cluster", "+hydra.launcher.ray.remote.runtime_env.env_vars.KEEP=me")
    callback = _open_sweep(cfg, monkeypatch)
    launcher = instantiate(cfg.hydra.launcher)  # what the launcher hands to ray.remote
    env = launcher.ray_cfg.remote.runtime_env.env_vars
    assert dict(env) == {"KEEP": "me", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
                         PARENT_ENV: callback.run_id, "GGEVO_ROOT": str(project_root())}
    assert launcher.ray_cfg.remote.num_cpus == 2
    run = mlflow.tracking.MlflowClient(callback.uri).get_run(callback.run_id)
    assert run.data.tags["ggevo.role"] == "sweep"


@pytest.mark.slow
def test_slurm_jobs_export_uri_parent_and_root_in_their_sbatch_script(tmp_path, monkeypatch):
    pytest.importorskip(SUBMITIT_LAUNCHER)
    from submitit.slurm.slurm import _make_sbatch_string

    cfg = _sweep_config(tmp_path, "slurm", "hydra.launcher.partition=cpu")
    callback = _open_sweep(cfg, monkeypatch)
    setup = list(cfg.hydra.launcher.setup)
    script = _make_sbatch_string(command="python -u -m submitit.core._submit", folder=str(tmp_path), setup=setup)
    exports = {line.split("=", 1)[0].removeprefix("export "): shlex.split(line.split("=", 1)[1])[0]
               for line in script.splitlines() if line.startswith("export ") and "SUBMITIT" not in line}
    assert exports == {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", PARENT_ENV: callback.run_id,
                       "GGEVO_ROOT": str(project_root())}
    lines = script.splitlines()
    assert max(i for i, l in enumerate(lines) if l.startswith(f"export {PARENT_ENV}=")) < \
        min(i for i, l in enumerate(lines) if l.startswith("srun"))


def test_experiments_carry_the_model_training_kind(tmp_path):
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    new = ensure_experiment(client, "fresh", None)
    assert client.get_experiment(new).tags == EXPERIMENT_KIND
    old = client.create_experiment("older")  # made before ggevo tagged its experiments
    assert ensure_experiment(client, "older", None) == old
    assert client.get_experiment(old).tags == EXPERIMENT_KIND
    client.set_experiment_tag(old, "mlflow.experimentKind", "genai_development")  # a user's choice stays
    ensure_experiment(client, "older", None)
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "genai_development"


@pytest.mark.slow
def test_submitit_local_sweep_records_children_of_one_parent(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "ggevo.train", "-m", "hydra/launcher=submitit_local", "experiment=smoke", "seed=0,1",
         "trainer.max_steps=3", "trainer.val_check_interval=3", "checkpoint.every_n_steps=3",
         f"logger.tracking_uri={uri}", f"hydra.sweep.dir={tmp_path / 'multirun'}"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name("ggevo")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`ggevo.role` = 'sweep'")
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.data.params["seed"] for r in children) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in children)
    # each job ran in its own submitit process, under the setup commands the sweep gave it
    assert len({r.data.tags["pid"] for r in children}) == 2
    logs = list((tmp_path / "multirun").glob(".submitit/*/*_log.out"))
    assert len(logs) == 2
