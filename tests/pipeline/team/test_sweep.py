"""Multiruns (slow): one MLflow parent per sweep, children found by parent id, jobs in parallel; the sweep's
record and the report drawn from it; a crashed sweep's parent closed with the worst status. Launchers beyond
this process: what a sweep's jobs need travels in the launcher's config (Ray's runtime environment,
submitit's setup commands); the shipped ray_cluster config connects to a running cluster, and a sweep on
it records one parent with a child per job."""

import os
import re
import signal
import shlex
import statistics
import subprocess
import sys

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ggevo.pipeline.core.paths import project_root
from ggevo.pipeline.record.sweep_mlflow import children
from ggevo.pipeline.record.sweep_record import group_jobs, read_record
from ggevo.pipeline.record.tracking import PARENT_ENV
from ggevo.pipeline.report.report import markdown_table, report, report_sweep, table_rows
from ggevo.pipeline.run.checks import close_abandoned_runs
from ggevo.pipeline.team.sweep import MlflowSweepCallback
from tests.conftest import ROOT
from tests.pipeline.conftest import SEEDS
from tests.pipeline.processes import wait_for_generation as _wait_for_generation
from tests.pipeline.records import runs as _runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "ggevo.train", "-m", "experiment=smoke", "seed=0,1", "hydra/launcher=local_parallel",
         "trainer.max_steps=40", "trainer.val_check_interval=40", "checkpoint.every_n_steps=40",
         f"logger.tracking_uri={uri}", f"hydra.sweep.dir={tmp / 'multirun'}",
         f"sweep_record={tmp / 'record'}"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name("ggevo")
    parent = client.search_runs([exp.experiment_id], "tags.`ggevo.role` = 'sweep'")
    assert len(parent) == 1
    return tmp, uri, client, parent[0], proc.stdout


def test_parallel_jobs_share_the_cores(sweep):
    """hydra/launcher=local_parallel runs n_jobs=2 at once; threads=auto gives each cores // 2 torch threads."""
    stdout = sweep[4]
    cores = len(os.sched_getaffinity(0))
    line = f"torch threads: {max(1, cores // 2)} per job, 2 jobs at once on {cores} cores"
    assert stdout.count(line) == 2, stdout[-2000:]


def test_one_parent_and_a_child_per_job(sweep):
    tmp, uri, client, parent, stdout = sweep
    assert parent.info.run_id in stdout  # the sweep says where its parent run is
    assert parent.data.tags["ggevo.sweep.params"] == "seed"
    runs = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in runs)
    record = read_record(tmp / "record")  # the sweep's record names its parent and each child once
    assert record.parent_run_id == parent.info.run_id and record.swept == ["seed"]
    assert sorted(j.mlflow_run_id for j in record.jobs) == sorted(r.info.run_id for r in runs)
    assert sorted(j.seed for j in record.jobs) == ["0", "1"] and {j.status for j in record.jobs} == {"FINISHED"}
    assert all(r.info.artifact_uri.startswith((tmp / "mlartifacts").as_uri()) for r in runs)


def test_joblib_runs_jobs_in_parallel_processes(sweep):
    _, _, client, parent, _ = sweep
    a, b = children(client, parent)
    assert a.data.tags["pid"] != b.data.tags["pid"]
    assert a.info.start_time < b.info.end_time and b.info.start_time < a.info.end_time  # they overlapped


def test_report_table_equals_logged_metrics(sweep, tmp_path):
    tmp, uri, client, parent, _ = sweep
    runs = children(client, parent)
    record = read_record(tmp / "record")
    rows = table_rows(group_jobs(record.jobs, record.swept))
    assert len(rows) == 1 and rows[0]["runs"] == 2
    hv = [r.data.metrics["final/hypervolume"] for r in runs]
    assert rows[0]["final/hypervolume"] == pytest.approx((statistics.fmean(hv), statistics.stdev(hv)))
    loss = [r.data.metrics["final/train_loss_best"] for r in runs]
    assert rows[0]["final/train_loss_best"][0] == pytest.approx(statistics.fmean(loss))

    text = report_sweep(record, tmp_path / "files").read_text()
    assert text == markdown_table(rows, text.splitlines()[0][3:])
    tables = report(uri, tmp_path, parents=[parent.info.run_id], single=())  # the same, from the store
    assert tables[0].read_text() == text
    cell = re.search(r"\| all runs \| 2 \| ([0-9.e-]+) ± ", text).group(1)
    assert float(cell) == pytest.approx(statistics.fmean(hv), rel=1e-3)
    assert (tmp_path / "smoke" / "hypervolume.png").stat().st_size > 10_000
    assert (tmp_path / "smoke" / "fronts.png").stat().st_size > 10_000


def test_method_comparison_groups_by_optimizer_choice(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "ggevo.train", "-m", "experiment=smoke", "optimizer=gemonn,adam", "budget=48",
         "downstream.seeds=1", "downstream.epochs=1", f"sweep_record={tmp_path / 'record'}",
         f"logger.tracking_uri={uri}", f"hydra.sweep.dir={tmp_path / 'multirun'}"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (table,) = report(uri, tmp_path / "reports", presets=("smoke",), single=())
    text = table.read_text()
    assert "| optimizer=gemonn | 1 |" in text and "| optimizer=adam | 1 |" in text
    assert (tmp_path / "reports" / "smoke" / "loss_by_evaluations.png").stat().st_size > 10_000
    client = mlflow.tracking.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ggevo").experiment_id], "tags.`ggevo.role` = 'train'")
    accuracy = {r.data.tags["choice.optimizer"]: r.data.metrics["downstream/test_accuracy_mean"] for r in runs}
    downstream = (tmp_path / "reports" / "smoke" / "downstream.md").read_text()
    for method, value in accuracy.items():  # one row per method, its run's accuracy (one seed: std 0)
        assert f"| optimizer={method} | 1 | " in downstream and f"{value:.4g} ± 0" in downstream
    assert (tmp_path / "reports" / "smoke" / "connections.png").stat().st_size > 10_000
    # the record a multirun writes (config-group choices from its run folders) draws the same tables
    record = read_record(tmp_path / "record")
    assert [j.settings["optimizer"] for j in record.jobs] == ["gemonn", "adam"]
    assert report_sweep(record, tmp_path / "files").read_text() == text
    assert (tmp_path / "files" / "smoke" / "downstream.md").read_text() == downstream
    assert (tmp_path / "files" / "smoke" / "budgets.md").read_text() == \
        (tmp_path / "reports" / "smoke" / "budgets.md").read_text()
    assert (tmp_path / "files" / "smoke" / "reconstructions.png").stat().st_size > 10_000


@pytest.mark.slow
def test_a_crashed_multirun_closes_its_parent_with_the_worst_status(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ggevo.train", "-m", "experiment=smoke", "optimizer.weight_bound=10,-1",
         f"logger.tracking_uri=sqlite:///{tmp_path / 'm.db'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: optimizer.weight_bound: ")
    _, runs = _runs(tmp_path)
    (parent,) = [r for r in runs if r.data.tags.get("ggevo.role") == "sweep"]
    assert parent.info.status == "FAILED"
    assert [r.info.status for r in runs if r.data.tags.get("ggevo.role") == "train"] == ["FINISHED"]


def test_a_multirun_killed_outright_has_its_parent_closed_killed_by_the_next_command(tmp_path):
    """SIGKILL leaves no atexit: the sweep folder's lock, free once the process is gone, tells it is dead."""
    uri, sweep_dir = f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "multirun"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ggevo.train", "-m", "experiment=smoke", "trainer.max_steps=400", "seed=0,1",
         "checkpoint.every_n_steps=1", f"logger.tracking_uri={uri}", f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_generation(sweep_dir, 2, run="0")
    assert close_abandoned_runs(uri) == []  # alive: the multirun holds its folder, the job its own
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    _, runs = _runs(tmp_path)
    assert sorted(r.info.status for r in runs) == ["RUNNING", "RUNNING"]  # nothing of the killed process closed them
    (parent,) = [r for r in runs if r.data.tags.get("ggevo.role") == "sweep"]
    assert parent.data.tags["ggevo.run_dir"] == str(sweep_dir.resolve())
    assert sorted(close_abandoned_runs(uri)) == sorted(r.info.run_id for r in runs)  # what the next command does
    _, runs = _runs(tmp_path)
    assert [r.info.status for r in runs] == ["KILLED", "KILLED"]
    assert all("no longer held" in r.data.tags["ggevo.failure"] for r in runs)


# ------------------------------------------------------------------ launchers beyond this process
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


# ------------------------------------------------------------------ a sweep on a Ray cluster into the team server
def test_ray_sweep_records_one_parent_with_a_finished_child_per_job(team_sweep):
    t = team_sweep
    assert t.parent.info.run_id in t.sweep.stdout
    assert t.parent.data.tags["ggevo.sweep.params"] == "seed"
    assert sorted(int(r.data.params["seed"]) for r in t.children) == list(SEEDS)
    assert [r.info.status for r in t.children] == ["FINISHED"] * len(SEEDS), \
        [r.data.tags.get("ggevo.failure") for r in t.children]
    # jobs ran in Ray workers, not in the launching process, and stored artifacts through the server
    assert all(r.data.tags["pid"] != str(t.driver_pid) for r in t.children)
    assert "(_run_job pid=" in t.sweep.stdout
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:/") for r in t.children)
    assert t.client.get_experiment(t.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
