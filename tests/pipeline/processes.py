"""Commands run as processes, as a user runs them (slow tests): ``ggevo-train`` on a private SQLite store,
any ``python -m`` command, and waiting for a running training to reach a generation."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import torch

from tests.conftest import ROOT


def train_process(tmp_path, *overrides, run="run") -> subprocess.Popen:
    """``python -m ggevo.train experiment=smoke`` recording into ``tmp_path / 'm.db'``, checkpointing every
    generation."""
    return subprocess.Popen(
        [sys.executable, "-m", "ggevo.train", "experiment=smoke", f"logger.tracking_uri=sqlite:///{tmp_path / 'm.db'}",
         f"run_dir={tmp_path / run}", "checkpoint.every_n_steps=1", *overrides],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_generation(tmp_path, generation, run="run", timeout=900):
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


def cli(*args, env=None, timeout=300) -> tuple[subprocess.CompletedProcess, float]:
    """``python -m <args>`` at the project root, and the seconds it took."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    return proc, time.perf_counter() - started


def one_line(proc) -> str:
    """The last line a failed command wrote to stderr, which held no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[-1]
