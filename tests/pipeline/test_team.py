"""The team setup end to end (slow): a sweep on a Ray cluster recorded into an MLflow server on PostgreSQL,
everything on 127.0.0.1; ``ggevo-server`` starts and stops both servers."""

from __future__ import annotations

import csv
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import mlflow
import pytest

from tests.conftest import ROOT
from tests.pipeline.conftest import SEEDS, STEPS
from tests.pipeline.team.loopback import clean_env, is_loopback, listeners

pytestmark = pytest.mark.slow

PER_GENERATION = ("hypervolume", "loss/min", "loss/knee", "density/knee", "front/size", "evaluations", "nonfinite",
                  "generation")
ARTIFACTS = {"front.csv", "pareto.png", "knee_model.pt", "config.yaml", "metrics.json"}


def test_ray_sweep_records_one_parent_with_a_finished_child_per_job(team_sweep):
    t = team_sweep
    assert t.parent.info.run_id in t.sweep.stdout
    assert t.parent.data.tags["ggevo.sweep.params"] == "seed"
    assert sorted(int(r.data.params["seed"]) for r in t.children) == list(SEEDS)
    assert [r.info.status for r in t.children] == ["FINISHED"] * len(SEEDS)
    # jobs ran in Ray workers, not in the launching process, and stored artifacts through the server
    assert all(r.data.tags["pid"] != str(t.driver_pid) for r in t.children)
    assert "(_run_job pid=" in t.sweep.stdout
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:/") for r in t.children)
    assert t.client.get_experiment(t.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_every_generation_metric_and_artifact_is_on_the_server(team_sweep, tmp_path):
    t = team_sweep
    for run in t.children:
        for name in PER_GENERATION:
            steps = sorted(m.step for m in t.client.get_metric_history(run.info.run_id, name))
            assert steps == list(range(1, STEPS + 1)), (name, steps)
        assert {a.path for a in t.client.list_artifacts(run.info.run_id)} >= ARTIFACTS
        local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="front.csv",
                                                         dst_path=str(tmp_path / run.info.run_id),
                                                         tracking_uri=t.server.uri))
        with open(local) as f:
            assert len(list(csv.DictReader(f))) == int(run.data.metrics["final/front_size"])  # duplicates dropped
        png = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="pareto.png",
                                                  dst_path=str(tmp_path / run.info.run_id), tracking_uri=t.server.uri)
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_are_stored_in_postgresql(team_sweep):
    import psycopg

    t = team_sweep
    with psycopg.connect(t.server.postgres.uri) as db:
        rows = db.execute("SELECT run_uuid, status FROM runs WHERE experiment_id = %s",
                          (int(t.experiment_id),)).fetchall()
        n_metrics = db.execute("SELECT count(*) FROM metrics WHERE key = 'hypervolume' AND run_uuid = ANY(%s)",
                               ([r.info.run_id for r in t.children],)).fetchone()[0]
    assert sorted(rows) == sorted([(r.info.run_id, "FINISHED") for r in [t.parent, *t.children]])
    assert n_metrics == len(SEEDS) * STEPS


def test_report_of_the_sweep_comes_from_the_server(team_sweep, tmp_path):
    t = team_sweep
    done = subprocess.run([sys.executable, "-m", "ggevo.pipeline.report.report", "--parent", t.parent.info.run_id,
                           "--out", str(tmp_path)], cwd=ROOT, env=clean_env(MLFLOW_TRACKING_URI=t.server.uri),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / "smoke" / "table.md").read_text()
    cell = re.search(rf"\| all runs \| {len(SEEDS)} \| ([0-9.e-]+) ± ", table).group(1)
    hv = statistics.fmean(r.data.metrics["final/hypervolume"] for r in t.children)
    assert float(cell) == pytest.approx(hv, rel=1e-3)
    assert (tmp_path / "smoke" / "hypervolume.png").stat().st_size > 10_000


def test_every_listener_is_on_loopback(team_sweep):
    t = team_sweep
    found = listeners([t.server.postgres.proc.pid, t.server.mlflow.proc.pid, t.ray_proc.pid])
    names = {name for name, _, _ in found}
    assert {"postgres", "gcs_server", "raylet"} <= names, found
    assert t.server.mlflow.port in {port for _, _, port in found}
    assert [f for f in found if not is_loopback(f[1])] == []


def _start_server(folder: Path, port: int, pg_port: int) -> subprocess.Popen:
    """``ggevo-server`` on these ports, returned once it printed the URI to export."""
    proc = subprocess.Popen([sys.executable, "-m", "ggevo.pipeline.team.server", "--dir", str(folder),
                             "--port", str(port), "--pg-port", str(pg_port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.strip().startswith("export MLFLOW_TRACKING_URI="):
            break
    assert lines and lines[-1].strip() == f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{port}", "".join(lines)
    return proc


def _stop_server(proc: subprocess.Popen, sig: int, port: int, pg_port: int) -> None:
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, rest
    assert "stopped MLflow server and PostgreSQL" in rest
    for p in (port, pg_port):  # nothing listens any more
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{p}/", timeout=3)


def test_ggevo_server_prints_the_uri_stops_on_sigterm_and_ctrl_c_and_keeps_its_data():
    import shutil

    from ggevo.pipeline.team.server import free_port

    folder = Path(tempfile.mkdtemp(prefix="ggevo-server-"))
    folder.chmod(0o711)
    port, pg_port = free_port(), free_port()
    proc = None
    try:
        proc = _start_server(folder / "srv", port, pg_port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            assert r.status == 200
        mlflow.tracking.MlflowClient(f"http://127.0.0.1:{port}").create_experiment("probe")
        found = listeners([proc.pid])
        assert {p for _, _, p in found} >= {port, pg_port} and all(is_loopback(ip) for _, ip, _ in found), found
        _stop_server(proc, signal.SIGTERM, port, pg_port)
        assert "database system is shut down" in (folder / "srv" / "postgres.log").read_text()

        proc = _start_server(folder / "srv", port, pg_port)  # the same folder: the same database
        assert mlflow.tracking.MlflowClient(f"http://127.0.0.1:{port}").get_experiment_by_name("probe") is not None
        _stop_server(proc, signal.SIGINT, port, pg_port)
    finally:
        if proc is not None and proc.poll() is None:  # a failed check: kill what this server started, by id
            import psutil

            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
