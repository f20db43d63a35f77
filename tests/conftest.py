"""Shared helpers: compose the project's Hydra config for tiny runs with a private MLflow store."""

import signal
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
LONGEST = "tests/pipeline/test_dvc.py"  # the slow file that takes longest (pytest_collection_modifyitems)


def pytest_configure(config):
    """A suite started in the background (``pytest … &`` in a script) inherits Ctrl-C ignored, and so would every
    process its tests start: the tests that interrupt a run with SIGINT need it delivered, so it is restored."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (``-n 2 --dist loadgroup``, as CI runs the slow tests): the tests of one file share a
    worker, so its module fixtures are built once, and so do all that use the team setup (one PostgreSQL,
    MLflow server and Ray head a session). First among the hooks: xdist reads the group in its own, and a marker
    added after it is not seen (each worker then built the file's fixtures again)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        group = "team" if "team_sweep" in item.fixturenames else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
    # the longest file first (the real pipeline by dvc repro: over 15 minutes on one worker of a 2-core AMD EPYC),
    # so the other worker runs the rest beside it instead of idling while it ends the suite alone
    items.sort(key=lambda item: item.nodeid.split("::")[0] != LONGEST)


@pytest.fixture
def compose_cfg(tmp_path):
    """``compose_cfg(*overrides)`` → the composed config of a tiny run writing under ``tmp_path``."""

    def make(*overrides: str, run: str = "run") -> DictConfig:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose(
                "config",
                overrides=[
                    "experiment=smoke",
                    f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                    f"logger.artifact_location={(tmp_path / 'artifacts').as_uri()}",
                    f"run_dir={tmp_path / run}",
                    *overrides,
                ],
            )

    return make


FLOAT32_EPS = torch.finfo(torch.float32).eps


def assert_close_in_float32(actual: torch.Tensor, expected: torch.Tensor, *, terms: int) -> None:
    """Each row of ``actual`` equals ``expected``'s up to float32 rounding of a result that sums ``terms``
    products: the same sum taken in another order (another kernel, instruction set or batching) differs
    by at most ``terms · eps`` of the row's norm. A tolerance that follows from float32, not from one CPU."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    actual, expected = actual.double().reshape(len(actual), -1), expected.double().reshape(len(expected), -1)
    error = (actual - expected).norm(dim=1)
    bound = terms * FLOAT32_EPS * expected.norm(dim=1)
    worst = int((error / bound.clamp_min(torch.finfo(torch.float64).tiny)).argmax())
    assert bool((error <= bound).all()), (f"row {worst}: error {float(error[worst]):.3g} exceeds {terms} · eps · "
                                          f"|row| = {float(bound[worst]):.3g}")


def full_and_resumed(compose_cfg, tmp_path, overrides, *, steps: int, split: int) -> tuple[dict, dict]:
    """The optimizer state after ``steps`` generations of a run of ``overrides``, uninterrupted and
    stopped after ``split`` then resumed from its checkpoint (a checkpoint every ``split`` generations)."""
    from ggevo.pipeline.run.train import train

    every = f"checkpoint.every_n_steps={split}"
    train(compose_cfg(*overrides, f"trainer.max_steps={steps}", every, run="full"))
    train(compose_cfg(*overrides, f"trainer.max_steps={split}", every, "logger.experiment_name=resume", run="part"))
    ckpt = tmp_path / "part" / "checkpoints" / "last.ckpt"
    train(compose_cfg(*overrides, f"trainer.max_steps={steps}", every, "logger.experiment_name=resume",
                      f"ckpt_path={ckpt}", run="part"))
    state = lambda run: torch.load(tmp_path / run / "checkpoints" / "last.ckpt",  # noqa: E731
                                   weights_only=False)["optimizer_states"][0]["state"][0]
    return state("full"), state("part")
