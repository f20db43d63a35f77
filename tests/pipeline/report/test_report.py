"""``ggevo-report``: a sweep's table and figures drawn from the tracking store."""

import re
import statistics
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.pipeline.conftest import SEEDS
from tests.pipeline.team.loopback import clean_env


@pytest.mark.slow
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
