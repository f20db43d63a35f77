"""GEMONN+ through the whole pipeline: the default job's optimizer, resumed exactly from a checkpoint."""

import pytest
import torch

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.run.train import generations_for
from tests.conftest import full_and_resumed

PLUS = ("optimizer=gemonn_plus", "optimizer.pop_size=6", "optimizer.warmup=2", "trainer.max_steps=6",
        "checkpoint.every_n_steps=3")


def test_the_default_job_runs_gemonn_plus(compose_cfg):
    assert compose_cfg("optimizer=gemonn_plus").optimizer.local_search_lr > 0
    from hydra import compose, initialize_config_dir
    from tests.conftest import ROOT

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        default = compose("config")
        faithful = compose("config", overrides=["experiment=paper_ae"])
    assert default.optimizer.local_search_lr > 0 and default.optimizer.mutation == "magnitude"
    assert "local_search_lr" not in faithful.optimizer and faithful.optimizer.mutation == "zero"


def test_budget_counts_warmup_and_offspring():
    # warm-up generations score N; later ones N re-scored parents + M children
    g = generations_for(10 * 3 + 12 * 5, 10, True, 2, warmup=3)
    assert g == 8
    assert generations_for(10 * 3 + 2 * 5, 10, False, 2, warmup=3) == 8
    # a trunk's generations score one network each, before the warm-up
    assert generations_for(40 + 10 * 3 + 12 * 5, 10, True, 2, warmup=3, trunk=40) == 48
    with pytest.raises(ConfigError, match="trunk"):
        generations_for(40, 10, True, 2, trunk=40)
    assert generations_for(12 * 5, 10, True, 2) == 5


def test_gemonn_plus_resumes_exactly_mid_run(compose_cfg, tmp_path):
    a, b = full_and_resumed(compose_cfg, tmp_path, PLUS[:-2], steps=6, split=3)
    assert a["generation"] == b["generation"] == 6
    for key in ("X", "F", "G", "M", "V", "T"):
        assert torch.equal(a[key], b[key]), key
    assert float(a["T"].max()) >= 5  # networks learnt through warm-up and evolution alike
