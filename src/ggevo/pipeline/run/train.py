"""``train(cfg)``: validate → check the world → build → fit → record.

Each step has one module: ``validate`` (config values), ``checks`` (store, folders, checkpoint),
``build`` (every object, the only caller of ``instantiate``), Lightning's ``fit``, and the
``recorder`` (the only writer of the MLflow run and the run folder). The run's MLflow record opens
only after every check has passed, and it ends FINISHED, FAILED (with the reason) or KILLED.
"""

from __future__ import annotations

import logging
import warnings
from datetime import datetime
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, open_dict

from ggevo.lit.clock import RunClock
from ggevo.lit.config_stamp import ConfigStamp
from ggevo.lit.module import EvolutionModule
from ggevo.lit.tasks import model_task
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.interrupts import Interrupts, RunKilled
from ggevo.pipeline.core.numerics import apply_numerics_setting
from ggevo.pipeline.core.paths import project_root, rooted
from ggevo.pipeline.record.recorder import Recorder, failure_reason
from ggevo.pipeline.record.tracking import flatten_config, run_tags
from ggevo.pipeline.run.build import build, build_recorder, build_trainer
from ggevo.pipeline.run.checks import Resume, check_module_matches, check_world, config_stamp, run_folder_tags
from ggevo.pipeline.run.results import input_example, run_result
from ggevo.pipeline.run.validate import evolves_population, for_task, validate


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
                    warmup: int = 0, trunk: int = 0) -> int:
    """Generations that fit ``budget`` evaluations. A generation scores M children (M = ``offspring``,
    default N) and, when ``reevaluate``, re-scores the N parents; the first scores the N initial
    ones. The first ``warmup`` generations score the N parents only. So without warm-up ``g``
    generations cost ``(N + M)·g`` re-scoring, else ``N + M·g``; with it, ``N·W + (N + M)·(g − W)``
    re-scoring, else ``N·W + M·(g − W)``. ``trunk`` generations before all that score one network each."""
    if trunk:
        if budget <= trunk:
            raise ConfigError(f"budget: {budget} evaluations leave nothing after optimizer.trunk={trunk}")
        return trunk + generations_for(budget - trunk, pop_size, reevaluate, offspring, warmup)
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


def evaluations_for(generations: int, pop_size: int, reevaluate: bool, offspring: int | None = None,
                    warmup: int = 0) -> int:
    """The evaluations ``generations`` generations of a population spend, no trunk (``generations_for``'s inverse)."""
    n, m, w = pop_size, offspring or pop_size, min(warmup, generations)
    per = n + m if reevaluate else m
    if warmup:
        return n * w + per * (generations - w)
    return per * generations if reevaluate else n + m * generations


def apply_budget(cfg: DictConfig) -> None:
    """With ``budget`` (gradient evaluations) set, derive ``trainer.max_steps`` so every method spends it; a
    GEMONN step-size schedule (``optimizer.lr_final``, given for the model's task) learns the run's length from
    it: its generations, and its evaluations (the budget) for ``lr_schedule: after_trunk``. Without one, a
    GEMONN preset with a trunk share (``optimizer.trunk_fraction``) takes the budget ``trainer.max_steps``
    generations of its population alone spend (``evaluations_for``), so its trunk never outlasts the run."""
    _apply_budget(cfg)
    o, task = cfg.optimizer, model_task(cfg.model)
    if not is_evolutionary(cfg) or for_task(o.get("lr_final"), task, "lr_final") is None:
        return
    with open_dict(o):
        if o.get("generations") is None:
            o.generations = int(cfg.trainer.max_steps)
        if for_task(o.get("lr_schedule"), task, "lr_schedule") == "after_trunk" and o.get("evaluations") is None:
            trunk = int(o.get("trunk", 0))
            o.evaluations = int(cfg.budget) if cfg.get("budget") is not None else trunk + evaluations_for(
                int(cfg.trainer.max_steps) - trunk, *_population(cfg))


def _apply_budget(cfg: DictConfig) -> None:
    o = cfg.optimizer
    if not is_evolutionary(cfg):
        if cfg.get("budget") is not None:  # a gradient method's steps are its evaluations
            cfg.trainer.max_steps = int(cfg.budget)
        return
    fraction = for_task(o.get("trunk_fraction"), model_task(cfg.model), "trunk_fraction")
    population = _population(cfg)
    if cfg.get("budget") is None:
        if fraction is None:
            return
        # the budget trainer.max_steps generations of the population alone spend, of which the trunk takes its share
        cfg.budget = evaluations_for(int(cfg.trainer.max_steps), *population)
    if fraction is not None:  # the trunk's share of the budget, in generations (one evaluation each)
        o.trunk = int(round(float(fraction) * int(cfg.budget)))
    cfg.trainer.max_steps = generations_for(int(cfg.budget), *population, o.get("trunk", 0))


def _population(cfg: DictConfig) -> tuple:
    """What ``generations_for`` and ``evaluations_for`` read of a GEMONN preset (the warm-up may be given by task)."""
    o = cfg.optimizer
    warmup = for_task(o.get("warmup"), model_task(cfg.model), "warmup")
    return o.pop_size, o.get("reevaluate_parents", False), o.get("offspring"), warmup or 0


def is_evolutionary(cfg: DictConfig) -> bool:
    return evolves_population(cfg.optimizer)


class _NoAdverts(logging.Filter):
    """Drops Lightning's tip to install a cloud logger: runs here go to MLflow."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NoAdverts())
# Lightning's advice for gradient-based manual optimization does not apply: a GEMONN checkpoint
# is meant to hold the population after its generation.
warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")


def train(cfg: DictConfig, callbacks: list[pl.Callback] | None = None) -> float:
    """Run one training described by ``cfg``; returns the final front's hypervolume.

    Interrupted (Ctrl-C, SIGTERM), it saves ``checkpoints/last.ckpt``, records the front so far,
    marks the MLflow run KILLED and raises ``RunKilled`` (exit status 130 or 143).
    """
    validate(cfg)
    apply_budget(cfg)  # before a checkpoint's config is compared: its stamp holds the derived trunk and steps
    out = run_dir(cfg)
    resume, claim = check_world(cfg, out)
    with claim:  # no other run writes this folder until this one ends
        return _train(cfg, callbacks, out, resume)


def _train(cfg: DictConfig, callbacks: list[pl.Callback] | None, out: Path, resume: Resume | None) -> float:
    flushing = apply_numerics_setting(cfg)  # before any tensor of the run: its numbers depend on it
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module, data = build(cfg)
    if resume is not None and not isinstance(module, EvolutionModule):
        raise ConfigError("ckpt_path: resuming is supported for GEMONN runs; rerun the gradient baseline")
    check_module_matches(resume, module)
    recorder, clock = build_recorder(cfg, out), RunClock()
    trainer = build_trainer(cfg, recorder, out, clock, [ConfigStamp(config_stamp(cfg)), *(callbacks or [])])
    with Interrupts() as interrupts:
        try:
            tags = run_tags(cfg) | run_folder_tags(out) | {"numerics.flush_denormal": str(flushing).lower()}
            recorder.open(flatten_config(cfg), tags, run_id=resume.run_id if resume else None)
            if resume is None and callable(getattr(data, "summary", None)):  # splits, normalisation, hashes
                summary = data.summary()
                recorder.set_tags({f"data.{k}": v for k, v in summary.items()})
                recorder.log_dataset(summary)
            print(f"MLflow run {recorder.run_id} in experiment '{recorder.experiment_name}' at {recorder.uri}")
            return _fit_and_record(cfg, module, data, trainer, recorder, clock, resume, interrupts, out)
        except RunKilled:
            raise
        except BaseException as err:
            recorder.close("FAILED", failure_reason(err))
            raise


def resolved_tags(trainer: pl.Trainer) -> dict[str, str]:
    """Tags of what an optimizer decided for itself: ``exempt_biases: auto`` as true or false
    (``ggevo.ea.gemonn_options.auto_exempt``)."""
    groups = trainer.optimizers[0].param_groups if trainer.optimizers else [{}]
    exempt = groups[0].get("exempt_biases")
    return {} if exempt is None else {"optimizer.exempt_biases_resolved": str(bool(exempt)).lower()}


def _fit_and_record(cfg: DictConfig, module, data, trainer: pl.Trainer, recorder: Recorder, clock: RunClock,
                    resume: Resume | None, interrupts: Interrupts, out: Path) -> float:
    killed = False
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(resume.path) if resume else None)
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit, SIGTERM into SIGTERMException
        killed = True
        interrupts.reinstall()
    last = out / "checkpoints" / "last.ckpt"
    code = interrupts.exit_code
    if killed and not module.has_front:
        recorder.close("KILLED", "interrupted before the first generation")
        raise RunKilled("interrupted before the first generation; nothing to record", code)
    with interrupts.held(absorb=True):  # a second signal waits: the front so far is recorded whole
        if not killed:
            trainer.save_checkpoint(last, weights_only=False)
        result = run_result(module, data, cfg, clock.elapsed(), trainer.global_step)
        recorder.log_metrics(result.metrics, step=trainer.global_step)
        recorder.set_tags(module.evaluator.tags() | resolved_tags(trainer))  # which strategy ran, and why
        recorder.write(result.files(cfg, recorder.run_id))
        if cfg.logger.get("log_model", True):
            recorder.log_model(result.knee_module, input_example(data))
        killed = killed or interrupts.received is not None
        recorder.close("KILLED" if killed else "FINISHED", "interrupted" if killed else None)
    m = result.metrics
    print(f"final front: {int(m['final/front_size'])} models, hypervolume {m['final/hypervolume']:.4f}, "
          f"best train loss {m['final/train_loss_best']:.5f} at density {m['final/density_at_best']:.3f}, "
          f"knee {m['final/train_loss_knee']:.5f} at density {m['final/density_knee']:.3f}; "
          f"{m['wall_time_s']:.0f} s")
    if "final/explained_variance_knee" in m:
        print(f"explained variance (1 - MSE / {m['baseline/mean_image_mse']:.4f}, the MSE of the mean image): "
              f"knee {m['final/explained_variance_knee']:.3f}, best {m['final/explained_variance_best']:.3f}")
    if "final/val_accuracy_best" in m:
        print(f"validation accuracy: best {m['final/val_accuracy_best']:.4f} at density "
              f"{m['final/density_at_best_accuracy']:.3f}, knee {m['final/val_accuracy_knee']:.4f}")
    if killed:
        raise RunKilled(f"interrupted at step {trainer.global_step}; front so far recorded; "
                        f"resume with: ggevo-train <same overrides> ckpt_path={last}", interrupts.exit_code)
    return m["final/hypervolume"]
