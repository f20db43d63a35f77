"""The team setup (slow tests): one PostgreSQL-backed MLflow server and one local Ray head on 127.0.0.1,
a 4-job sweep run through Ray into that server, shared by the team and browser tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from ggevo.pipeline.team.server import TeamServer, free_port
from tests.conftest import ROOT
from tests.pipeline.team.loopback import clean_env, ray_head

STEPS = 3
SEEDS = (0, 1, 2, 3)


@dataclass
class TeamSweep:
    folder: Path
    server: TeamServer
    ray_address: str
    ray_proc: subprocess.Popen
    sweep: subprocess.CompletedProcess
    driver_pid: int
    client: mlflow.tracking.MlflowClient
    experiment_id: str
    parent: mlflow.entities.Run
    children: list[mlflow.entities.Run]


@pytest.fixture(scope="session")
def team_sweep():
    # not pytest's tmp_path: as root, PostgreSQL runs as the 'postgres' user, which must reach its data folder
    folder = Path(tempfile.mkdtemp(prefix="ggevo-team-"))
    folder.chmod(0o711)
    try:
        with TeamServer(folder / "server", port=free_port()) as server, ray_head(folder / "ray") as (address, ray):
            cmd = [sys.executable, "-m", "ggevo.train", "-m", "hydra/launcher=ray_cluster",
                   f"hydra.launcher.ray.init.address={address}", "hydra.launcher.ray.remote.num_cpus=1",
                   "experiment=smoke", "seed=" + ",".join(map(str, SEEDS)), f"trainer.max_steps={STEPS}",
                   f"trainer.val_check_interval={STEPS}", f"checkpoint.every_n_steps={STEPS}",
                   "logger.experiment_name=team", f"hydra.sweep.dir={folder / 'multirun'}"]
            proc = subprocess.Popen(cmd, cwd=ROOT, env=clean_env(MLFLOW_TRACKING_URI=server.uri),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            out, _ = proc.communicate(timeout=900)
            done = subprocess.CompletedProcess(cmd, proc.returncode, out)
            assert proc.returncode == 0, out[-5000:]
            client = mlflow.tracking.MlflowClient(server.uri)
            exp = client.get_experiment_by_name("team")
            (parent,) = client.search_runs([exp.experiment_id], "tags.`ggevo.role` = 'sweep'")
            children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
            yield TeamSweep(folder, server, address, ray, done, proc.pid, client, exp.experiment_id, parent, children)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
