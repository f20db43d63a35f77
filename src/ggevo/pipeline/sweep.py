"""One MLflow parent run per Hydra multirun; every job of the sweep becomes its child run.

The Hydra callback creates the parent when the multirun starts and hands its id to the jobs
through the environment (inherited by the basic, joblib, submitit and Ray launchers' workers);
``train`` tags each job's run with ``mlflow.parentRunId``. The parent ends with the worst status
of its children (FAILED over KILLED over FINISHED), also when the multirun itself dies.
"""

from __future__ import annotations

import atexit
import json
import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ggevo.cli import fail
from ggevo.pipeline.paths import rooted
from ggevo.pipeline.recorder import children_statuses, close_run, open_parent, worst_status
from ggevo.pipeline.store import check_store, tracking_uri
from ggevo.pipeline.tracking import PARENT_ENV
from ggevo.pipeline.validate import ConfigError


def swept_keys(cfg: DictConfig) -> list[str]:
    """Config keys this multirun varies: comma lists on the command line and ``hydra.sweeper.params``."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in cfg.hydra.overrides.task if "," in o.split("=", 1)[-1]]
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    keys += [k for k, v in params.items() if "," in str(v)]
    return sorted(dict.fromkeys(keys))


class MlflowSweepCallback(Callback):
    """Hydra callback (configured in ``conf/config.yaml``) that opens and closes the parent run."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.uri: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_store(config)  # an unreachable or missing store fails here, in one line, before any job
        except ConfigError as err:
            fail(err)
        self.uri = tracking_uri(config)
        keys = swept_keys(config)
        preset = str(config.get("experiment_name") or "default")
        self.run_id = open_parent(config, f"sweep {preset}", {
            "ggevo.role": "sweep", "ggevo.sweep.params": ",".join(keys), "experiment_preset": preset,
            "dataset": str(config.data.name)})
        os.environ[PARENT_ENV] = self.run_id
        atexit.register(self._close_abandoned)
        print(f"sweep over {', '.join(keys) or 'nothing'}: MLflow parent run {self.run_id} in experiment "
              f"'{config.logger.experiment_name}' at {self.uri}; report: ggevo-report --parent {self.run_id}",
              flush=True)

    def _close(self, extra: list[str]) -> None:
        if self.run_id is None:
            return
        run_id, self.run_id = self.run_id, None
        os.environ.pop(PARENT_ENV, None)
        status = worst_status(children_statuses(self.uri, run_id) + extra)
        close_run(self.uri, run_id, status, None if status == "FINISHED" else f"worst job status {status}")

    def _close_abandoned(self) -> None:
        """The multirun died before its end (a job failed or was interrupted): worst of the jobs, at least FAILED
        unless a job was KILLED."""
        if self.run_id is not None:
            statuses = children_statuses(self.uri, self.run_id)
            self._close([] if "KILLED" in statuses else ["FAILED"])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        run_id = self.run_id
        self._close([])
        if run_id is not None and config.get("sweep_record"):
            path = rooted(config.sweep_record)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"parent_run_id": run_id,
                                        "experiment_preset": str(config.get("experiment_name"))}, indent=2) + "\n")
