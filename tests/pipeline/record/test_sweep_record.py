"""A sweep's record: written from real run folders, read back, and reported without the MLflow store."""

import csv
import json
import shutil
from pathlib import Path

import mlflow
import pytest
import torch
from hydra import compose, initialize_config_dir

from ggevo.lit.status import STATUS_KEYS
from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.record.history import read_history_csv
from ggevo.pipeline.record.recorder import open_parent
from ggevo.pipeline.record.sweep_record import (CONNECTIONS, INDEX, RECONSTRUCTIONS, first_layer, from_run_folders,
                                                group_jobs, read_record, unpack_mask, write_record)
from ggevo.pipeline.report.figures import plot_connections
from ggevo.pipeline.report.report import COLUMNS, markdown_table, report, report_run, report_sweep, table_rows
from ggevo.pipeline.run.train import train
from tests.conftest import ROOT

SWEPT = ["optimizer.pop_size", "seed"]
JOBS = {"0": ("6", "0"), "1": ("6", "1")}  # job folder -> (pop_size, seed): one setting, two seeds


def _cfg(tmp: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[
            "experiment=smoke", "data=digits", "model.inputs=64", "data.normalize=none",  # 8x8 images, loaded fast
            f"logger.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
            f"logger.artifact_location={(tmp / 'artifacts').as_uri()}", "trainer.max_steps=3",
            "trainer.val_check_interval=3", "checkpoint.every_n_steps=3", *overrides])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two real tiny runs as the jobs of one sweep (a parent run, each job's folder under ``multirun/``),
    plus a stale job folder of another sweep, as a multirun leaves them."""
    tmp = tmp_path_factory.mktemp("record")
    parent = open_parent(_cfg(tmp), "sweep smoke", {"ggevo.role": "sweep", "ggevo.sweep.params": ",".join(SWEPT),
                                                    "experiment_preset": "smoke"})
    for job, (pop, seed) in JOBS.items():
        train(_cfg(tmp, f"run_dir={tmp / 'multirun' / job}", f"optimizer.pop_size={pop}", f"seed={seed}",
                   f"+logger.parent_run_id={parent}"))
    stale = tmp / "multirun" / "7"
    shutil.copytree(tmp / "multirun" / "0", stale)
    info = json.loads((stale / "run.json").read_text())
    (stale / "run.json").write_text(json.dumps(info | {"parent_run_id": "an earlier sweep"}))
    jobs = from_run_folders(tmp / "multirun", parent, SWEPT)
    index = write_record(tmp / "sweeps" / "smoke", "smoke", parent, SWEPT, jobs)
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    return tmp, client, parent, read_record(index.parent)


def test_a_run_folder_holds_its_history_and_how_it_ended(sweep):
    tmp, client, parent, record = sweep
    for job in record.jobs:
        folder = tmp / "multirun" / job.name
        info = json.loads((folder / "run.json").read_text())
        assert info["status"] == "FINISHED" and info["parent_run_id"] == parent and info["failure"] is None
        assert info["mlflow_run_id"] == job.mlflow_run_id
        history = read_history_csv(folder / "history.csv")
        assert sorted(history) == sorted(STATUS_KEYS)
        for key in STATUS_KEYS:
            logged = {m.step: m.value for m in client.get_metric_history(job.mlflow_run_id, key)}
            assert list(history[key]) == [1, 2, 3] == sorted(logged), key
            assert history[key] == pytest.approx(logged, rel=1e-7), key


def test_the_record_holds_this_sweeps_jobs_and_pictures_one_job_per_setting(sweep):
    tmp, client, parent, record = sweep
    assert record.preset == "smoke" and record.parent_run_id == parent and record.swept == SWEPT
    assert [j.name for j in record.jobs] == list(JOBS)  # the stale folder 7 is another sweep's
    for job in record.jobs:
        assert (job.settings["optimizer.pop_size"], job.settings["seed"]) == JOBS[job.name] == (
            job.settings["optimizer.pop_size"], job.seed)
        run = tmp / "multirun" / job.name
        for name in ("front.csv", "metrics.json", "history.csv"):
            assert (job.folder / name).read_bytes() == (run / name).read_bytes(), name
        logged = client.get_run(job.mlflow_run_id).data.metrics
        assert job.metrics == {k: logged[k] for k in job.metrics} and "final/hypervolume" in job.metrics
    first, second = record.jobs
    assert first.file(RECONSTRUCTIONS) and first.file(CONNECTIONS)
    assert second.file(RECONSTRUCTIONS) is None and second.file(CONNECTIONS) is None  # same setting: drawn once
    files = [p for p in record.folder.rglob("*") if p.is_file()]
    assert not {"front.pt", "knee_model.pt", "run.json"} & {p.name for p in files}  # no weights
    assert sum(p.stat().st_size for p in files) < 250_000


def test_connections_are_the_knee_models_nonzero_first_layer(sweep, tmp_path):
    tmp, _, _, record = sweep
    job = record.jobs[0]
    mask = unpack_mask(torch.load(job.file(CONNECTIONS), weights_only=False))
    knee = torch.load(tmp / "multirun" / job.name / "knee_model.pt", weights_only=False)
    assert torch.equal(mask, first_layer(knee["state_dict"]) != 0)
    assert 0 < int(mask.sum()) < mask.numel()
    plot_connections(group_jobs(record.jobs, record.swept), tmp_path / "connections.png", "smoke")
    assert (tmp_path / "connections.png").stat().st_size > 10_000


def test_the_report_from_the_record_is_the_report_from_mlflow(sweep, tmp_path):
    tmp, client, parent, record = sweep
    table = report_sweep(record, tmp_path / "files").read_text()
    (from_store,) = report(f"sqlite:///{tmp / 'mlflow.db'}", tmp_path / "store", parents=[parent], single=())
    assert table == from_store.read_text()
    rows = table_rows(group_jobs(record.jobs, record.swept))
    assert table == markdown_table(rows, table.splitlines()[0][3:])
    hv = [client.get_run(j.mlflow_run_id).data.metrics["final/hypervolume"] for j in record.jobs]
    assert "| pop_size=6 | 2 |" in table and rows[0]["final/hypervolume"][0] == pytest.approx(sum(hv) / 2)
    for name in ("hypervolume.png", "fronts.png", "loss_by_evaluations.png"):
        assert (tmp_path / "files" / "smoke" / name).stat().st_size > 10_000, name
    # the same fronts as one long table for `dvc plots`, and the headline figures for `dvc metrics`
    with open(tmp_path / "files" / "smoke" / "fronts.csv") as fh:
        long = list(csv.DictReader(fh))
    assert len(long) == sum(len(j.front["density"]) for j in record.jobs)
    assert {(r["method"], r["seed"]) for r in long} == {("pop_size=6", "0"), ("pop_size=6", "1")}
    head = json.loads((tmp_path / "files" / "smoke" / "headline.json").read_text())
    assert head["pop_size=6"]["hypervolume"] == pytest.approx(sum(hv) / 2, rel=1e-5)
    for b in (0.02, 0.05, 0.1, 0.25, 0.5):  # the mean of each seed's best train loss at density <= b, where both have one
        best = [min((loss for d, loss in zip(j.front["density"], j.front["train_loss"]) if d <= b * 1.001), default=None)
                for j in record.jobs]
        key = f"train_loss_at_density_{b:g}"
        if None in best:
            assert key not in head["pop_size=6"]
        else:
            assert head["pop_size=6"][key] == pytest.approx(sum(best) / 2, rel=1e-6)


def test_a_run_summary_from_its_folder_is_the_one_from_mlflow(sweep, tmp_path):
    tmp, client, _, record = sweep
    last = tmp / "multirun" / record.jobs[-1].name  # the latest run of preset smoke
    summary = report_run(last, tmp_path / "files", preset="smoke").read_text()
    (from_store,) = report(f"sqlite:///{tmp / 'mlflow.db'}", tmp_path / "store", presets=(), single=("smoke",))
    assert summary == from_store.read_text()
    metrics = json.loads((last / "metrics.json").read_text())
    row = summary.splitlines()[4].split(" | ")
    assert row[0] == f"| run={record.jobs[-1].mlflow_run_id[:8]}" and row[1] == "1"
    assert row[2] == f"{metrics['final/hypervolume']:.4g} ± 0" and len(row) == len(COLUMNS) + 2
    assert (tmp_path / "files" / "smoke" / "hypervolume.png").stat().st_size > 10_000


def test_a_record_written_again_keeps_no_stale_job(sweep, tmp_path):
    tmp, _, parent, record = sweep
    folder = tmp_path / "smoke"
    jobs = from_run_folders(tmp / "multirun", parent, SWEPT)
    write_record(folder, "smoke", parent, SWEPT, jobs)
    write_record(folder, "smoke", parent, SWEPT, jobs[:1])
    assert sorted(p.name for p in folder.iterdir()) == ["0", INDEX]
    assert [j.name for j in read_record(folder).jobs] == ["0"]
    assert read_front_csv(folder / "0" / "front.csv") == record.jobs[0].front
    assert not list(tmp_path.glob(".smoke*"))  # no temporary folder left beside it


def test_a_record_of_the_older_form_is_refused_naming_the_way_out(tmp_path):
    old = tmp_path / "ablation_popsize.json"
    old.write_text(json.dumps({"parent_run_id": "bd368cf7", "experiment_preset": "ablation_popsize"}))
    with pytest.raises(ValueError, match="ggevo-report --parent bd368cf7"):
        read_record(old)
    with pytest.raises(FileNotFoundError, match="sweep_record="):
        read_record(tmp_path / "missing")


def test_a_resumed_run_writes_every_generation_into_its_history_once(tmp_path):
    """A resume replays the generations after its checkpoint; the history, as MLflow's, holds each once."""
    from tests.pipeline.records import KeepCheckpointOf as _KeepCheckpointOf

    kept = tmp_path / "run" / "at2.ckpt"
    steps = ("trainer.val_check_interval=2", "checkpoint.every_n_steps=1", f"run_dir={tmp_path / 'run'}")
    train(_cfg(tmp_path, "trainer.max_steps=4", *steps), callbacks=[_KeepCheckpointOf(2, kept)])
    (tmp_path / "run" / "history.csv").unlink()  # as a SIGKILL after generation 4 would leave the folder
    train(_cfg(tmp_path, "trainer.max_steps=6", *steps, f"ckpt_path={kept}"))
    history = read_history_csv(tmp_path / "run" / "history.csv")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    logged = {m.step: m.value for m in client.get_metric_history(info["mlflow_run_id"], "hypervolume")}
    assert list(history["hypervolume"]) == [1, 2, 3, 4, 5, 6] == sorted(logged)
    assert history["hypervolume"] == pytest.approx(logged, rel=1e-7)
    assert info["status"] == "FINISHED" and info["parent_run_id"] is None
