"""``train(cfg)``: compose objects from a config, evolve, record everything in MLflow."""

from __future__ import annotations

import inspect
import json
import logging
import signal
import time
import warnings
from datetime import datetime
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from ggevo.ea.finetune import masked_adam
from ggevo.lit.gradient import GradientModule
from ggevo.lit.module import EvolutionModule
from ggevo.lit.progress import GenerationProgress
from ggevo.pipeline.artifacts import final_metrics, front_table, pareto_plot, write_front_csv
from ggevo.pipeline.downstream import FineTune, record_downstream
from ggevo.pipeline.paths import project_root, rooted
from ggevo.pipeline.reconstructions import autoencoder_record
from ggevo.pipeline.tracking import flatten_config, make_logger
from ggevo.pipeline.validate import ConfigError, evolves_population, validate


def run_dir(cfg: DictConfig) -> Path:
    """``run_dir`` if set, else Hydra's output folder, else ``outputs/<timestamp>`` at the project root."""
    if cfg.get("run_dir"):
        return rooted(cfg.run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return project_root() / "outputs" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")


def generations_for(budget: int, pop_size: int, reevaluate: bool, offspring: int | None = None,
                    warmup: int = 0) -> int:
    """Generations that fit ``budget`` evaluations. A generation scores M children (M = ``offspring``,
    default N) and, when ``reevaluate``, re-scores the N parents; the first scores the N initial
    ones. The first ``warmup`` generations score the N parents only. So without warm-up ``g``
    generations cost ``(N + M)·g`` re-scoring, else ``N + M·g``; with it, ``N·W + (N + M)·(g − W)``
    re-scoring, else ``N·W + M·(g − W)``."""
    n, m, w = pop_size, offspring or pop_size, warmup
    if w and budget >= n * w:
        g = w + (budget - n * w) // (n + m if reevaluate else m)
    elif w:
        g = budget // n
    else:
        g = budget // (n + m) if reevaluate else (budget - n) // m
    if g < 1:
        raise ConfigError(f"budget: {budget} evaluations do not fit one generation of N={pop_size}")
    return g


def apply_budget(cfg: DictConfig) -> None:
    """With ``budget`` (gradient evaluations) set, derive ``trainer.max_steps`` so every method spends it."""
    if cfg.get("budget") is None:
        return
    if is_evolutionary(cfg):
        o = cfg.optimizer
        steps = generations_for(int(cfg.budget), o.pop_size, o.get("reevaluate_parents", False), o.get("offspring"),
                                o.get("warmup", 0))
    else:
        steps = int(cfg.budget)
    cfg.trainer.max_steps = steps


def is_evolutionary(cfg: DictConfig) -> bool:
    return evolves_population(cfg.optimizer)


def optimizer_config(cfg: DictConfig) -> dict:
    """``cfg.optimizer`` without the keys its optimizer does not take (a preset written for GEMONN
    may set ``pop_size`` or ``compile``, which Adam or pymoo's NSGA-II lack); says which it dropped."""
    opt_cfg = OmegaConf.to_container(cfg.optimizer, resolve=True)
    accepted = set(inspect.signature(get_class(opt_cfg["_target_"])).parameters) | {"prune_schedule"}
    dropped = sorted(k for k in opt_cfg if not k.startswith("_") and k not in accepted)
    if dropped:
        print(f"note: {opt_cfg['_target_']} ignores optimizer.{', optimizer.'.join(dropped)}")
    return {k: v for k, v in opt_cfg.items() if k not in dropped}


def _instantiate_model(model_cfg: dict) -> torch.nn.Module:
    """``model._target_`` built from its arguments; a wrong target or argument fails as one ConfigError line."""
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


def build(cfg: DictConfig) -> tuple[EvolutionModule | GradientModule, pl.LightningDataModule]:
    """The LightningModule and DataModule that ``cfg`` describes (data loaded, so failures come early)."""
    data = build_data(cfg)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    task = model_cfg.pop("task", "reconstruction")
    model = _instantiate_model(model_cfg)
    if is_evolutionary(cfg):
        module = EvolutionModule(model, instantiate(optimizer_config(cfg)), task=task,
                                 evaluation=cfg.evaluation.strategy, chunk_size=cfg.evaluation.chunk_size)
    else:
        opt_cfg = optimizer_config(cfg)
        schedule = opt_cfg.pop("prune_schedule", None) or [1.0]
        module = GradientModule(model, instantiate(opt_cfg), task=task, schedule=schedule,
                                budget=int(cfg.trainer.max_steps), hv_ref=cfg.hv_ref)
    return module, data


def _resumed_run_id(ckpt_path: Path) -> str | None:
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    return ckpt.get("ggevo", {}).get("mlflow_run_id")


class _NoAdverts(logging.Filter):
    """Drops Lightning's tip to install a cloud logger: runs here go to MLflow."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NoAdverts())
# Lightning's advice for gradient-based manual optimization does not apply: a GEMONN checkpoint
# is meant to hold the population after its generation.
warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")


class CheckpointOnInterrupt(pl.Callback):
    """Saves ``path`` when a run dies (Ctrl-C, an exception), so no generation is lost."""

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


def train(cfg: DictConfig, callbacks: list[pl.Callback] | None = None) -> float:
    """Run one GEMONN training described by ``cfg``; returns the final front's hypervolume.

    Interrupted (Ctrl-C), it still saves ``checkpoints/last.ckpt`` and records the front so far,
    marks the MLflow run KILLED and says how to resume.
    """
    validate(cfg)
    apply_budget(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module, data = build(cfg)
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = rooted(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    if ckpt_path is not None and not ckpt_path.is_file():
        raise FileNotFoundError(f"ckpt_path: no checkpoint at {ckpt_path}")
    if ckpt_path is not None and not isinstance(module, EvolutionModule):
        raise ConfigError("ckpt_path: resuming is supported for GEMONN runs; rerun the gradient baseline")
    run_id = _resumed_run_id(ckpt_path) if ckpt_path else None
    logger = make_logger(cfg, run_id=run_id)
    if run_id is None:
        logger.log_hyperparams(flatten_config(cfg))
        if callable(getattr(data, "summary", None)):  # the splits and normalisation, fixed by the seeds
            for key, value in data.summary().items():
                logger.experiment.set_tag(logger.run_id, f"data.{key}", value)
    checkpoints = ModelCheckpoint(dirpath=out / "checkpoints", every_n_train_steps=cfg.checkpoint.every_n_steps,
                                  save_top_k=0, save_last=True, enable_version_counter=False)
    last = out / "checkpoints" / "last.ckpt"
    trainer = instantiate(cfg.trainer, logger=logger, default_root_dir=str(out),
                          callbacks=[checkpoints, CheckpointOnInterrupt(last), GenerationProgress(), *(callbacks or [])])
    print(f"MLflow run {logger.run_id} in experiment '{cfg.logger.experiment_name}' at {logger._tracking_uri}")
    started = time.perf_counter()
    interrupted = False
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(ckpt_path) if ckpt_path else None)
    except SystemExit:  # Lightning's answer to Ctrl-C, after its graceful shutdown
        interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
    wall = time.perf_counter() - started
    if not module.has_front:
        raise RuntimeError("the run stopped before its first generation; nothing to record")
    if not interrupted:
        trainer.save_checkpoint(last, weights_only=False)
    metrics = record_results(module, data, logger, out, wall, trainer.global_step, cfg)
    if interrupted:
        logger.experiment.set_terminated(logger.run_id, "KILLED")
        print(f"interrupted at step {trainer.global_step}; "
              f"resume with: ggevo-train <same overrides> ckpt_path={last}")
    else:
        logger.finalize("success")
    print(f"final front: {int(metrics['final/front_size'])} models, hypervolume {metrics['final/hypervolume']:.4f}, "
          f"best train loss {metrics['final/train_loss_best']:.5f} at density {metrics['final/density_at_best']:.3f}, "
          f"knee {metrics['final/train_loss_knee']:.5f} at density {metrics['final/density_knee']:.3f}; "
          f"{wall:.0f} s")
    if "final/explained_variance_knee" in metrics:
        print(f"explained variance (1 - MSE / {metrics['baseline/mean_image_mse']:.4f}, the MSE of the mean image): "
              f"knee {metrics['final/explained_variance_knee']:.3f}, best {metrics['final/explained_variance_best']:.3f}")
    if "final/val_accuracy_best" in metrics:
        print(f"validation accuracy: best {metrics['final/val_accuracy_best']:.4f} at density "
              f"{metrics['final/density_at_best_accuracy']:.3f}, knee {metrics['final/val_accuracy_knee']:.4f}")
    return metrics["final/hypervolume"]


def sparse_finetune(module, data, X: torch.Tensor, F: torch.Tensor, ft: DictConfig,
                    start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked Adam on every front member, on the minibatches that follow the run's last one."""
    stream = data.stream

    def evaluations():
        t = start
        while True:
            x, y, _ = stream.batch(t)
            batch = (x.to(X.device), y.to(X.device))
            yield lambda P, b=batch: module.evaluator(P, b)
            t += 1

    bounds = module.gemonn.bounds() if isinstance(module, EvolutionModule) else (None, None)
    print(f"sparse fine-tuning {len(X)} front members for {ft.steps} masked Adam steps (lr {ft.lr})")
    Xt = masked_adam(X, evaluations(), int(ft.steps), lr=float(ft.lr), lower=bounds[0], upper=bounds[1])
    x, y, _ = stream.batch(start + int(ft.steps))
    loss = module.evaluator.losses(Xt, (x.to(X.device), y.to(X.device)))
    return Xt, torch.stack((F[:, 0], loss.to(F.dtype)), dim=1)


def record_results(module: EvolutionModule | GradientModule, data, logger, out: Path, wall: float, step: int,
                   cfg: DictConfig) -> dict[str, float]:
    """Score the final front on the full splits; log metrics and the CSV, plot, config and knee weights.

    The whole front's weights go to ``front.pt`` in the run folder (for ``ggevo-evaluate``).
    """
    X, F = module.front()
    table = front_table(module.evaluator, X, F, data, module.task)
    metrics = final_metrics(table, module.hv_ref)
    metrics["wall_time_s"] = wall
    files = {"front.csv": out / "front.csv", "pareto.png": out / "pareto.png", "knee_model.pt": out / "knee_model.pt",
             "metrics.json": out / "metrics.json", "config.yaml": out / "config.yaml"}
    if module.task == "reconstruction":
        found, writers = autoencoder_record(module.evaluator.flat, X, table, data,
                                            title=f"{module.model.__class__.__name__}, step {step}")
        metrics.update(found)
        for name, write in writers.items():
            files[name] = out / name
            write(files[name])
    tuned = None
    if cfg.get("finetune") and cfg.finetune.steps > 0:
        Xt, Ft = sparse_finetune(module, data, X, F, cfg.finetune, start=step)
        tuned = front_table(module.evaluator, Xt, Ft, data, module.task)
        metrics.update(final_metrics(tuned, module.hv_ref, prefix="finetuned/"))
        metrics["finetuned/evaluations"] = float(len(X) * cfg.finetune.steps)
        files["front_finetuned.csv"] = out / "front_finetuned.csv"
        write_front_csv(files["front_finetuned.csv"], tuned)
    if cfg.get("downstream") and cfg.downstream.seeds > 0:
        d = cfg.downstream
        recipe = FineTune(epochs=d.epochs, lr=d.lr, momentum=d.momentum, batch_size=cfg.data.batch_size)
        metrics.update(record_downstream(module.evaluator.flat.module, X.cpu(), table, data, d.select,
                                         list(range(d.seeds)), recipe, out))
        files["downstream.json"] = out / "downstream.json"
    logger.log_metrics(metrics, step=step)
    files["metrics.json"].write_text(json.dumps(metrics, indent=2) + "\n")
    OmegaConf.save(cfg, files["config.yaml"], resolve=True)
    torch.save({"X": X.cpu(), "F": F.cpu(), "mlflow_run_id": logger.run_id}, out / "front.pt")
    write_front_csv(files["front.csv"], table)
    pareto_plot(files["pareto.png"], module.first_front, table,
                title=f"{module.model.__class__.__name__}, step {step}", finetuned=tuned)
    k = int(table["knee"].argmax())
    knee_state = {name: t.clone() for name, t in module.evaluator.flat.as_dict(X[k]).items()}
    torch.save({"state_dict": knee_state, "density": float(table["density"][k]),
                "train_loss": metrics["final/train_loss_knee"]}, files["knee_model.pt"])
    for path in files.values():
        logger.experiment.log_artifact(logger.run_id, str(path))
    return metrics
