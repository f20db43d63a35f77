"""Check a composed config before any compute; every failure is one line naming the key."""

from __future__ import annotations

import difflib
import inspect

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from ggevo.data.sources import DATASETS
from ggevo.ea.population import PopulationOptimizer
from ggevo.lit.gradient import check_schedule
from ggevo.lit.module import SELECT_ON
from ggevo.lit.sparse import METHODS, build_method, method_keys
from ggevo.lit.tasks import TASKS, model_task
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.renamed import check_renamed_keys


# keys of the optimizer section read by the run rather than the optimizer class: a gradient optimizer's pruning
# schedule, the trunk's share of the budget, what selection scores (the LightningModule), a sparse method's name
MODULE_KEYS = frozenset({"prune_schedule", "trunk_fraction", "select_on", "method"})
# the optimizer classes the presets (conf/optimizer/) name: a key one of them takes is a shared preset key
SHIPPED_OPTIMIZERS = ("ggevo.ea.GEMONN", "ggevo.ea.PymooNSGA2", "torch.optim.Adam", "torch.optim.SGD")


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _require_selection(rule, key: str) -> None:
    """``rule`` picks one front member: ``knee``, ``best`` or ``density<=B``."""
    _require(rule in ("knee", "best") or str(rule).startswith("density<="), key,
             f"must be knee, best or density<=B, got {rule!r}")


def evolves_population(o: DictConfig) -> bool:
    """Whether ``o._target_`` is a population optimizer (GEMONN, pymoo's NSGA-II, any
    ``PopulationOptimizer``) rather than a gradient optimizer such as ``torch.optim.Adam``."""
    try:
        cls = get_class(str(o._target_))
    except Exception as err:
        raise ConfigError(f"optimizer._target_: cannot import {o._target_!r} ({type(err).__name__})") from None
    return isinstance(cls, type) and issubclass(cls, PopulationOptimizer)


def optimizer_arguments(o: DictConfig, task: str = "reconstruction") -> dict:
    """``o`` without the keys its optimizer does not take (a preset written for GEMONN may set
    ``pop_size`` or ``compile``, which Adam or pymoo's NSGA-II lack) and without ``prune_schedule``;
    a value given by task is the one for the model's ``task`` (``for_task``)."""
    opt = OmegaConf.to_container(o, resolve=True)
    accepted = set(inspect.signature(get_class(opt["_target_"])).parameters)
    return {k: for_task(v, task, k) for k, v in opt.items() if k.startswith("_") or k in accepted}


def for_task(value, task: str, key: str):
    """An optimizer option given by the model's task, a mapping such as ``weight_decay: {classification: 0.5,
    reconstruction: 0.0}`` (its keys model tasks, ``lit.tasks.TASKS``), is its value for ``task``; any other
    value is itself. A mapping without ``task``, or with a key that is not a task beside those that are, fails,
    naming the key."""
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if not (isinstance(value, dict) and set(value) & set(TASKS)):
        return value
    unknown = sorted(set(value) - set(TASKS))
    if unknown:
        raise ConfigError(f"optimizer.{key}: {unknown[0]!r} is not a model task (the tasks: {', '.join(TASKS)})")
    _require(task in value, f"optimizer.{key}", f"gives no value for the model's task {task!r} (it has {sorted(value)})")
    return value[task]


def select_on_for(o: DictConfig, task: str) -> str:
    """What selection scores, ``optimizer.select_on`` (``train`` when unset), for the model's ``task``: like an
    optimizer option, it may be given by task (``for_task``), as ``gemonn_plus_rebase`` gives it."""
    return for_task(o.get("select_on", "train"), task, "select_on")


def known_optimizer_keys(target: str) -> set[str]:
    """Every key an ``optimizer`` section may hold: those of ``target``'s class and of each shipped optimizer
    (presets share keys: ``optimizer=imp`` inherits none of GEMONN's, but a user's preset may), the run's own
    (``MODULE_KEYS``) and every sparse method's schedule."""
    keys = set(MODULE_KEYS)
    for name in {target, *SHIPPED_OPTIMIZERS}:
        keys |= set(inspect.signature(get_class(name)).parameters) - {"self", "params"}
    for method in METHODS:
        keys |= method_keys(method)
    return keys


def _check_known_keys(o: DictConfig) -> None:
    """A key that nothing reads (a misspelling: ``optimizer.floor_breed``) fails, naming the closest one; a key
    another optimizer takes is dropped with a note when the run is built (``build.optimizer_factory``)."""
    known = known_optimizer_keys(str(o._target_))
    for key in o:
        if not str(key).startswith("_") and key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean optimizer.{close[0]}?)" if close else ""
            raise ConfigError(f"optimizer.{key}: no optimizer or sparse method takes this key{hint}")


def _validate_optimizer(o: DictConfig, task: str) -> None:
    """Every option is checked by the optimizer itself, once: here it is built on a stand-in parameter, with
    the values for the model's ``task``."""
    _check_known_keys(o)
    population = evolves_population(o)
    args = {k: v for k, v in optimizer_arguments(o, task).items() if not k.startswith("_")}
    try:
        get_class(str(o._target_))([torch.nn.Parameter(torch.zeros(2))], **args)
    except (ValueError, TypeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(message if message.startswith("optimizer.") else f"optimizer: {message}") from None
    if population:
        _require(isinstance(o.get("reevaluate_parents", False), bool), "optimizer.reevaluate_parents",
                 f"must be true or false, got {o.get('reevaluate_parents')!r}")
        fraction = for_task(o.get("trunk_fraction"), task, "trunk_fraction")
        _require(fraction is None or (isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
                                      and 0 <= fraction < 1), "optimizer.trunk_fraction",
                 f"must be null or a fraction of the budget in [0, 1), got {fraction!r}")
        select_on = select_on_for(o, task)
        _require(select_on in SELECT_ON, "optimizer.select_on",
                 f"must be one of {', '.join(SELECT_ON)}, got {select_on!r}")
    else:
        _require("lr" in o and o.lr > 0, "optimizer.lr", f"must be a positive learning rate, got {o.get('lr')!r}")
        try:
            check_schedule(o.get("prune_schedule") or [1.0])
        except ValueError as err:
            raise ConfigError(str(err)) from None


def _validate_method(o: DictConfig, steps: int) -> None:
    """A sparse-training method (``optimizer.method``): its module is built for ``steps`` steps on a stand-in
    network, so each of its keys is checked once, by the code a run uses."""
    _require(o.method in METHODS, "optimizer.method", f"must be one of {sorted(METHODS)}, got {o.method!r}")
    try:
        build_method(torch.nn.Linear(8, 8), torch.optim.Adam, OmegaConf.to_container(o, resolve=True),
                     task="reconstruction", budget=steps, hv_ref=(1.1, 0.3), seed=0)
    except (ValueError, TypeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(message if message.startswith(("optimizer.", "budget")) else f"optimizer: {message}") \
            from None


def _model_inputs(m: DictConfig) -> tuple[str, int] | None:
    """``(key, size)``: the features one example must have for the model ``m``, by the key that sets them (LeNet-5's
    ``channels · size²`` images, an LSTM's ``steps`` rows of ``inputs``, any other model's ``inputs``); None if unknown."""
    if "channels" in m and "size" in m:
        return "model.size", m.channels * m.size**2
    if "inputs" in m:
        return "model.inputs", m.inputs * m.get("steps", 1)
    return None


def validate(cfg: DictConfig) -> None:
    check_renamed_keys(cfg)
    o, d, m, t = cfg.optimizer, cfg.data, cfg.model, cfg.trainer
    _require(_is_int(cfg.seed), "seed", f"must be an integer, got {cfg.seed!r}")
    _require(cfg.get("budget") is None or (_is_int(cfg.budget) and cfg.budget > 0), "budget",
             f"must be null or a positive number of evaluations, got {cfg.get('budget')!r}")
    _require("_target_" in o, "optimizer", "needs a _target_")
    task = model_task(m)
    _require(task in TASKS, "model.task", f"must be one of {TASKS}, got {m.get('task')!r}")
    _validate_optimizer(o, task)
    _require(d.name in DATASETS, "data.name", f"unknown data set {d.name!r}; choose one of {sorted(DATASETS)}")
    _require(_is_int(d.batch_size) and d.batch_size > 0, "data.batch_size",
             f"must be a positive integer, got {d.batch_size!r}")
    _require(select_on_for(o, task) != "val" or d.get("prepared") or d.get("val_fraction", 0.1) > 0,
             "optimizer.select_on", "val needs a validation split (data.val_fraction > 0)")
    inputs = _model_inputs(m)
    if inputs is not None and "features" in d:
        key, size = inputs
        _require(size == d.features, key, f"the model takes examples of {size} features, data={d.name} has {d.features}")
    if "hidden" in m:
        _require(_is_int(m.hidden) and m.hidden > 0, "model.hidden", f"must be a positive integer, got {m.hidden!r}")
    _require(isinstance(m.get("sign_agreement", False), bool), "model.sign_agreement",
             f"must be true or false, got {m.get('sign_agreement')!r}")
    _require(_is_int(t.max_steps) and t.max_steps > 0, "trainer.max_steps",
             f"the number of generations must be a positive integer, got {t.max_steps!r}")
    if o.get("method") is not None:  # a gradient method's steps are its budget (train.apply_budget)
        _validate_method(o, cfg.budget if cfg.get("budget") is not None else t.max_steps)
    if cfg.get("downstream"):
        ds = cfg.downstream
        _require(_is_int(ds.seeds) and ds.seeds >= 0, "downstream.seeds",
                 f"must be a non-negative number of fine-tuning seeds, got {ds.seeds!r}")
        _require_selection(ds.select, "downstream.select")
        _require(_is_int(ds.epochs) and ds.epochs > 0 and ds.lr > 0, "downstream.epochs",
                 f"need a positive number of epochs and learning rate, got {ds.epochs!r} and {ds.lr!r}")
        _require(ds.seeds == 0 or task in ("reconstruction", "layer_reconstruction"),
                 "downstream.seeds", "downstream accuracy is for autoencoders (model.task=reconstruction or "
                 "layer_reconstruction); a classifier reports its own")
    _require(isinstance(cfg.get("score_test", False), bool), "score_test",
             f"must be true or false, got {cfg.get('score_test')!r}")
    if cfg.get("stack"):
        _require_selection(cfg.stack.select, "stack.select")
    _require(cfg.evaluation.strategy in ("auto", "loop", "vmap"), "evaluation.strategy",
             f"must be auto, loop or vmap, got {cfg.evaluation.strategy!r}")
    chunk = cfg.evaluation.get("chunk_size")
    _require(chunk is None or (_is_int(chunk) and chunk > 0), "evaluation.chunk_size",
             f"must be null or a positive integer, got {chunk!r}")
    _require(_is_int(cfg.checkpoint.every_n_steps) and cfg.checkpoint.every_n_steps > 0, "checkpoint.every_n_steps",
             f"must be a positive number of generations, got {cfg.checkpoint.every_n_steps!r}")
