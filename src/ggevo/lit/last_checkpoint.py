"""The checkpoint a dying run leaves: saved on Ctrl-C, SIGTERM or an exception, so no generation is lost."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from ggevo.lit.module import EvolutionModule


class CheckpointOnInterrupt(pl.Callback):
    """Saves ``path`` when a run dies, unless the population is half-written (then the last
    generation's checkpoint stands)."""

    def __init__(self, path: Path):
        self.path = path

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(pl_module, EvolutionModule):
            return
        opt = pl_module.gemonn
        if opt.initialized and opt.consistent:
            trainer.save_checkpoint(self.path, weights_only=False)
        elif opt.initialized:
            print(f"interrupted while writing a generation: {self.path} keeps the last periodic checkpoint")


class StoreBeforeCheckpoint(pl.Callback):
    """Every logger stores what it holds (``Logger.save``) before a checkpoint is written, so a run
    resumed from that checkpoint finds each generation it covers already recorded."""

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            logger.save()
