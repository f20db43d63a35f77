"""The team server (slow): an MLflow server on PostgreSQL, everything on 127.0.0.1, holding every metric and
artifact of a sweep run on a Ray cluster; ``ggevo-server`` starts and stops both servers; and the MLflow UI
on it in a real browser: Playwright driving the system Chromium (Debian's ``chromium``) opens the runs
table, a run's hypervolume chart and its pareto.png, and the sweep's comparison view.
``GGEVO_UI_SCREENSHOTS=reports/ui`` keeps the screenshots there."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import pytest

from tests.conftest import ROOT
from tests.pipeline.conftest import SEEDS, STEPS
from tests.pipeline.team.loopback import is_loopback, listeners

try:  # the browser extra; without it the page fixture says what to install
    from playwright.sync_api import expect
except ImportError:
    expect = None

pytestmark = pytest.mark.slow

PER_GENERATION = ("hypervolume", "loss/min", "loss/knee", "density/knee", "front/size", "evaluations", "nonfinite",
                  "generation")
ARTIFACTS = {"front.csv", "pareto.png", "knee_model.pt", "config.yaml", "metrics.json"}


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
    assert sorted(rows) == sorted([(r.info.run_id, "FINISHED") for r in [t.parent, *t.children]]), \
        [r.data.tags.get("ggevo.failure") for r in [t.parent, *t.children]]
    assert n_metrics == len(SEEDS) * STEPS


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


# ------------------------------------------------------------------ the MLflow UI in a browser
# MLflow 3.17's UI picks GenAI or model-training pages by this query parameter (or its sidebar switch);
# ggevo's experiments also carry the tag mlflow.experimentKind=custom_model_development for UIs that read it
ML = "workflowType=machine_learning"
# no assistant panel covering a third of every page
QUIET = ("localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
         "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');")


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    raise AssertionError("no system Chromium: apt-get install -y --no-install-recommends chromium fonts-liberation")


@pytest.fixture(scope="module")
def page(team_sweep):
    from playwright.sync_api import sync_playwright
    expect.set_options(timeout=60_000)  # assertions wait as long as actions do (the default is 5 s)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.add_init_script(QUIET)
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        yield tab
        browser.close()


def keep(path: Path) -> None:
    if os.environ.get("GGEVO_UI_SCREENSHOTS"):
        folder = Path(os.environ["GGEVO_UI_SCREENSHOTS"])
        folder = folder if folder.is_absolute() else ROOT / folder
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)


def test_experiment_opens_on_the_runs_table(team_sweep, page, tmp_path):
    t = team_sweep
    page.goto(f"{t.server.uri}/#/experiments/{t.experiment_id}?{ML}")
    page.get_by_text(f"{len(SEEDS) + 1} matching runs").wait_for()
    expect(page.get_by_role("columnheader", name="Run Name").first).to_be_visible()
    assert page.get_by_text("Detect Issues").count() == 0  # not the GenAI overview
    parent = page.get_by_role("row").filter(has_text="sweep smoke").first
    parent.locator("button").first.click()  # expand the sweep: its jobs are nested under it
    for run in t.children:
        page.get_by_role("row").filter(has_text=run.info.run_name).first.wait_for(state="visible")
    page.mouse.move(0, 0)
    page.screenshot(path=tmp_path / "runs_table.png")
    keep(tmp_path / "runs_table.png")


def test_run_page_shows_the_hypervolume_chart(team_sweep, page, tmp_path):
    t = team_sweep
    run = next(r for r in t.children if r.data.params["seed"] == "0")
    page.goto(f"{t.server.uri}/#/experiments/{t.experiment_id}/runs/{run.info.run_id}/model-metrics?{ML}")
    page.get_by_placeholder("Search metric charts").fill("hypervolume")
    # each chart's legend names the run and the metric; the chart is a plotly SVG: a line through a point a generation
    legend = page.get_by_text(f"{run.info.run_name} (hypervolume)", exact=True).first
    legend.wait_for(state="visible")
    chart = legend.locator("xpath=ancestor::*[.//*[contains(@class, 'main-svg')]][1]")
    legend.scroll_into_view_if_needed()
    # plotly draws the SVG after the legend appears (later on a loaded machine): wait for it, do not sample it
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart.locator(".scatterlayer path.js-line")).not_to_have_count(0)
    expect(chart.locator(".points path.point")).to_have_count(STEPS)
    page.mouse.move(0, 0)
    page.screenshot(path=tmp_path / "run_metrics.png")
    keep(tmp_path / "run_metrics.png")


def test_run_artifacts_show_pareto_png(team_sweep, page, tmp_path):
    t = team_sweep
    run = next(r for r in t.children if r.data.params["seed"] == "0")
    page.goto(f"{t.server.uri}/#/experiments/{t.experiment_id}/runs/{run.info.run_id}/artifacts/pareto.png?{ML}")
    for name in ("front.csv", "pareto.png", "knee_model.pt"):
        page.get_by_text(name, exact=True).first.wait_for()
    image = page.locator("img[src^='blob:']").first
    image.wait_for(state="visible")
    width = image.evaluate("img => img.complete ? img.naturalWidth : 0")
    assert width >= 400  # the figure decoded, not a broken-image icon
    page.screenshot(path=tmp_path / "run_artifacts.png")
    keep(tmp_path / "run_artifacts.png")


def test_sweep_comparison_view(team_sweep, page, tmp_path):
    t = team_sweep
    ids = [r.info.run_id for r in sorted(t.children, key=lambda r: int(r.data.params["seed"]))]
    query = urllib.parse.urlencode({"runs": json.dumps(ids), "experiments": json.dumps([t.experiment_id])})
    page.goto(f"{t.server.uri}/#/compare-runs?{query}&{ML}")
    page.get_by_text(f"Comparing {len(SEEDS)} Runs from 1 Experiment").wait_for()
    for run in t.children:
        expect(page.get_by_text(run.info.run_name, exact=True).first).to_be_visible()
    page.screenshot(path=tmp_path / "sweep_compare.png")
    keep(tmp_path / "sweep_compare.png")
