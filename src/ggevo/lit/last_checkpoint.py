"""A run's checkpoints: the periodic one, and the one a dying run leaves (saved on Ctrl-C, SIGTERM or an
exception, so no generation is lost), written straight to a file (``FileCheckpointIO``)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

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


class PiecewiseWriter(io.RawIOBase):
    """A writable binary file that hands each write on to ``file`` in pieces of at most ``piece`` bytes.

    ``torch.save`` writes each tensor's storage in one ``write`` call (a population's 16 MB of weights at once).
    On an Intel Xeon (family 6 model 167) one write of 48 MB into a new file took 0.4-0.7 s, the same bytes in
    writes of 1 MB 17-25 ms, and ``torch.save`` of a population's checkpoint through this writer 47-59 ms against
    325-559 ms to its path (``python benchmarks/checkpoint_write.py``; in a trunk run its 46 checkpoints 3.3 s
    against 16 s); on an AMD EPYC (family 25 model 17) 22 ms against 101 ms. The bytes written are the same."""

    def __init__(self, file: io.BufferedIOBase, piece: int = 1 << 20):
        self.file, self.piece = file, piece

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), self.piece):
            self.file.write(view[start : start + self.piece])
        return len(view)

    def flush(self) -> None:
        self.file.flush()


def save_in_pieces(obj: Any, path: Path) -> None:
    """``torch.save(obj, path)`` written through ``PiecewiseWriter``: the same checkpoint, in writes of 1 MB."""
    with open(path, "wb") as file:
        torch.save(obj, PiecewiseWriter(file))


class FileCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer for a local path: ``torch.save`` into a temporary file beside the
    checkpoint, in writes of at most 1 MB (``PiecewiseWriter``), then an atomic rename over it, so a run killed
    while saving leaves the previous checkpoint whole (as Lightning's own writer does). Lightning's writer
    serialises into memory, copies that buffer and writes the copy through fsspec: a population's 48 MB checkpoint
    took a median 165 ms that way; in a run, ``torch.save`` to the temporary path 295 ms and this writer 73 ms
    (``benchmarks/README.md``, "a twenty-fifth session" and "a twenty-sixth session"). Any other path (a URL) goes
    to Lightning's."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            save_in_pieces(checkpoint, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
