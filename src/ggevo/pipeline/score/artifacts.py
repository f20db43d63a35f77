"""The final front of a run: scored on the full splits, written as CSV (``record.front_csv``), plotted,
knee weights saved."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ggevo.data.datamodule import ArrayDataModule
from ggevo.ea.evaluate import PopulationEvaluator, dataset_losses
from ggevo.ea.front import BUDGETS, best_under_density, hypervolume, knee, within
from ggevo.lit.tasks import extra_scores
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.plotting import new_figure, save_figure
from ggevo.pipeline.core.renamed import upgrade_config
from ggevo.pipeline.record.front_csv import read_front_csv


def split_scores(evaluator: PopulationEvaluator, X: torch.Tensor, data: ArrayDataModule, split: str,
                 task: str) -> dict[str, torch.Tensor]:
    """``{"loss": (k,), "accuracy": (k,) for classifiers}``: each member's mean over the whole ``split``."""
    batches = [(x.to(X.device), y.to(X.device)) for x, y in data.batches(split)]
    scorers = {"loss": evaluator} | {k: evaluator.scoring(fn) for k, fn in extra_scores(task).items()}
    if not batches:
        return {k: torch.full((len(X),), float("nan"), dtype=torch.float64) for k in scorers}
    return {k: dataset_losses(s, X, lambda: batches) for k, s in scorers.items()}


def front_table(evaluator: PopulationEvaluator, X: torch.Tensor, F: torch.Tensor,
                data: ArrayDataModule, task: str = "reconstruction",
                splits: tuple[str, ...] = ("train", "val"),
                dominated: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Each member's density, minibatch loss and full losses on each of ``splits`` (and accuracies for a
    classifier); ``knee`` flags the knee.

    ``X`` (k×D) are the members, ``F`` (k×2) their (density, minibatch loss); ``dominated`` (k,), where
    given, marks the band members reported beside the front (column ``dominated``, 1 for them): the knee
    is the front's, found among the others."""
    table = {"density": F[:, 0].double().cpu(), "minibatch_loss": F[:, 1].double().cpu()}
    for split in splits:
        for name, values in split_scores(evaluator, X, data, split, task).items():
            table[f"{split}_{name}"] = values
    on_front = torch.ones(len(F), dtype=torch.bool) if dominated is None else ~dominated.cpu()
    rows = on_front.nonzero().squeeze(1)
    flag = torch.zeros(len(F), dtype=torch.float64)
    flag[rows[knee(F[on_front.to(F.device)])]] = 1.0
    table["knee"] = flag
    if dominated is not None:
        table["dominated"] = dominated.double().cpu()
    return table


def on_front(table: dict[str, torch.Tensor]) -> torch.Tensor:
    """(k,) bool: the rows of a front table on the non-dominated front (all but its band members, ``dominated``)."""
    return table["dominated"] == 0 if "dominated" in table else torch.ones(len(table["density"]), dtype=torch.bool)


def pareto_plot(path: Path, first: torch.Tensor | None, table: dict[str, torch.Tensor], title: str,
                finetuned: dict[str, torch.Tensor] | None = None, selected_on: str = "minibatch loss") -> None:
    """Density–loss plane: the first generation's front, the final front (the f2 selection saw,
    ``selected_on``, and full-train loss) and, if given, the same front after sparse fine-tuning (train loss)."""
    fig, ax = new_figure()
    if first is not None and len(first):
        ax.plot(first[:, 0], first[:, 1], "o--", color="0.6", ms=4, label=f"generation 1 ({selected_on})")
    front = on_front(table)
    ax.plot(table["density"][front], table["minibatch_loss"][front], "o-", color="tab:blue", ms=4,
            label=f"final front ({selected_on})")
    if not bool(front.all()):
        ax.plot(table["density"][~front], table["minibatch_loss"][~front], "o", mfc="none", color="tab:blue", ms=6,
                label=f"band members it dominates ({selected_on})")
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
        "front_size": float(on_front(table).sum()),
    }
    if "dominated" in table:
        metrics["band_members"] = float(table["dominated"].sum())
    for budget in BUDGETS:
        ok = within(table["density"], budget)
        if ok.any():
            metrics[f"train_loss_at_density_{budget}"] = float(table["train_loss"][ok].min())
    if "val_accuracy" in table:
        acc = table["val_accuracy"]
        metrics["val_accuracy_best"] = float(acc.max())
        metrics["density_at_best_accuracy"] = float(table["density"][int(acc.argmax())])
        metrics["val_accuracy_knee"] = float(acc[k])
        metrics["val_accuracy_dense_end"] = float(acc[int(table["density"].argmax())])
        for budget in BUDGETS:
            ok = within(table["density"], budget)
            if ok.any():
                metrics[f"val_accuracy_at_density_{budget}"] = float(acc[ok].max())
    return {prefix + k: v for k, v in metrics.items()}


def choose_member(table: dict[str, list[float]] | dict[str, torch.Tensor], rule: str) -> int:
    """Row of a front table picked by ``rule``: ``knee`` (the run's knee), ``best`` (lowest train loss)
    or ``density<=B`` (lowest train loss among members of density at most ``B``)."""
    loss = torch.as_tensor(table["train_loss"], dtype=torch.float64)
    density = torch.as_tensor(table["density"], dtype=torch.float64)
    if rule == "knee":
        return int(torch.as_tensor(table["knee"]).argmax())
    if rule == "best":
        return int(loss.argmin())
    if rule.startswith("density<="):
        try:
            budget = float(rule.removeprefix("density<="))
        except ValueError:
            budget = None
        if budget is not None:
            i = best_under_density(torch.stack((density, loss), dim=1), budget)
            if i is None:
                raise ConfigError(f"select: no front member has density ≤ {budget} (sparsest: {float(density.min()):.3g})")
            return i
    raise ConfigError(f"select: must be knee, best or density<=B (B a fraction), got {rule!r}")


def read_run(run_dir: Path) -> tuple[DictConfig, dict, dict[str, list[float]]]:
    """``(config, front.pt, front.csv table)`` of the finished run in ``run_dir`` (one line naming the
    missing file otherwise)."""
    for name in ("config.yaml", "front.pt", "front.csv"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir / name} is missing: is {run_dir} a finished ggevo-train run folder?")
    cfg = upgrade_config(OmegaConf.load(run_dir / "config.yaml"))  # a run from before a key was renamed
    front = torch.load(run_dir / "front.pt", map_location="cpu", weights_only=False)
    return cfg, front, read_front_csv(run_dir / "front.csv")
