"""The MLflow UI on the team server, in a real browser (slow): Playwright driving the system Chromium
(Debian's ``chromium``) opens the runs table, a run's hypervolume chart and its pareto.png, and the
sweep's comparison view. ``GGEVO_UI_SCREENSHOTS=reports/ui`` keeps the screenshots there."""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.pipeline.conftest import SEEDS, STEPS

pytestmark = pytest.mark.slow

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
    assert page.get_by_role("columnheader", name="Run Name").first.is_visible()
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
    assert chart.locator(".main-svg").first.is_visible()
    assert chart.locator(".scatterlayer path.js-line").count() >= 1
    assert chart.locator(".points path.point").count() == STEPS
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
        assert page.get_by_text(run.info.run_name, exact=True).first.is_visible()
    page.screenshot(path=tmp_path / "sweep_compare.png")
    keep(tmp_path / "sweep_compare.png")
