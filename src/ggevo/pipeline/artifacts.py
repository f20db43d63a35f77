"""The final front of a run: scored on the full splits, written as CSV, plotted, knee weights saved."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from ggevo.data.datamodule import ArrayDataModule
from ggevo.ea.evaluate import PopulationEvaluator, dataset_losses
from ggevo.ea.front import hypervolume, knee
from ggevo.pipeline.plotting import new_figure, save_figure

COLUMNS = ("density", "minibatch_loss", "train_loss", "val_loss", "knee")


def front_table(evaluator: PopulationEvaluator, X: torch.Tensor, F: torch.Tensor,
                data: ArrayDataModule) -> dict[str, torch.Tensor]:
    """Each member's density, minibatch loss and full train/val losses; ``knee`` flags the knee.

    ``X`` (k×D) are the members, ``F`` (k×2) their (density, minibatch loss)."""
    table = {"density": F[:, 0].double().cpu(), "minibatch_loss": F[:, 1].double().cpu()}
    for split in ("train", "val"):
        batches = [(x.to(X.device), y.to(X.device)) for x, y in data.batches(split)]
        table[f"{split}_loss"] = (dataset_losses(evaluator, X, lambda b=batches: b)
                                  if batches else torch.full((len(F),), float("nan"), dtype=torch.float64))
    flag = torch.zeros(len(F), dtype=torch.float64)
    flag[knee(F)] = 1.0
    table["knee"] = flag
    return table


def write_front_csv(path: Path, table: dict[str, torch.Tensor]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for row in zip(*(table[c].tolist() for c in COLUMNS)):
            w.writerow([f"{v:.8g}" for v in row])


def read_front_csv(path: Path) -> dict[str, list[float]]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return {c: [float(r[c]) for r in rows] for c in COLUMNS}


def pareto_plot(path: Path, first: torch.Tensor | None, table: dict[str, torch.Tensor], title: str,
                finetuned: dict[str, torch.Tensor] | None = None) -> None:
    """Density–loss plane: the first generation's front, the final front (minibatch and full-train
    loss) and, if given, the same front after sparse fine-tuning (train loss)."""
    fig, ax = new_figure()
    if first is not None and len(first):
        ax.plot(first[:, 0], first[:, 1], "o--", color="0.6", ms=4, label="generation 1 (minibatch loss)")
    ax.plot(table["density"], table["minibatch_loss"], "o-", color="tab:blue", ms=4,
            label="final front (minibatch loss)")
    ax.plot(table["density"], table["train_loss"], "s", color="tab:orange", ms=3, label="final front (train loss)")
    if finetuned is not None:
        ax.plot(finetuned["density"], finetuned["train_loss"], "^-", color="tab:green", ms=4,
                label="after sparse fine-tuning (train loss)")
    k = int(table["knee"].argmax())
    ax.plot([table["density"][k]], [table["train_loss"][k]], "*", color="tab:red", ms=14, label="knee")
    save_figure(fig, ax, path, xlabel="density (fraction of nonzero weights)", ylabel="loss", title=title, logy=True)


def final_metrics(table: dict[str, torch.Tensor], hv_ref, prefix: str = "final/") -> dict[str, float]:
    best = int(table["train_loss"].argmin())
    k = int(table["knee"].argmax())
    F = torch.stack((table["density"], table["minibatch_loss"]), dim=1)
    metrics = {
        "hypervolume": hypervolume(F, hv_ref),
        "train_loss_best": float(table["train_loss"][best]),
        "density_at_best": float(table["density"][best]),
        "train_loss_knee": float(table["train_loss"][k]),
        "val_loss_knee": float(table["val_loss"][k]),
        "density_knee": float(table["density"][k]),
        "front_size": float(len(F)),
    }
    for budget in (0.1, 0.2):
        ok = table["density"] <= budget
        if ok.any():
            metrics[f"train_loss_at_density_{budget}"] = float(table["train_loss"][ok].min())
    metrics = {prefix + k: v for k, v in metrics.items()}
    return metrics
