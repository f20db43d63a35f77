"""The config a checkpoint was made under, written into it so a resume can refuse a different one."""

from __future__ import annotations

import pytorch_lightning as pl

STAMP_KEY = "ggevo_config"


class ConfigStamp(pl.Callback):
    """Adds ``stamp`` (flattened config keys that fix the population's meaning) to every checkpoint."""

    def __init__(self, stamp: dict[str, str]):
        self.stamp = dict(stamp)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[STAMP_KEY] = self.stamp
