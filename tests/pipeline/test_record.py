"""A run's record is true or absent: checks before compute, statuses, exact-once metrics, names, fronts."""

import os
import signal
import subprocess
import sys

import mlflow
import pytest
import pytorch_lightning as pl
import torch

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.interrupts import RunKilled
from ggevo.pipeline.record import recorder
from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.run.results import distinct
from ggevo.pipeline.run.train import train


def _runs(cfg):
    client = mlflow.tracking.MlflowClient(cfg.logger.tracking_uri)
    exp = client.get_experiment_by_name(cfg.logger.experiment_name)
    return client, ([] if exp is None else client.search_runs([exp.experiment_id]))


def _fails_before_any_run(cfg, key):
    with pytest.raises(ConfigError) as err:
        train(cfg)
    message = str(err.value)
    assert message.startswith(f"{key}:") and "\n" not in message, message
    assert _runs(cfg)[1] == []  # no MLflow run was opened
    return message


# ------------------------------------------------------------------ checks before compute
@pytest.mark.parametrize("override, key", [
    ("optimizer.weight_bound=-1", "optimizer.weight_bound"),
    ("optimizer.mutation_rate=5", "optimizer.mutation_rate"),
    ("evaluation.chunk_size=0", "evaluation.chunk_size"),
    ("checkpoint.every_n_steps=0", "checkpoint.every_n_steps"),
])
def test_every_option_fails_before_any_run_opens(compose_cfg, override, key):
    _fails_before_any_run(compose_cfg(override), key)


def test_an_unwritable_run_folder_fails_before_compute(compose_cfg, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    _fails_before_any_run(compose_cfg(f"run_dir={tmp_path / 'a_file' / 'run'}"), "run_dir")


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


def test_an_unwritable_artifact_store_fails_before_compute(compose_cfg, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    _fails_before_any_run(compose_cfg(f"logger.artifact_location={(tmp_path / 'a_file' / 'art').as_uri()}"),
                          "logger.artifact_location")


def test_a_sqlite_store_in_a_missing_folder_is_refused_not_created(compose_cfg, tmp_path):
    cfg = compose_cfg(f"logger.tracking_uri=sqlite:///{tmp_path / 'nowhere' / 'x.db'}")
    with pytest.raises(ConfigError, match="^logger.tracking_uri: the folder .*nowhere.* does not exist"):
        train(cfg)
    assert not (tmp_path / "nowhere").exists()


def test_an_unreachable_server_fails_in_seconds(compose_cfg):
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=f"^logger.tracking_uri: no MLflow server answers at http://127.0.0.1:{port}"):
        train(compose_cfg(f"logger.tracking_uri=http://127.0.0.1:{port}"))
    assert time.perf_counter() - started < 15


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


# ------------------------------------------------------------------ statuses
class _Crash(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 2:
            raise RuntimeError("disk on fire\nsecond line")


def test_a_failure_inside_training_ends_failed_with_its_reason(compose_cfg):
    cfg = compose_cfg("trainer.max_steps=5")
    with pytest.raises(RuntimeError):
        train(cfg, callbacks=[_Crash()])
    (run,) = _runs(cfg)[1]
    assert run.info.status == "FAILED"
    assert run.data.tags["ggevo.failure"] == "RuntimeError: disk on fire"


def test_a_model_whose_every_loss_is_nan_fails_in_one_line(compose_cfg):
    cfg = compose_cfg("model._target_=tests.pipeline.broken_models.NaNAutoencoder", "trainer.max_steps=2")
    with pytest.raises(FloatingPointError) as err:
        train(cfg)
    assert "\n" not in str(err.value) and "finite" in str(err.value)
    (run,) = _runs(cfg)[1]
    assert run.info.status == "FAILED" and run.data.tags["ggevo.failure"].startswith("FloatingPointError: ")


class _SignalDuringWrite:
    """The recorder's real MLflow client, with SIGINT delivered in the middle of its metric writes."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def log_batch(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs between these bytecodes, inside the write
            pass
        return self._client.log_batch(*args, **kwargs)


class _InterruptWriteAt(pl.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step - 1:
            trainer.logger._client = _SignalDuringWrite(trainer.logger._client)


@pytest.mark.parametrize("step", [1, 3])
def test_ctrl_c_during_a_metric_write_is_killed_with_every_metric(compose_cfg, tmp_path, step, monkeypatch):
    monkeypatch.setattr(recorder, "FLUSH_SECONDS", 0.0)  # every generation's metrics stored as they come
    cfg = compose_cfg("trainer.max_steps=6", "trainer.val_check_interval=2")
    with pytest.raises(RunKilled) as killed:
        train(cfg, callbacks=[_InterruptWriteAt(step)])
    assert killed.value.exit_code == 130
    client, (run,) = _runs(cfg)
    assert run.info.status == "KILLED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "hypervolume")]
    assert steps == list(range(1, step + 1))  # the generation being written was written whole
    assert {"front.csv", "knee_model.pt"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back


class _StoredAtCheckpoint(pl.Callback):
    """The steps of ``hypervolume`` the store holds when each checkpoint is taken (after ggevo's own callbacks)."""

    def __init__(self):
        self.seen: dict[int, list[int]] = {}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        rec = trainer.logger
        history = rec._client.get_metric_history(rec.run_id, "hypervolume")
        self.seen[trainer.global_step] = sorted(m.step for m in history)


def test_metrics_held_between_writes_are_stored_before_every_checkpoint(compose_cfg, monkeypatch):
    monkeypatch.setattr(recorder, "FLUSH_SECONDS", 1e9)  # no write by time: only the checkpoints store them
    cfg = compose_cfg("trainer.max_steps=6", "trainer.val_check_interval=6", "checkpoint.every_n_steps=2")
    seen = _StoredAtCheckpoint()
    train(cfg, callbacks=[seen])
    assert seen.seen[2] == [1, 2] and seen.seen[4] == [1, 2, 3, 4]
    client, (run,) = _runs(cfg)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "hypervolume")] == list(range(1, 7))


# ------------------------------------------------------------------ crash-exact records
class _KeepCheckpointOf(pl.Callback):
    """Copies ``last.ckpt`` as it stood after generation ``step``: what a SIGKILL later would leave."""

    def __init__(self, step, to):
        self.step, self.to = step, to

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step + 1:
            self.to.write_bytes((self.to.parent / "checkpoints" / "last.ckpt").read_bytes())


def test_after_a_resume_each_generation_is_recorded_once_and_time_adds_up(compose_cfg, tmp_path):
    kept = tmp_path / "run" / "at2.ckpt"
    first = compose_cfg("trainer.max_steps=4", "trainer.val_check_interval=2", "checkpoint.every_n_steps=1")
    train(first, callbacks=[_KeepCheckpointOf(2, kept)])
    wall_before = torch.load(kept, weights_only=False)["callbacks"]["RunClock"]["wall_time_s"]
    assert wall_before > 0
    # generations 3 and 4 were recorded after that checkpoint: a resume from it replays them
    train(compose_cfg("trainer.max_steps=6", "trainer.val_check_interval=2", f"ckpt_path={kept}"))
    client, (run,) = _runs(first)
    assert run.info.status == "FINISHED"
    for key in ("generation", "hypervolume", "loss/min", "evaluations"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == list(range(1, 7)), key
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/loss_min")) == [2, 4, 6]
    assert run.data.metrics["wall_time_s"] > wall_before


def test_the_default_checkpoint_interval_is_the_measured_one(compose_cfg):
    """Every 50 generations: every 10 cost 14% of the paper configuration's run (159 MB checkpoints),
    every 50 about 3% (conf/config.yaml, README)."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import ROOT

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        assert compose("config").checkpoint.every_n_steps == 50


# ------------------------------------------------------------------ names and fronts
def test_runs_of_the_same_seed_get_different_names(compose_cfg):
    cfg = compose_cfg("trainer.max_steps=1", "trainer.val_check_interval=1")
    train(cfg)
    train(compose_cfg("trainer.max_steps=1", "trainer.val_check_interval=1", run="again"))
    names = [r.info.run_name for r in _runs(cfg)[1]]
    assert len(names) == 2 and len(set(names)) == 2


def test_duplicate_members_are_recorded_once():
    X = torch.tensor([[0.0, 1.0], [0.0, 1.0], [2.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 3.0]])
    F = torch.tensor([[0.5, 1.0], [0.5, 1.0], [0.5, 2.0], [0.5, 1.0], [0.5, 2.0], [1.0, 0.5]])
    Xd, Fd = distinct(X, F)
    assert Xd.tolist() == [[0.0, 1.0], [2.0, 0.0], [3.0, 3.0]]
    assert Fd.tolist() == [[0.5, 1.0], [0.5, 2.0], [1.0, 0.5]]


def test_the_recorded_front_has_no_duplicate_rows(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.max_steps=3", "optimizer.pop_size=10", "model.hidden=4")
    train(cfg)
    front = torch.load(tmp_path / "run" / "front.pt", weights_only=False)["X"]
    assert len(torch.unique(front, dim=0)) == len(front)
    assert len(read_front_csv(tmp_path / "run" / "front.csv")["density"]) == len(front)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_diverging_gradient_baseline_fails_in_one_line(compose_cfg, optimizer):
    """Cross-entropy is unbounded: Adam at lr 1e9 once ran to a finite loss of 8e8 and "succeeded"."""
    cfg = compose_cfg("model=mlp", "data=digits", "~model.hidden", "model.widths=[16]", "hv_ref=[1.1,2.5]",
                      f"optimizer={optimizer}", "optimizer.lr=1e9", "budget=40")
    with pytest.raises(FloatingPointError) as err:
        train(cfg)
    assert str(err.value).startswith("optimizer.lr: training diverged") and "\n" not in str(err.value)
    (run,) = _runs(cfg)[1]
    assert run.info.status == "FAILED"


class _CtrlCInValidation(pl.Callback):
    def on_validation_start(self, trainer, pl_module):
        if trainer.global_step == 4:
            raise KeyboardInterrupt


def test_a_validation_interrupted_is_made_up_on_resume(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.max_steps=6", "trainer.val_check_interval=2")
    with pytest.raises(RunKilled):
        train(cfg, callbacks=[_CtrlCInValidation()])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    train(compose_cfg("trainer.max_steps=6", "trainer.val_check_interval=2", f"ckpt_path={ckpt}"))
    client, (run,) = _runs(cfg)
    assert run.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/loss_min")) == [2, 4, 6]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "hypervolume")] == list(range(1, 7))
