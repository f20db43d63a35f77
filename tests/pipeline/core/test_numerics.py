"""Subnormals flushed in every torch thread (``flush_denormal``), and off restores the CPU's own numbers."""

import subprocess
import sys

import mlflow
import pytest
import sklearn.utils._openmp_helpers  # noqa: F401  a second libgomp in this process, as when the digits are read
import torch

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.numerics import apply_numerics_setting, flush_denormals
from ggevo.pipeline.run.train import train
from tests.conftest import ROOT

TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32; below it, subnormals

# a computation whose inputs and products are subnormal: x*b+x over 4M entries (torch splits it over every
# thread of its pool) and a matmul with subnormal weights, as the trained autoencoder's
# scikit-learn's own libgomp is loaded first, as in any process that read its datasets: the setting must
# still reach torch's threads, not only the other runtime's
PROBE = """
import sys
import sklearn.utils._openmp_helpers
import torch
from ggevo.pipeline.core.numerics import flush_denormals
torch.manual_seed(0)
x = (torch.rand(4_000_000) + 0.5) * {tiny} / 2       # every entry subnormal, none 0 (DAZ reads them as 0)
w = (torch.rand(64, 300) + 0.5) * {tiny} / 2
a = torch.rand(300, 200) + 0.5
y = x * 0.5 + x          # the pool exists before any setting below
if sys.argv[1] != "default":
    flush_denormals(True)
    flush_denormals(sys.argv[1] == "on")
y, m = x * 0.5 + x, w @ a
sys.stdout.buffer.write(y.numpy().tobytes() + m.numpy().tobytes())
""".format(tiny=TINY)


def _probe(mode: str) -> bytes:
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return proc.stdout


@pytest.mark.slow
def test_flushing_reaches_every_thread_and_off_restores_the_default_numbers():
    flush_denormals(False)  # a child process can start in its parent's mode (seen here): start it in the default
    default, on, off = _probe("default"), _probe("on"), _probe("off")
    assert off == default  # switched on, then off: bit for bit the CPU's gradual underflow
    flushed = torch.frombuffer(bytearray(on), dtype=torch.float32)
    kept = torch.frombuffer(bytearray(default), dtype=torch.float32)
    assert bool((kept != 0).all())  # without the flag every subnormal result survives ...
    assert bool((flushed == 0).all())  # ... with it every entry, whichever thread computed it, is 0


def test_the_setting_reaches_the_threads_of_an_existing_pool():
    if torch.get_num_threads() < 2:
        pytest.skip("one torch thread: no pool to reach")
    assert sklearn.utils._openmp_helpers  # scikit-learn's libgomp is loaded in this process too (imported above)
    flush_denormals(False)  # earlier runs in this process leave their setting (on by default)
    x = torch.full((4_000_000,), TINY / 4)
    try:
        assert flush_denormals(True) == torch.get_num_threads()
        assert bool(((x * 0.5 + x) == 0).all())
        flush_denormals(False)
        assert bool(((x * 0.5 + x) != 0).all())
    finally:
        flush_denormals(False)


def test_bad_value_names_the_key():
    with pytest.raises(ConfigError, match="flush_denormal: must be true or false"):
        apply_numerics_setting({"flush_denormal": "yes"})


@pytest.mark.parametrize("flag", [True, False])
def test_a_run_records_the_setting_it_ran_with(compose_cfg, flag):
    cfg = compose_cfg("trainer.max_steps=2", "trainer.val_check_interval=2", f"flush_denormal={str(flag).lower()}")
    try:
        train(cfg)
    finally:
        flush_denormals(False)
    client = mlflow.tracking.MlflowClient(tracking_uri=cfg.logger.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment_name).experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["numerics.flush_denormal"] == str(flag).lower()
