"""The values a finished (or interrupted) run leaves: its front scored on the full splits, final
metrics, the knee's weights, the fine-tuned front and downstream accuracy. Computed here, written
by the recorder (``RunResult.files``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ggevo.ea.finetune import masked_adam
from ggevo.ea.flat import FlatParams
from ggevo.lit.module import EvolutionModule
from ggevo.pipeline.record.front_csv import write_front_csv
from ggevo.pipeline.run.build import build_model
from ggevo.pipeline.score.artifacts import final_metrics, front_table, pareto_plot
from ggevo.pipeline.score.downstream import ClassifierRecipe, downstream_record
from ggevo.pipeline.score.reconstructions import autoencoder_record


@dataclass
class RunResult:
    """Everything the recorder stores at the end of a run. ``extra_files`` and ``extra_metrics``
    take what other steps add (``name -> writer(path)``, ``key -> value``)."""

    X: torch.Tensor  # (k×D) distinct front members, by rising density
    F: torch.Tensor  # (k×2) their (density, minibatch loss)
    table: dict[str, torch.Tensor]
    metrics: dict[str, float]
    knee_state: dict[str, torch.Tensor]
    first_front: torch.Tensor | None
    title: str
    tuned: dict[str, torch.Tensor] | None = None
    downstream: dict | None = None
    extra_files: dict = field(default_factory=dict)
    selected_on: str = "minibatch loss"  # what F[:, 1] is: the training minibatch's loss, or a held-out score
    knee_module: nn.Module | None = None  # the model holding the knee's weights, its zeros kept (MLflow's logged model)

    def files(self, cfg: DictConfig, run_id: str | None) -> dict:
        """``name -> writer(path)`` of every file of the run folder, in the order they are stored."""
        k = int(self.table["knee"].argmax())
        knee = {"state_dict": self.knee_state, "density": float(self.table["density"][k]),
                "train_loss": self.metrics["final/train_loss_knee"]}
        files = {
            "front.csv": partial(write_front_csv, table=self.table),
            "pareto.png": partial(pareto_plot, first=self.first_front, table=self.table, title=self.title,
                                  finetuned=self.tuned, selected_on=self.selected_on),
            "knee_model.pt": partial(torch.save, knee),
            "metrics.json": lambda p: p.write_text(json.dumps(self.metrics, indent=2) + "\n"),
            "config.yaml": lambda p: OmegaConf.save(cfg, p, resolve=True),
            "front.pt": partial(torch.save, {"X": self.X.cpu(), "F": self.F.cpu(), "mlflow_run_id": run_id}),
        }
        if self.tuned is not None:
            files["front_finetuned.csv"] = partial(write_front_csv, table=self.tuned)
        if self.downstream is not None:
            files["downstream.json"] = lambda p: p.write_text(json.dumps(self.downstream, indent=2) + "\n")
        return files | self.extra_files


def distinct(X: torch.Tensor, F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of ``X`` (k×D) and ``F`` (k×2) with each distinct member once (first kept, order kept)."""
    if len(X) < 2:
        return X, F
    _, inverse = torch.unique(X, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(X), dtype=torch.long, device=X.device)
    first = first.scatter_reduce(0, inverse, torch.arange(len(X), device=X.device), reduce="amin")
    keep = first.sort().values
    return X[keep], F[keep]


def with_band_members(module, X: torch.Tensor, F: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The front ``X, F`` (k×D, k×2) with each density band's best network it lacks (a population with
    ``band_edges``: ``PopulationOptimizer.band_members``), all by rising density, and which rows those
    dominated band members are; ``dominated`` None for a run without bands (the front alone)."""
    if not isinstance(module, EvolutionModule) or not module.gemonn.hp.get("band_edges"):
        return X, F, None
    Xb, Fb = module.band_members()
    finite = torch.isfinite(Fb).all(dim=1)
    X_all, F_all = distinct(torch.cat((X, Xb[finite])), torch.cat((F, Fb[finite])))  # a copy of a front member: dropped
    dominated = torch.arange(len(X_all), device=X.device) >= len(X)
    order = torch.argsort(F_all[:, 0], stable=True)
    return X_all[order], F_all[order], dominated[order]


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


def selected_on(module) -> str:
    """What the front's f2 (``minibatch_loss`` in front.csv) is, in words for a plot's legend."""
    if getattr(module, "select_on", "train") != "val":
        return "minibatch loss"
    return "held-out error rate" if "accuracy" in module.scorers else "held-out loss"


def run_result(module, data, cfg: DictConfig, wall: float, step: int) -> RunResult:
    """Score the final front on the full splits and derive every final metric."""
    X_all, F_all = module.front()
    finite = torch.isfinite(F_all).all(dim=1)
    if not bool(finite.any()):
        raise FloatingPointError("no front member has a finite loss (every loss was NaN or infinite): "
                                 "check the model's output and the data")
    X, F = distinct(X_all[finite], F_all[finite])
    duplicates = int(finite.sum()) - len(X)
    X, F, dominated = with_band_members(module, X, F)
    splits = ("train", "val", "test") if cfg.get("score_test") else ("train", "val")
    table = front_table(module.evaluator, X, F, data, module.task, splits, dominated=dominated)
    metrics = final_metrics(table, module.hv_ref)
    metrics["wall_time_s"] = wall
    metrics["final/duplicates_removed"] = float(duplicates)
    k = int(table["knee"].argmax())
    knee_state = {name: t.clone() for name, t in module.evaluator.flat.as_dict(X[k]).items()}
    knee_module = build_model(OmegaConf.to_container(cfg.model, resolve=True)).eval()  # a fresh copy of the model
    FlatParams(knee_module).load_(X[k].cpu())
    result = RunResult(X, F, table, metrics, knee_state, module.first_front,
                       title=f"{module.model.__class__.__name__}, step {step}",
                       selected_on=selected_on(module), knee_module=knee_module)
    if module.task == "reconstruction":  # the yardstick: the mean image, and pictures of the front
        found, writers = autoencoder_record(module.evaluator.flat, X, table, data, result.title)
        metrics.update(found)
        result.extra_files.update(writers)
    if cfg.get("finetune") and cfg.finetune.steps > 0:
        Xt, Ft = sparse_finetune(module, data, X, F, cfg.finetune, start=step)
        result.tuned = front_table(module.evaluator, Xt, Ft, data, module.task, splits, dominated=dominated)
        metrics.update(final_metrics(result.tuned, module.hv_ref, prefix="finetuned/"))
        metrics["finetuned/evaluations"] = float(len(X) * cfg.finetune.steps)
    if cfg.get("downstream") and cfg.downstream.seeds > 0:
        d = cfg.downstream
        recipe = ClassifierRecipe(epochs=d.epochs, lr=d.lr, momentum=d.momentum, batch_size=cfg.data.batch_size)
        found, result.downstream = downstream_record(module.evaluator.flat.module, X.cpu(), table, data, d.select,
                                                     list(range(d.seeds)), recipe)
        metrics.update(found)
    return result


def input_example(data):
    """Two inputs of the validation split (else the training split) as a numpy array: the input example
    of a logged model, from which MLflow infers its signature."""
    split = "val" if len(data.splits["val"][1]) else "train"
    return data.batches(split)[0][0][:2].cpu().numpy()
