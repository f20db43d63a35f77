"""Reading back what a tiny run recorded: its MLflow runs, a config refused before any run opens, and a
checkpoint kept as a later SIGKILL would leave it."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import pytorch_lightning as pl
from omegaconf import DictConfig

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.run.train import train


def runs(where: DictConfig | Path, experiment: str = "ggevo") -> tuple[mlflow.tracking.MlflowClient, list]:
    """The client and runs of a run config's experiment, or of ``experiment`` in the store ``m.db`` that
    subprocesses wrote in the folder ``where`` (no runs where the experiment does not exist)."""
    if isinstance(where, DictConfig):
        uri, experiment = where.logger.tracking_uri, where.logger.experiment_name
    else:
        uri = f"sqlite:///{where / 'm.db'}"
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client, ([] if exp is None else client.search_runs([exp.experiment_id]))


def fails_before_any_run(cfg: DictConfig, key: str) -> str:
    """``train(cfg)``'s one-line ConfigError naming ``key``, raised before any MLflow run was opened."""
    with pytest.raises(ConfigError) as err:
        train(cfg)
    message = str(err.value)
    assert message.startswith(f"{key}:") and "\n" not in message, message
    assert runs(cfg)[1] == []  # no MLflow run was opened
    return message


class KeepCheckpointOf(pl.Callback):
    """Copies ``last.ckpt`` as it stood after generation ``step``: what a SIGKILL later would leave."""

    def __init__(self, step, to):
        self.step, self.to = step, to

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step + 1:
            self.to.write_bytes((self.to.parent / "checkpoints" / "last.ckpt").read_bytes())
