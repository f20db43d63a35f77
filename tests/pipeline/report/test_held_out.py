"""``ggevo-evaluate``: a front scored on held-out data; a selection that picks no member fails in one line."""

import pytest

from ggevo.pipeline.run.train import train
from tests.pipeline.processes import cli as _cli
from tests.pipeline.processes import one_line as _one_line


@pytest.mark.slow
def test_a_selection_that_picks_nothing_fails_before_evaluate_writes(compose_cfg, tmp_path):
    train(compose_cfg("trainer.max_steps=2"))
    proc, _ = _cli("ggevo.pipeline.report.held_out", str(tmp_path / "run"), "--downstream",
                   "--select", "density<=0.0001")
    assert proc.returncode == 2
    assert _one_line(proc).startswith("error: select: no front member has density ≤ 0.0001")
    assert not (tmp_path / "run" / "evaluation.csv").exists() and not (tmp_path / "run" / "test_metrics.json").exists()
