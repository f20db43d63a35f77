"""``train(cfg)``: compose objects from a config, evolve, record everything in MLflow."""

from __future__ import annotations

import json
import logging
import signal
import time
import warnings
from datetime import datetime
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from ggevo.lit.module import EvolutionModule
from ggevo.lit.progress import GenerationProgress
from ggevo.pipeline.artifacts import final_metrics, front_table, pareto_plot, write_front_csv
from ggevo.pipeline.paths import project_root, rooted
from ggevo.pipeline.tracking import flatten_config, make_logger
from ggevo.pipeline.validate import validate


def run_dir(cfg: DictConfig) -> Path:
    """``run_dir`` if set, else Hydra's output folder, else ``outputs/<timestamp>`` at the project root."""
    if cfg.get("run_dir"):
        return rooted(cfg.run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return project_root() / "outputs" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")


def build(cfg: DictConfig) -> tuple[EvolutionModule, pl.LightningDataModule]:
    """The LightningModule and DataModule that ``cfg`` describes (data loaded, so failures come early)."""
    prepared = cfg.data.get("prepared")
    data = instantiate(cfg.data, data_dir=str(rooted(cfg.data.data_dir)),
                       prepared=str(rooted(prepared)) if prepared else None)
    data.setup()
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    task = model_cfg.pop("task", "reconstruction")
    model = instantiate(model_cfg)
    module = EvolutionModule(model, instantiate(cfg.optimizer), task=task,
                             evaluation=cfg.evaluation.strategy, chunk_size=cfg.evaluation.chunk_size)
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
        opt = pl_module.gemonn
        if opt.initialized and opt.consistent:
            trainer.save_checkpoint(self.path)
        elif opt.initialized:
            print(f"interrupted while writing a generation: {self.path} keeps the last periodic checkpoint")


def train(cfg: DictConfig, callbacks: list[pl.Callback] | None = None) -> float:
    """Run one GEMONN training described by ``cfg``; returns the final front's hypervolume.

    Interrupted (Ctrl-C), it still saves ``checkpoints/last.ckpt`` and records the front so far,
    marks the MLflow run KILLED and says how to resume.
    """
    validate(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module, data = build(cfg)
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = rooted(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    if ckpt_path is not None and not ckpt_path.is_file():
        raise FileNotFoundError(f"ckpt_path: no checkpoint at {ckpt_path}")
    run_id = _resumed_run_id(ckpt_path) if ckpt_path else None
    logger = make_logger(cfg, run_id=run_id)
    if run_id is None:
        logger.log_hyperparams(flatten_config(cfg))
    checkpoints = ModelCheckpoint(dirpath=out / "checkpoints", every_n_train_steps=cfg.checkpoint.every_n_steps,
                                  save_top_k=0, save_last=True)
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
    if not module.gemonn.initialized:
        raise RuntimeError("the run stopped before its first generation; nothing to record")
    if not interrupted:
        trainer.save_checkpoint(last)
    metrics = record_results(module, data, logger, out, wall, trainer.global_step, cfg)
    if interrupted:
        logger.experiment.set_terminated(logger.run_id, "KILLED")
        print(f"interrupted at generation {module.gemonn.run_state['generation']}; "
              f"resume with: ggevo-train <same overrides> ckpt_path={last}")
    else:
        logger.finalize("success")
    print(f"final front: {int(metrics['final/front_size'])} models, hypervolume {metrics['final/hypervolume']:.4f}, "
          f"best train loss {metrics['final/train_loss_best']:.5f} at density {metrics['final/density_at_best']:.3f}, "
          f"knee {metrics['final/train_loss_knee']:.5f} at density {metrics['final/density_knee']:.3f}; "
          f"{wall:.0f} s")
    return metrics["final/hypervolume"]


def record_results(module: EvolutionModule, data, logger, out: Path, wall: float, step: int,
                   cfg: DictConfig) -> dict[str, float]:
    """Score the final front on the full splits; log metrics and the CSV, plot, config and knee weights.

    The whole front's weights go to ``front.pt`` in the run folder (for ``ggevo-evaluate``).
    """
    table = front_table(module, data)
    opt = module.gemonn
    metrics = final_metrics(table, opt.hp["hv_ref"])
    metrics["wall_time_s"] = wall
    logger.log_metrics(metrics, step=step)
    files = {"front.csv": out / "front.csv", "pareto.png": out / "pareto.png", "knee_model.pt": out / "knee_model.pt",
             "metrics.json": out / "metrics.json", "config.yaml": out / "config.yaml"}
    files["metrics.json"].write_text(json.dumps(metrics, indent=2) + "\n")
    OmegaConf.save(cfg, files["config.yaml"], resolve=True)
    X, F = module.gemonn.front()
    torch.save({"X": X.cpu(), "F": F.cpu(), "mlflow_run_id": logger.run_id}, out / "front.pt")
    write_front_csv(files["front.csv"], table)
    pareto_plot(files["pareto.png"], module.first_front, table,
                title=f"{module.model.__class__.__name__}, generation {opt.run_state['generation']}")
    torch.save({"state_dict": module.model.state_dict(), "density": float(table["density"][int(table["knee"].argmax())]),
                "train_loss": metrics["final/train_loss_knee"]}, files["knee_model.pt"])
    for path in files.values():
        logger.experiment.log_artifact(logger.run_id, str(path))
    return metrics
