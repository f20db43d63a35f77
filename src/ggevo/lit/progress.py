"""A progress bar that speaks in generations, hypervolume and best loss."""

from __future__ import annotations

import time

import pytorch_lightning as pl
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class GenerationProgress(pl.Callback):
    """Shows ``generation i/N  hv … best loss …`` while a run evolves."""

    def __init__(self, refresh_every: int = 1):
        self.refresh_every = max(1, refresh_every)
        self._progress: Progress | None = None
        self._task = None
        self.started = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()
        if not trainer.is_global_zero:
            return
        self._progress = Progress(
            TextColumn("[bold]generation"), MofNCompleteColumn(), BarColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
        )
        self._progress.start()
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        self._task = self._progress.add_task("evolve", total=total, completed=trainer.global_step, stats="")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._progress is None or trainer.global_step % self.refresh_every:
            return
        m = trainer.callback_metrics
        stats = ""
        if "hypervolume" in m:
            stats = f"hv {float(m['hypervolume']):.4f}  best loss {float(m['loss/min']):.4f}"
            if "density/knee" in m:
                stats += f"  knee {float(m['loss/knee']):.4f}@{float(m['density/knee']):.2f}"
        self._progress.update(self._task, completed=trainer.global_step, stats=stats)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=trainer.global_step)
            self._progress.stop()
            self._progress = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_train_end(trainer, pl_module)
