"""A tiny real GEMONN run for the tests of the Lightning callbacks: a 4-network population of a small
classifier, fitted by a real ``pl.Trainer`` on a seeded minibatch stream (a few milliseconds a generation)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers.logger import Logger

from ggevo.data.stream import MinibatchStream
from ggevo.ea import GEMONN
from ggevo.lit.last_checkpoint import FileCheckpointIO
from ggevo.lit.module import EvolutionModule
from ggevo.models import MLP


def tiny_module(**options) -> EvolutionModule:
    """The 4-network population (``options``: more of ``GEMONN``'s, e.g. a trunk)."""
    torch.manual_seed(0)
    return EvolutionModule(MLP(inputs=6, widths=[5], classes=3),
                           partial(GEMONN, pop_size=4, compile=False, seed=0, **options),
                           task="classification", evaluation="loop")


def tiny_stream() -> MinibatchStream:
    g = torch.Generator().manual_seed(1)
    return MinibatchStream(torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g), 16, seed=0)


class TinyData(pl.LightningDataModule):
    """The stream as a DataModule, so a resumed run's module can ``seek`` it to the generation it resumes at."""

    def __init__(self):
        super().__init__()
        self.stream = tiny_stream()

    def train_dataloader(self) -> MinibatchStream:
        return self.stream


def tiny_trainer(max_steps: int, callbacks: list[pl.Callback], logger: Logger | list[Logger] | bool = False,
                 root: Path | None = None) -> pl.Trainer:
    """A CPU Trainer of ``max_steps`` generations with only ``callbacks`` (no bar, no summary; checkpoints
    only where a ``ModelCheckpoint`` is among ``callbacks``, written as ``pipeline.run.build`` writes them)."""
    return pl.Trainer(max_steps=max_steps, logger=logger, callbacks=callbacks, accelerator="cpu", devices=1,
                      enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
                      default_root_dir=str(root) if root is not None else None, plugins=[FileCheckpointIO()])


def fit(trainer: pl.Trainer, module: EvolutionModule, ckpt_path: Path | None = None) -> None:
    trainer.fit(module, datamodule=TinyData(), ckpt_path=str(ckpt_path) if ckpt_path else None)


def generation_state(path: Path) -> dict:
    """The optimizer's population state held in the checkpoint at ``path``."""
    return torch.load(path, weights_only=False)["optimizer_states"][0]["state"][0]


class RecordingLogger(Logger):
    """A logger that only records: each ``log_metrics`` call as ``(step, metrics)``, and at each ``save()``
    what ``on_save`` returns (by default the trainer's generation, when ``trainer`` is set)."""

    def __init__(self, name: str = "recording"):
        super().__init__()
        self._name = name
        self.metrics: list[tuple[int, dict]] = []
        self.saves: list = []
        self.on_save = lambda: None

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.metrics.append((step, dict(metrics)))

    def save(self) -> None:
        self.saves.append(self.on_save())
