"""Records written from what an MLflow store holds, for ``ggevo-report --parent`` and ad-hoc reports.

A sweep's parent run becomes the same record a multirun writes from its run folders
(``ggevo.pipeline.record.sweep_record``); a single run becomes a folder with its ``metrics.json``,
``history.csv`` and ``run.json``. The report then draws both from files, as the DVC stage does.
The DVC ``report`` stage never comes here: its records are tracked files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import mlflow
from mlflow.entities import Run

from ggevo.lit.status import STATUS_KEYS
from ggevo.pipeline.core.files import Writer, write_atomically
from ggevo.pipeline.record.history import HISTORY, History, write_history_csv
from ggevo.pipeline.record.recorder import RUN_JSON
from ggevo.pipeline.record.sweep_record import (CONNECTIONS, DOWNSTREAM, FRONT, METRICS, RECONSTRUCTIONS, JobSource,
                                                write_connections, write_record)

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

Client = mlflow.tracking.MlflowClient


def children(client: Client, parent: Run) -> list[Run]:
    """A sweep's child runs, by start time."""
    runs = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                              max_results=10_000)
    return sorted(runs, key=lambda r: r.info.start_time)


def setting(run: Run, key: str) -> str:
    """The run's value of a swept key: a config value (a param), or a config-group choice (``optimizer=adam``)."""
    return run.data.params.get(key) or run.data.tags.get(f"choice.{key}", "?")


def latest(client: Client, experiment_ids: list[str], preset: str, role: str) -> Run | None:
    runs = client.search_runs(experiment_ids, f"tags.experiment_preset = '{preset}' and tags.`ggevo.role` = '{role}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def metric_history(client: Client, run: Run) -> History:
    """Each generation's status as the run logged it (``STATUS_KEYS``), metric → step → value."""
    return {k: {m.step: m.value for m in client.get_metric_history(run.info.run_id, k)}
            for k in STATUS_KEYS if k in run.data.metrics}


def write_json(path: Path, *, value) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")  # a writer for write_atomically


def _artifact(path: Path, *, client: Client, run_id: str, name: str, downloads: Path) -> None:
    shutil.copyfile(client.download_artifacts(run_id, name, str(downloads / run_id)), path)


def _connections(path: Path, *, client: Client, run_id: str, downloads: Path) -> None:
    knee = Path(client.download_artifacts(run_id, "knee_model.pt", str(downloads / run_id)))
    write_connections(path, knee_model=knee)


def mlflow_job(client: Client, run: Run, name: str, swept: list[str], downloads: Path) -> JobSource:
    """One child run as a record's job; artifacts are downloaded (into ``downloads``) only when written."""
    run_id = run.info.run_id
    stored = {a.path for a in client.list_artifacts(run_id)}
    files: dict[str, Writer] = {
        METRICS: lambda p, m=dict(run.data.metrics): write_json(p, value=m),
        HISTORY: lambda p, h=metric_history(client, run): write_history_csv(p, h),
    }
    for file in (FRONT, DOWNSTREAM, RECONSTRUCTIONS):
        if file in stored:
            files[file] = lambda p, f=file: _artifact(p, client=client, run_id=run_id, name=f, downloads=downloads)
    if "knee_model.pt" in stored:
        files[CONNECTIONS] = lambda p: _connections(p, client=client, run_id=run_id, downloads=downloads)
    return JobSource(name=name, mlflow_run_id=run_id, status=run.info.status, seed=run.data.params.get("seed", "?"),
                     settings={k: setting(run, k) for k in swept}, files=files)


def export_sweep(client: Client, parent: Run, folder: Path, downloads: Path) -> Path:
    """The record of the sweep ``parent`` written into ``folder`` (jobs named 0, 1, … by start time);
    returns its index."""
    preset = parent.data.tags.get("experiment_preset", parent.info.run_id)
    swept = [k for k in parent.data.tags.get("ggevo.sweep.params", "").split(",") if k]
    runs = children(client, parent)
    if not runs:
        raise ValueError(f"sweep run {parent.info.run_id} has no child runs")
    jobs = [mlflow_job(client, run, str(i), swept, downloads) for i, run in enumerate(runs)]
    return write_record(folder, preset, parent.info.run_id, swept, jobs)


def export_run(client: Client, run: Run, folder: Path) -> Path:
    """A single run's ``metrics.json``, ``history.csv`` and ``run.json`` written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    identity = {"mlflow_run_id": run.info.run_id, "parent_run_id": run.data.tags.get("mlflow.parentRunId"),
                "status": run.info.status}
    for name, value in ((METRICS, dict(run.data.metrics)), (RUN_JSON, identity)):
        write_atomically(folder / name, lambda p, v=value: write_json(p, value=v))
    history = metric_history(client, run)
    write_atomically(folder / HISTORY, lambda p: write_history_csv(p, history))
    return folder
