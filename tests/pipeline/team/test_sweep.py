"""Multiruns: one MLflow parent per sweep, children found by parent id, jobs in parallel; the sweep's
record and the report drawn from it."""

import os
import re
import statistics
import subprocess
import sys

import mlflow
import pytest

from ggevo.pipeline.record.sweep_mlflow import children
from ggevo.pipeline.record.sweep_record import group_jobs, read_record
from ggevo.pipeline.report.report import markdown_table, report, report_sweep, table_rows
from tests.conftest import ROOT


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
