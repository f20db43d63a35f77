"""The one way in: every object of a run built from its config. The only caller of ``instantiate``.

Data, model, optimizer, LightningModule, the recorder and the Trainer with its callbacks; the
export and the test evaluation rebuild their models here too.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ggevo.lit.clock import RunClock
from ggevo.lit.gradient import GradientModule
from ggevo.lit.last_checkpoint import (
    CheckpointOnInterrupt,
    FileCheckpointIO,
    GenerationCheckpoint,
    StoreBeforeCheckpoint,
)
from ggevo.lit.module import EvolutionModule
from ggevo.lit.sparse import SparseModule, build_method, method_options
from ggevo.lit.tasks import model_task
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.paths import rooted
from ggevo.pipeline.record.recorder import Recorder
from ggevo.pipeline.run.validate import MODULE_KEYS, evolves_population, optimizer_arguments, select_on_for


def build_model(model_cfg: dict) -> torch.nn.Module:
    """``model._target_`` built from its arguments (``task`` removed); a wrong target or argument fails
    as one ConfigError line."""
    model_cfg = {k: v for k, v in model_cfg.items() if k != "task"}
    target = model_cfg.get("_target_")
    try:
        return instantiate(model_cfg)
    except InstantiationException as err:
        if err.__cause__ is None or str(err).startswith("Error locating target"):
            raise ConfigError(f"model._target_: cannot import {target!r}") from err
        raise ConfigError(f"model ({target}): {err.__cause__}") from err


def build_data(cfg: DictConfig) -> pl.LightningDataModule:
    """The DataModule of ``cfg.data``, set up (loaded and split), its folders made absolute."""
    prepared = cfg.data.get("prepared")
    data = instantiate(cfg.data, data_dir=str(rooted(cfg.data.data_dir)),
                       prepared=str(rooted(prepared)) if prepared else None)
    data.setup()
    return data


def unprepared_data(cfg: DictConfig) -> pl.LightningDataModule:
    """The DataModule read from its source, ignoring ``data.prepared`` (``ggevo-prepare`` writes that file)."""
    return instantiate(cfg.data, data_dir=str(rooted(cfg.data.data_dir)), prepared=None)


def optimizer_factory(cfg: DictConfig):
    """``params -> optimizer`` of ``cfg.optimizer`` (keys it does not take are dropped, and named; a value
    given by task is the model's task's, ``validate.for_task``)."""
    args = optimizer_arguments(cfg.optimizer, model_task(cfg.model))
    module_keys = set(MODULE_KEYS)  # keys the run reads (validate.MODULE_KEYS), and a sparse method's schedule
    if cfg.optimizer.get("method"):
        module_keys |= set(method_options(cfg.optimizer))
    dropped = sorted(k for k in cfg.optimizer if not k.startswith("_") and k not in args and k not in module_keys)
    if dropped:
        print(f"note: {args['_target_']} ignores optimizer.{', optimizer.'.join(dropped)}")
    return instantiate(args)


def build_module(cfg: DictConfig) -> EvolutionModule | GradientModule | SparseModule:
    """The LightningModule: GEMONN-like optimizers evolve, gradient ones train down a pruning schedule or,
    with ``optimizer.method`` (gmp | rigl | oneshot), by that sparse-training method."""
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    task = model_task(model_cfg)
    model = build_model(model_cfg)
    if evolves_population(cfg.optimizer):
        return EvolutionModule(model, optimizer_factory(cfg), task=task, evaluation=cfg.evaluation.strategy,
                               chunk_size=cfg.evaluation.chunk_size,
                               select_on=select_on_for(cfg.optimizer, task))
    if cfg.optimizer.get("method"):
        return build_method(model, optimizer_factory(cfg), OmegaConf.to_container(cfg.optimizer, resolve=True),
                            task=task, budget=int(cfg.trainer.max_steps), hv_ref=cfg.hv_ref, seed=int(cfg.seed))
    schedule = cfg.optimizer.get("prune_schedule") or [1.0]
    return GradientModule(model, optimizer_factory(cfg), task=task, schedule=schedule,
                          budget=int(cfg.trainer.max_steps), hv_ref=cfg.hv_ref)


def build(cfg: DictConfig) -> tuple[EvolutionModule | GradientModule | SparseModule, pl.LightningDataModule]:
    """The LightningModule and DataModule that ``cfg`` describes (data loaded, so failures come early)."""
    data = build_data(cfg)
    return build_module(cfg), data


def build_recorder(cfg: DictConfig, out: Path) -> Recorder:
    return Recorder(cfg, out)


def build_trainer(cfg: DictConfig, recorder: Recorder, out: Path, clock: RunClock,
                  callbacks: list[pl.Callback] = ()) -> pl.Trainer:
    """The Trainer: a checkpoint every ``checkpoint.every_n_steps`` generations (``GenerationCheckpoint``) and on
    any interruption, each written straight to its file (``FileCheckpointIO``)."""
    checkpoints = GenerationCheckpoint(out / "checkpoints", cfg.checkpoint.every_n_steps)
    last = out / "checkpoints" / "last.ckpt"
    return instantiate(cfg.trainer, logger=recorder, default_root_dir=str(out), plugins=[FileCheckpointIO()],
                       callbacks=[StoreBeforeCheckpoint(), checkpoints, CheckpointOnInterrupt(last),
                                  *build_callbacks(cfg), clock, *callbacks])


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """The ``callbacks`` group's entries (conf/callbacks/default.yaml), in order; a wrong one fails in one line."""
    built = []
    for name, spec in (cfg.get("callbacks") or {}).items():
        if spec is None:
            continue
        try:
            callback = instantiate(spec)
        except InstantiationException as err:
            raise ConfigError(f"callbacks.{name}: {err.__cause__ or err}".splitlines()[0]) from err
        if not isinstance(callback, pl.Callback):
            raise ConfigError(f"callbacks.{name}: {type(callback).__name__} is not a Lightning callback")
        built.append(callback)
    return built
