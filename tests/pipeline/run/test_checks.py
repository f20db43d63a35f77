"""Checks of the world before any compute: the run folder can be written and no other live run holds it,
a checkpoint loads and was made under the same config; a run whose process died is closed KILLED."""

import subprocess
import sys
import threading

import mlflow
import pytest

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.run import checks
from ggevo.pipeline.run.checks import RunFolderClaim, claim_if_free, close_abandoned_runs, run_folder_tags
from ggevo.pipeline.run.train import train
from tests.pipeline.processes import train_process as _train
from tests.pipeline.processes import wait_for_generation as _wait_for_generation
from tests.pipeline.records import fails_before_any_run as _fails_before_any_run
from tests.pipeline.records import runs as _runs


def test_an_unwritable_run_folder_fails_before_compute(compose_cfg, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    _fails_before_any_run(compose_cfg(f"run_dir={tmp_path / 'a_file' / 'run'}"), "run_dir")


@pytest.mark.slow
def test_a_run_folder_in_use_by_a_live_run_fails_before_compute(compose_cfg, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        message = _fails_before_any_run(compose_cfg(), "run_dir")
        assert str(folder) in message and "in use by another live run" in message
        assert list(folder.iterdir()) == []  # the lock writes nothing into the folder
    finally:
        holder.kill()
        holder.wait()
    train(compose_cfg("trainer.max_steps=2"))  # the lock ends with its process: the folder is free again
    assert [r.info.status for r in _runs(compose_cfg())[1]] == ["FINISHED"]


# another process holding a run folder as a live run does
HOLD = """
import sys, time
from pathlib import Path
from ggevo.pipeline.run.checks import RunFolderClaim
claim = RunFolderClaim(Path(sys.argv[1]), "run_dir")
print("held", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04truncated", None])
def test_a_corrupt_empty_or_truncated_checkpoint_is_one_line(compose_cfg, tmp_path, content):
    ckpt = tmp_path / "bad.ckpt"
    if content is None:  # a real checkpoint cut in half
        train(compose_cfg("trainer.max_steps=2", run="whole"))
        data = (tmp_path / "whole" / "checkpoints" / "last.ckpt").read_bytes()
        content = data[: len(data) // 2]
    ckpt.write_bytes(content)
    cfg = compose_cfg(f"ckpt_path={ckpt}", "logger.experiment_name=resumed")
    message = _fails_before_any_run(cfg, "ckpt_path")
    assert "does not load" in message


def test_a_checkpoint_of_another_config_is_refused(compose_cfg, tmp_path):
    train(compose_cfg("trainer.max_steps=2", run="small"))
    ckpt = tmp_path / "small" / "checkpoints" / "last.ckpt"
    cfg = compose_cfg("model.hidden=12", f"ckpt_path={ckpt}", "logger.experiment_name=other")
    message = _fails_before_any_run(cfg, "ckpt_path")
    assert "model.hidden=16 (now 12)" in message


@pytest.mark.slow
def test_a_sigkilled_run_is_closed_killed_once_its_process_is_gone(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    proc = _train(tmp_path, "trainer.max_steps=400", "trainer.val_check_interval=3")
    _wait_for_generation(tmp_path, 2)
    assert close_abandoned_runs(uri) == []  # alive: it holds its run folder
    proc.kill()
    proc.wait(timeout=60)
    _, (dead,) = _runs(tmp_path)
    assert dead.info.status == "RUNNING"  # nothing of the killed process closed it
    nxt = _train(tmp_path, "trainer.max_steps=2", run="next")  # the next run on the store closes it
    out, err = nxt.communicate(timeout=600)
    assert nxt.returncode == 0, err[-3000:]
    assert f"closed MLflow run {dead.info.run_id} as KILLED" in out
    client, runs = _runs(tmp_path)
    dead = next(r for r in runs if r.info.run_id == dead.info.run_id)
    assert dead.info.status == "KILLED"
    assert "no longer held" in dead.data.tags["ggevo.failure"]
    assert [r.info.status for r in runs if r.info.run_id != dead.info.run_id] == ["FINISHED"]


def test_only_a_run_whose_owner_is_gone_is_closed_killed_never_one_that_ends_meanwhile(tmp_path, monkeypatch):
    """A run closes its MLflow run, then lets go of its folder: one listed RUNNING a moment before its folder is
    found free has ended well, and keeps its status (two of a Ray sweep's jobs were once closed KILLED so)."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.create_experiment("ggevo", artifact_location=(tmp_path / "artifacts").as_uri())
    folders = {name: tmp_path / name for name in ("dead", "live", "ending")}
    ids = {}
    for name, folder in folders.items():
        folder.mkdir()
        ids[name] = client.create_run(exp, tags=run_folder_tags(folder)).info.run_id

    class OwnerEndsAfterTheSearch(mlflow.tracking.MlflowClient):
        def search_runs(self, *args, **kwargs):
            found = super().search_runs(*args, **kwargs)
            self.set_terminated(ids["ending"], "FINISHED")  # ends well, then its folder is free
            return found

    monkeypatch.setattr(checks, "open_store", OwnerEndsAfterTheSearch)
    with RunFolderClaim(folders["live"], "run_dir"):
        assert close_abandoned_runs(uri) == [ids["dead"]]
        assert {n: client.get_run(i).info.status for n, i in ids.items()} == \
            {"dead": "KILLED", "live": "RUNNING", "ending": "FINISHED"}
        assert "ggevo.failure" not in client.get_run(ids["ending"]).data.tags
    RunFolderClaim(folders["dead"], "run_dir").close()  # the lock taken while closing it was let go


def test_a_claim_waits_out_a_moment_s_hold_but_not_a_live_run(tmp_path):
    """``close_abandoned_runs`` holds a dead run's folder for a moment while it closes that run: a run starting in that
    folder then waits for it; a folder a live run holds stays refused, in one line naming the key."""
    held = claim_if_free(tmp_path)
    assert held is not None and claim_if_free(tmp_path) is None
    threading.Timer(0.3, held.close).start()  # let go a moment later, as close_abandoned_runs does
    with RunFolderClaim(tmp_path, "run_dir"):
        with pytest.raises(ConfigError, match=r"^run_dir: the run folder .* is in use by another live run"):
            RunFolderClaim(tmp_path, "run_dir")
