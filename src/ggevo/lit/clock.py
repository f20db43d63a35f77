"""Wall time of a run across its pieces: kept in every checkpoint, so a resumed run adds to it."""

from __future__ import annotations

import time

import pytorch_lightning as pl


class RunClock(pl.Callback):
    """Seconds spent in training so far, over every resumed piece (those after the last checkpoint
    of an interrupted piece are lost with it)."""

    def __init__(self) -> None:
        self.before = 0.0  # seconds of the earlier pieces, restored from a checkpoint
        self._started = time.perf_counter()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self._started

    def state_dict(self) -> dict:
        return {"wall_time_s": self.elapsed()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.before = float(state_dict.get("wall_time_s", 0.0))
