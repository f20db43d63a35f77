"""Whole processes: several runs opening one fresh store, Ctrl-C / SIGTERM / SIGKILL mid-run, a crashed sweep."""

import signal
import subprocess
import sys
import time

import mlflow
import pytest
import torch

from ggevo.pipeline.run.checks import close_abandoned_runs
from tests.conftest import ROOT


def _train(tmp_path, *overrides, run="run"):
    return subprocess.Popen(
        [sys.executable, "-m", "ggevo.train", "experiment=smoke", f"logger.tracking_uri=sqlite:///{tmp_path / 'm.db'}",
         f"run_dir={tmp_path / run}", "checkpoint.every_n_steps=1", *overrides],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _runs(tmp_path, experiment="ggevo"):
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    return client, client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def _wait_for_generation(tmp_path, generation, run="run", timeout=900):
    """Until the run's checkpoint holds ``generation`` (checkpoints come every generation)."""
    ckpt = tmp_path / run / "checkpoints" / "last.ckpt"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if torch.load(ckpt, weights_only=False)["global_step"] >= generation:
                return
        except Exception:  # not written yet
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{ckpt} never reached generation {generation}")


@pytest.mark.slow
def test_several_runs_open_one_fresh_store_at_once(tmp_path):
    procs = [_train(tmp_path, f"seed={s}", run=f"r{s}") for s in range(3)]
    outs = [p.communicate(timeout=1200) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e[-2000:] for _, e in outs]
    client, runs = _runs(tmp_path)
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    for r in runs:
        assert [m.step for m in client.get_metric_history(r.info.run_id, "hypervolume")] == [1, 2, 3, 4, 5]
        assert "final/hypervolume" in r.data.metrics


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("generation", [1, 4])
def test_a_signal_mid_run_kills_the_run_truly(tmp_path, signum, code, generation):
    proc = _train(tmp_path, "trainer.max_steps=400", "trainer.val_check_interval=3")
    _wait_for_generation(tmp_path, generation)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("killed: interrupted at step ")
    client, (run,) = _runs(tmp_path)
    assert run.info.status == "KILLED"
    assert {"front.csv", "pareto.png", "knee_model.pt"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


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


@pytest.mark.slow
def test_a_crashed_multirun_closes_its_parent_with_the_worst_status(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ggevo.train", "-m", "experiment=smoke", "optimizer.weight_bound=10,-1",
         f"logger.tracking_uri=sqlite:///{tmp_path / 'm.db'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: optimizer.weight_bound: ")
    _, runs = _runs(tmp_path)
    (parent,) = [r for r in runs if r.data.tags.get("ggevo.role") == "sweep"]
    assert parent.info.status == "FAILED"
    assert [r.info.status for r in runs if r.data.tags.get("ggevo.role") == "train"] == ["FINISHED"]


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
