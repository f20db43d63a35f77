"""One MLflow parent run per Hydra multirun; every job of the sweep becomes its child run.

The Hydra callback creates the parent when the multirun starts and hands each job what it needs
to record there (``job_env``: the tracking URI, the parent's id, the project root) as environment
variables. Jobs of the basic and joblib launchers run under this process's environment; Ray
workers do not (they inherit the environment of ``ray start``), nor do SLURM jobs on other nodes,
so ``send_to_jobs`` writes the variables into the launcher's config: Ray's runtime environment
(``ray.remote.runtime_env.env_vars``) and submitit's ``setup`` commands (``export …`` before each
job, SLURM and submitit's local executor alike). ``train`` tags each job's run with
``mlflow.parentRunId``. The parent ends with the worst status of its children (FAILED over KILLED
over FINISHED), also when the multirun itself dies: on an error or a signal through ``atexit``; killed
outright (SIGKILL, a lost machine), by whoever next runs ``close_abandoned_runs`` (every ``ggevo-train``
and ``ggevo-report``), because the multirun holds its sweep folder's lock as a run holds its run folder's,
and the parent carries that folder's tags (``ggevo.pipeline.run.checks.run_folder_tags``).

With ``sweep_record=<folder>`` (the DVC stages ``ablate``, ``ablate_plus``, ``compare``:
``reports/sweeps/<preset>``) a multirun that ends writes its record there: each job's front, final
metrics, history, swept settings and the small files its report pictures, taken from the jobs' run
folders under ``hydra.sweep.dir`` (``ggevo.pipeline.record.sweep_record``). DVC tracks that folder and git
holds it, and the ``report`` stage reads it, never the MLflow store, so any clone can rebuild the
reports. The jobs' run folders must be reachable from the launching process (basic, joblib and
submitit's local launchers; SLURM and Ray with a shared ``hydra.sweep.dir``); if some are not, no
record is written and the multirun fails in one line.
"""

from __future__ import annotations

import atexit
import os
import shlex
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.paths import project_root, rooted
from ggevo.pipeline.record.recorder import children_statuses, close_run, open_parent, worst_status
from ggevo.pipeline.record.store import check_store, tracking_uri
from ggevo.pipeline.record.sweep_record import from_run_folders, write_record
from ggevo.pipeline.record.tracking import PARENT_ENV
from ggevo.pipeline.run.checks import RunFolderClaim, run_folder_tags
from ggevo.pipeline.run.cli import fail


def swept_keys(cfg: DictConfig) -> list[str]:
    """Config keys recorded as each job's settings: the comma lists this multirun varies (on the command line
    and in ``hydra.sweeper.params``), and every other key ``hydra.sweeper.params`` sets, with one value for all
    its jobs (``optimizer: gemonn_plus_decay`` names the method of a ``bench_<task>_ours`` sweep) but the seed,
    which every job records as its own."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in cfg.hydra.overrides.task if "," in o.split("=", 1)[-1]]
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    keys += [k.lstrip("+~") for k, v in params.items() if "," in str(v) or k.lstrip("+~") != "seed"]
    return sorted(dict.fromkeys(keys))


def job_env(uri: str, parent_run_id: str) -> dict[str, str]:
    """The environment every job of the sweep needs from the process that launched it."""
    return {"MLFLOW_TRACKING_URI": uri, PARENT_ENV: parent_run_id, "GGEVO_ROOT": str(project_root())}


def send_to_jobs(launcher: DictConfig, env: dict[str, str]) -> None:
    """Write ``env`` into ``hydra.launcher`` for launchers whose jobs do not inherit this process's
    environment: Ray (``ray.remote.runtime_env.env_vars``) and submitit (``setup`` exports)."""
    target = str(launcher.get("_target_", ""))
    with read_write(launcher), open_dict(launcher):
        if target.startswith("hydra_plugins.hydra_ray_launcher."):
            runtime_env = launcher.ray.remote.get("runtime_env")
            runtime_env = OmegaConf.to_container(runtime_env, resolve=True) if runtime_env else {}
            runtime_env["env_vars"] = {**(runtime_env.get("env_vars") or {}), **env}
            launcher.ray.remote.runtime_env = runtime_env
        elif target.startswith("hydra_plugins.hydra_submitit_launcher."):
            exports = [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
            launcher.setup = [*(launcher.get("setup") or []), *exports]


class MlflowSweepCallback(Callback):
    """Hydra callback (configured in ``conf/config.yaml``) that opens and closes the parent run."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.uri: str | None = None
        self.keys: list[str] = []
        self.preset = "default"
        self.sweep_dir: Path | None = None
        self.claim: RunFolderClaim | None = None  # the sweep folder's lock, held while the multirun lives

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_store(config)  # an unreachable or missing store fails here, in one line, before any job
        except ConfigError as err:
            fail(err)
        self.uri = tracking_uri(config)
        self.keys = keys = swept_keys(config)
        self.preset = preset = str(config.get("preset") or "default")
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()  # as Hydra places the jobs: from the cwd
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.claim = RunFolderClaim(self.sweep_dir, "hydra.sweep.dir")
        except ConfigError as err:
            fail(err)
        self.run_id = open_parent(config, f"sweep {preset}", {
            "ggevo.role": "sweep", "ggevo.sweep.params": ",".join(keys), "experiment_preset": preset,
            "dataset": str(config.data.name), **run_folder_tags(self.sweep_dir)})
        os.environ[PARENT_ENV] = self.run_id  # jobs in this process and its children (basic, joblib)
        send_to_jobs(config.hydra.launcher, job_env(self.uri, self.run_id))  # jobs elsewhere (Ray, SLURM)
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
        if self.claim is not None:
            self.claim.close()
            self.claim = None

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
            try:
                self._write_record(rooted(config.sweep_record), run_id)
            except ConfigError as err:
                fail(err)

    def _write_record(self, folder: Path, run_id: str) -> None:
        """The sweep's record from its jobs' run folders, all of them or none
        (``ggevo.pipeline.record.sweep_record``)."""
        jobs = from_run_folders(self.sweep_dir, run_id, self.keys)
        children = len(children_statuses(self.uri, run_id))
        if len(jobs) < children:
            raise ConfigError(f"sweep_record: the run folders of {len(jobs)} of the sweep's {children} jobs are under "
                              f"{self.sweep_dir} (jobs on other machines keep theirs there); no record written")
        index = write_record(folder, self.preset, run_id, self.keys, jobs)
        print(f"sweep record of {len(jobs)} jobs: {index.parent}", flush=True)
