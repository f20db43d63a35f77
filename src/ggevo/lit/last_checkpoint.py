"""A run's checkpoints: the periodic one, and the one a dying run leaves (saved on Ctrl-C, SIGTERM or an
exception, so no generation is lost)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

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


class GenerationCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every`` generations, where the module says so (``checkpoint_due(step, every)``;
    ``EvolutionModule``'s counts a trunk's one-network generations as a share of a population's), else at each
    multiple of ``every``."""

    def __init__(self, dirpath: Path, every: int):
        # asked at every step: the skip below decides (Lightning's own step count would save at each multiple)
        super().__init__(dirpath=dirpath, every_n_train_steps=1, save_top_k=0, save_last=True,
                         enable_version_counter=False)
        self.every = every

    def _should_skip_saving_checkpoint(self, trainer: pl.Trainer) -> bool:
        step = trainer.global_step
        due = getattr(trainer.lightning_module, "checkpoint_due", None)
        return super()._should_skip_saving_checkpoint(trainer) or not (
            due(step, self.every) if due is not None else step % self.every == 0)
