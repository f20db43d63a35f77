"""The recorder: a run's record is true or absent. Failures end FAILED with their reason, a Ctrl-C during a
write KILLED with every metric, each generation recorded once however often a resume replays it, and
every run its own name."""

import os
import signal

import pytest
import pytorch_lightning as pl
import torch

from ggevo.pipeline.core.interrupts import RunKilled
from ggevo.pipeline.record import recorder
from ggevo.pipeline.run.train import train
from tests.pipeline.processes import train_process as _train
from tests.pipeline.processes import wait_for_generation as _wait_for_generation
from tests.pipeline.records import KeepCheckpointOf as _KeepCheckpointOf
from tests.pipeline.records import runs as _runs


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


@pytest.mark.slow
def test_sigkill_leaves_a_checkpoint_and_the_resumed_record_is_exact(tmp_path):
    proc = _train(tmp_path, "trainer.max_steps=12", "trainer.val_check_interval=3")
    _wait_for_generation(tmp_path, 4)
    proc.kill()
    proc.wait(timeout=60)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    resumed = _train(tmp_path, "trainer.max_steps=12", "trainer.val_check_interval=3", f"ckpt_path={ckpt}")
    _, err = resumed.communicate(timeout=1200)
    assert resumed.returncode == 0, err[-3000:]
    client, (run,) = _runs(tmp_path)
    assert run.info.status == "FINISHED"
    for key in ("generation", "hypervolume", "loss/knee"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == list(range(1, 13)), key
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/loss_min")) == [3, 6, 9, 12]


def test_runs_of_the_same_seed_get_different_names(compose_cfg):
    cfg = compose_cfg("trainer.max_steps=1", "trainer.val_check_interval=1")
    train(cfg)
    train(compose_cfg("trainer.max_steps=1", "trainer.val_check_interval=1", run="again"))
    names = [r.info.run_name for r in _runs(cfg)[1]]
    assert len(names) == 2 and len(set(names)) == 2
