"""``ggevo-stack``: a stacked autoencoder trained layer-wise in one command (the paper's deep experiments).

Layer ``k`` of ``model.widths`` is one ``train`` run (its own MLflow run, nested under one parent
run for the stack) on the data encoded by the members that layers ``< k`` passed up
(``stack.select``: the knee by default). Progress lives in ``stack.json`` in the run folder: rerun
the same command with ``run_dir=<that folder>`` after an interruption and finished layers are kept,
the interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from ggevo.models.stacked import StackedAutoencoder
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.files import write_json
from ggevo.pipeline.core.interrupts import RunKilled
from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.record.recorder import add_to_run, close_run, failure_reason, open_parent, reopen
from ggevo.pipeline.record.store import check_store, tracking_uri
from ggevo.pipeline.record.tracking import sweep_parent
from ggevo.pipeline.report.export import export_member
from ggevo.pipeline.run.build import build_data
from ggevo.pipeline.run.cli import hydra_entry
from ggevo.pipeline.run.train import is_evolutionary, run_dir, train
from ggevo.pipeline.run.validate import validate
from ggevo.pipeline.score.artifacts import choose_member
from ggevo.pipeline.stack.stack_report import save_stack_model, stack_plot, stack_table

_KEPT = ("final/hypervolume", "final/train_loss_best", "final/density_at_best", "wall_time_s")


def stack_widths(cfg: DictConfig) -> list[int]:
    """The sizes of a ``model=stacked_ae`` stack, ``model.inputs`` then ``model.widths`` (ConfigError for any
    other model): what ``stack.json`` records as ``widths`` and its tables print as ``784-500-250``."""
    target = cfg.model.get("_target_")
    try:
        cls = get_class(target)
    except Exception:  # noqa: BLE001 - any unimportable target is the same user error
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, StackedAutoencoder)):
        raise ConfigError(f"ggevo-stack trains model=stacked_ae layer by layer, not {target}")
    if cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path: ggevo-stack resumes by itself; rerun the same command with run_dir=<its folder>")
    model = OmegaConf.to_container(cfg.model, resolve=True)
    if not model.get("widths"):
        raise ConfigError(f"model.widths: a stack needs at least one hidden width, got {model.get('widths')}")
    return [int(model["inputs"]), *(int(w) for w in model["widths"])]


def _load_progress(out: Path, widths: list[int], select: str) -> dict:
    """``stack.json`` of an interrupted stack in ``out``, or a fresh record (stale layer folders removed)."""
    path = out / "stack.json"
    if not path.is_file():
        for stale in sorted(out.glob("layer_*")):
            print(f"removing {stale}: left by an earlier stack in this folder, without its stack.json")
            shutil.rmtree(stale)
        return {"widths": widths, "select": select, "parent_run_id": None, "interrupted_layer": None, "layers": []}
    progress = json.loads(path.read_text())
    if (progress["widths"], progress["select"]) != (widths, select):
        raise ConfigError(f"run_dir: {out} holds a stack of widths {progress['widths']} passing up "
                          f"{progress['select']}, not {widths} passing up {select}; choose another run_dir")
    return progress


def _parent_run(cfg: DictConfig, progress: dict, widths: list[int]) -> str:
    """The stack's MLflow parent run: reopened on a resume, else created (itself nested under a sweep's)."""
    if progress["parent_run_id"]:
        reopen(tracking_uri(cfg), progress["parent_run_id"])
        return progress["parent_run_id"]
    preset = str(cfg.get("preset") or "default")
    tags = {"ggevo.role": "stack", "experiment_preset": preset, "dataset": str(cfg.data.name),
            "ggevo.stack.widths": "-".join(map(str, widths)), "ggevo.stack.select": str(cfg.stack.select)}
    if sweep_parent():
        tags["mlflow.parentRunId"] = sweep_parent()
    progress["parent_run_id"] = open_parent(cfg, f"stack {preset} {tags['ggevo.stack.widths']}", tags)
    return progress["parent_run_id"]


def _layer_config(cfg: DictConfig, layer: int, previous: list[str], folder: Path, parent: str,
                  resume: bool) -> DictConfig:
    layer_cfg = copy.deepcopy(cfg)
    layer_cfg.model.layer = layer
    layer_cfg.model.previous = previous or None
    layer_cfg.run_dir = str(folder)
    layer_cfg.logger.parent_run_id = parent
    layer_cfg.logger.run_name = f"{cfg.logger.get('run_name') or 'layer'} {layer}"
    layer_cfg.downstream.select = cfg.stack.select  # the accuracy of exactly the stack that is passed up
    last = folder / "checkpoints" / "last.ckpt"
    if resume and last.is_file() and is_evolutionary(cfg):
        print(f"layer {layer}: resuming from {last}")
        layer_cfg.ckpt_path = str(last)
    return layer_cfg


def input_variance(data: pl.LightningDataModule, widths: list[int], layer: int, previous: list[str]) -> float:
    """Mean per-unit variance of layer ``layer``'s input (the frozen code below it) over the training
    split: the MSE of predicting its mean, against which the layer's reconstruction MSE is read."""
    frozen = StackedAutoencoder(widths[0], widths[1:], layer=layer, previous=previous or None)
    with torch.no_grad():
        h = torch.cat([frozen.layer_input(x) for x, _ in data.batches("train")])
    return float(h.var(dim=0, unbiased=False).mean())


def passed_up(folder: Path, select: str) -> tuple[Path, dict[str, float]]:
    """The file of the member ``select`` picks from a finished layer run (``knee_model.pt`` for the
    knee, else an export carrying its frozen encoders) and that member's front row."""
    table = read_front_csv(folder / "front.csv")
    row = {k: v[choose_member(table, select)] for k, v in table.items() if k != "knee"}
    if select == "knee":
        return folder / "knee_model.pt", row
    export_member(folder, select, out=folder / "passed_up")
    return folder / "passed_up" / "model.pt", row


def _finished_layer(select: str, variance: float, layer: int, out: Path) -> dict:
    """The record of a finished layer (paths relative to ``out``): what it passes up, its MSE against
    the ``variance`` of its input, its downstream accuracy."""
    folder = out / f"layer_{layer}"
    metrics = json.loads((folder / "metrics.json").read_text())
    path, row = passed_up(folder, select)
    done = {"layer": layer, "run_dir": folder.name, "passed_up": str(path.relative_to(out)),
            "density": row["density"], "train_loss": row["train_loss"], "val_loss": row["val_loss"],
            "input_variance": variance,
            "unexplained_variance": row["train_loss"] / variance if variance > 0 else float("nan"),
            **{k: metrics[k] for k in _KEPT}}
    if "downstream/test_accuracy_mean" in metrics:
        done["downstream_accuracy"] = metrics["downstream/test_accuracy_mean"]
    return done


def _finish(cfg: DictConfig, out: Path, progress: dict, parent: str) -> None:
    files = [out / "stack.json", out / "stack.md", out / "stack_fronts.png", out / "stack_model.pt"]
    stack_table(files[1], progress, str(cfg.get("preset") or "stack"))
    stack_plot(files[2], out, progress)
    save_stack_model(files[3], out, progress)
    add_to_run(tracking_uri(cfg), parent, files=files)
    close_run(tracking_uri(cfg), parent, "FINISHED")
    print(f"stack {'-'.join(map(str, progress['widths']))} done: {files[1]}, {files[2]}; every passed-up "
          f"encoder in {files[3]} (ggevo.models.stacked.load_encoders reads it)")


def train_stack(cfg: DictConfig, callbacks: list[pl.Callback] | None = None) -> dict:
    """Train every layer of ``model.widths`` in turn; returns the progress record (``stack.json``)."""
    validate(cfg)
    widths = stack_widths(cfg)
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    progress = _load_progress(out, widths, str(cfg.stack.select))
    data = build_data(cfg)  # for the variance of each layer's input; missing data fails before any run opens
    check_store(cfg)
    parent = _parent_run(cfg, progress, widths)
    uri = tracking_uri(cfg)
    save = lambda: write_json(out / "stack.json", progress)  # noqa: E731
    save()
    previous = [str(out / done["passed_up"]) for done in progress["layers"]]
    for done in progress["layers"]:
        print(f"layer {done['layer']}: finished earlier (passes up density {done['density']:.3f}, "
              f"train MSE {done['train_loss']:.5f}); kept")
    for layer in range(len(progress["layers"]), len(widths) - 1):
        folder = out / f"layer_{layer}"
        print(f"layer {layer} of {len(widths) - 1}: {widths[layer]}→{widths[layer + 1]} in {folder}")
        layer_cfg = _layer_config(cfg, layer, previous, folder, parent, resume=progress["interrupted_layer"] == layer)
        try:
            train(layer_cfg, callbacks=list(callbacks or []))
        except RunKilled as killed:
            progress["interrupted_layer"] = layer
            save()
            close_run(uri, parent, "KILLED", "interrupted")
            raise RunKilled(f"stack interrupted in layer {layer}; resume with: ggevo-stack <same overrides> "
                            f"run_dir={out}", killed.exit_code) from None
        except BaseException as err:
            close_run(uri, parent, "FAILED", failure_reason(err))
            raise
        done = _finished_layer(cfg.stack.select, input_variance(data, widths, layer, previous), layer, out)
        progress["layers"].append(done)
        progress["interrupted_layer"] = None
        previous.append(str(out / done["passed_up"]))
        save()
        add_to_run(uri, parent, {f"layer{layer}/{k.removeprefix('final/')}": v
                                 for k, v in done.items() if isinstance(v, float)})
        print(f"layer {layer} passes up its {cfg.stack.select} (density {done['density']:.3f}): train MSE "
              f"{done['train_loss']:.5f}, {done['unexplained_variance']:.1%} of its input's variance unexplained")
    _finish(cfg, out, progress, parent)
    return progress


main = hydra_entry(train_stack)

if __name__ == "__main__":
    main()
