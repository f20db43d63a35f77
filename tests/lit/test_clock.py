"""``RunClock``: the seconds a run spends in ``fit``, over every resumed piece, and nothing between them.

Each generation is slowed by a known sleep, so the clock has a floor that does not depend on the machine;
its ceiling is the wall time measured around ``fit`` (plus the earlier pieces)."""

import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from ggevo.lit.clock import RunClock
from tests.lit.tiny_run import fit, tiny_module, tiny_trainer

NAP = 0.03  # seconds added to each generation


class Slow(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(NAP)


def timed_fit(trainer: pl.Trainer, clock: RunClock, ckpt_path=None) -> tuple[float, float]:
    """``(clock.elapsed(), wall seconds of fit)`` read as ``fit`` returns."""
    start = time.perf_counter()
    fit(trainer, tiny_module(), ckpt_path)
    elapsed = clock.elapsed()
    return elapsed, time.perf_counter() - start


def periodic(folder) -> ModelCheckpoint:
    """``last.ckpt`` every 4 generations (the same in both pieces, as a resumed run's config keeps it)."""
    return ModelCheckpoint(dirpath=folder, every_n_train_steps=4, save_top_k=0, save_last=True)


def stored(path) -> float:
    return torch.load(path, weights_only=False)["callbacks"]["RunClock"]["wall_time_s"]


def test_the_clock_counts_the_fit_and_not_the_time_before_it():
    clock = RunClock()
    time.sleep(0.1)  # building the run: not training
    elapsed, wall = timed_fit(tiny_trainer(4, [clock, Slow()]), clock)
    assert 4 * NAP <= elapsed <= wall


def test_a_resumed_run_adds_its_time_to_the_checkpointed_time_and_not_the_gap_between(tmp_path):
    first = RunClock()
    elapsed, wall = timed_fit(tiny_trainer(4, [first, Slow(), periodic(tmp_path)]), first)
    before = stored(tmp_path / "last.ckpt")
    assert 4 * NAP <= before <= elapsed <= wall  # written at generation 4, as the fit ended

    time.sleep(0.1)  # the run is down
    start = time.perf_counter()
    second = RunClock()
    trainer = tiny_trainer(7, [second, Slow(), periodic(tmp_path)])
    elapsed, wall = timed_fit(trainer, second, tmp_path / "last.ckpt")
    assert second.before == before
    assert before + 3 * NAP <= elapsed <= before + wall
    trainer.save_checkpoint(tmp_path / "final.ckpt", weights_only=False)  # as a run's end saves it
    assert elapsed <= stored(tmp_path / "final.ckpt") <= before + (time.perf_counter() - start)


def test_a_checkpoint_from_before_the_clock_starts_it_at_zero():
    clock = RunClock()
    clock.load_state_dict({"wall_time_s": 12.5})
    assert clock.before == 12.5 and clock.state_dict()["wall_time_s"] >= 12.5
    clock.load_state_dict({})
    assert clock.before == 0.0 and clock.elapsed() < 12.5
