"""One MLflow parent run per Hydra multirun; every job of the sweep becomes its child run.

The Hydra callback creates the parent when the multirun starts and hands its id to the jobs
through the environment (inherited by the basic, joblib, submitit and Ray launchers' workers);
``train`` tags each job's run with ``mlflow.parentRunId``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import mlflow
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ggevo.pipeline.paths import rooted
from ggevo.pipeline.tracking import PARENT_ENV, artifact_location, tracking_uri

def experiment_id(client: mlflow.tracking.MlflowClient, cfg: DictConfig) -> str:
    """The id of ``logger.experiment_name``, created if new."""
    exp = client.get_experiment_by_name(cfg.logger.experiment_name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(cfg.logger.experiment_name, artifact_location=artifact_location(cfg))


def swept_keys(cfg: DictConfig) -> list[str]:
    """Config keys this multirun varies: comma lists on the command line and ``hydra.sweeper.params``."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in cfg.hydra.overrides.task if "," in o.split("=", 1)[-1]]
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    keys += [k.lstrip("+~") for k, v in params.items() if "," in str(v)]
    return sorted(dict.fromkeys(keys))


class MlflowSweepCallback(Callback):
    """Hydra callback (configured in ``conf/config.yaml``) that opens and closes the parent run."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.uri: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.uri = tracking_uri(config)
        client = mlflow.tracking.MlflowClient(self.uri)
        keys = swept_keys(config)
        preset = str(config.get("experiment_name") or "default")
        run = client.create_run(
            experiment_id(client, config),
            run_name=f"sweep {preset}",
            tags={"ggevo.role": "sweep", "ggevo.sweep.params": ",".join(keys), "experiment_preset": preset,
                  "dataset": str(config.data.name)},
        )
        self.run_id = run.info.run_id
        os.environ[PARENT_ENV] = self.run_id
        print(f"sweep over {', '.join(keys) or 'nothing'}: MLflow parent run {self.run_id} in experiment "
              f"'{config.logger.experiment_name}' at {self.uri}; report: ggevo-report --parent {self.run_id}",
              flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.run_id is None:
            return
        client = mlflow.tracking.MlflowClient(self.uri)
        client.set_terminated(self.run_id, "FINISHED")
        os.environ.pop(PARENT_ENV, None)
        if config.get("sweep_record"):
            path = rooted(config.sweep_record)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"parent_run_id": self.run_id,
                                        "experiment_preset": str(config.get("experiment_name"))}, indent=2) + "\n")
