"""A progress display in steps (generations, for GEMONN), hypervolume and best loss."""

from __future__ import annotations

import pytorch_lightning as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ggevo.lit.status import PROGRESS


def _stats(metrics: dict) -> str:
    if "hypervolume" not in metrics:
        return ""
    text = f"hv {float(metrics['hypervolume']):.4f}  best loss {float(metrics['loss/min']):.4f}"
    if "density/knee" in metrics:
        text += f"  knee {float(metrics['loss/knee']):.4f} at density {float(metrics['density/knee']):.3f}"
    return text


class GenerationProgress(pl.Callback):
    """A live bar on a terminal; elsewhere (logs, CI, sweeps) a plain line every ``1/lines`` of the run (every
    ``ceil(max_steps / lines)`` steps: at most ``lines`` of them, plus the first and the last)."""

    def __init__(self, lines: int = 10):
        self.lines = max(1, lines)
        self.console = Console(stderr=True)
        self._progress: Progress | None = None
        self._task = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.console.is_terminal:
            return
        self._progress = Progress(
            TextColumn("[bold]step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task("evolve", total=trainer.max_steps, completed=trainer.global_step,
                                             stats="")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero:
            return
        step, stats = trainer.global_step, _stats(getattr(pl_module, PROGRESS, {}))
        if self._progress is not None:
            self._progress.update(self._task, completed=step, stats=stats)
        elif step == 1 or step % max(1, -(-trainer.max_steps // self.lines)) == 0 or step == trainer.max_steps:
            print(f"step {step}/{trainer.max_steps}  {stats}", flush=True)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_train_end(trainer, pl_module)
