"""Shared helpers: compose the project's Hydra config for tiny runs with a private MLflow store."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def compose_cfg(tmp_path):
    """``compose_cfg(*overrides)`` → the composed config of a tiny run writing under ``tmp_path``."""

    def make(*overrides: str, run: str = "run") -> DictConfig:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose(
                "config",
                overrides=[
                    "experiment=smoke",
                    f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                    f"logger.artifact_location={(tmp_path / 'artifacts').as_uri()}",
                    f"run_dir={tmp_path / run}",
                    *overrides,
                ],
            )

    return make
