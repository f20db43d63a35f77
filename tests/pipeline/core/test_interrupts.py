"""Ctrl-C and SIGTERM on a whole training process: the run ends KILLED with its front, the process with
130 or 143 and one line."""

import signal

import pytest

from tests.pipeline.processes import train_process as _train
from tests.pipeline.processes import wait_for_generation as _wait_for_generation
from tests.pipeline.records import runs as _runs


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
