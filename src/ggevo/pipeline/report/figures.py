"""The figures of a sweep's report: hypervolume by generation, best loss by evaluations spent, the fronts,
and the pictures the record keeps for one job of each setting (reconstructions, first-layer connections).
``Groups`` maps a setting (its swept values) to its jobs."""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from ggevo.pipeline.core.plotting import new_figure, save_figure
from ggevo.pipeline.record.history import curve
from ggevo.pipeline.record.sweep_record import CONNECTIONS, RECONSTRUCTIONS, Job, unpack_mask
from ggevo.pipeline.score.connections import connection_plot, image_side
from ggevo.pipeline.score.reconstructions import comparison_plot

Groups = dict[tuple, list[Job]]


def label(group: tuple) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in group) or "all runs"


def plot_hypervolume(groups: Groups, path: Path, title: str) -> None:
    """Hypervolume by generation, the mean over each setting's jobs (as long as the shortest)."""
    fig, ax = new_figure()
    for group, jobs in groups.items():
        curves = [c for c in (curve(j.history, "hypervolume") for j in jobs) if c]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        mean = [statistics.fmean(c[i] for c in curves) for i in range(length)]
        ax.plot(range(1, length + 1), mean, label=f"{label(group)} (n={len(curves)})")
    save_figure(fig, ax, path, xlabel="generation", ylabel="hypervolume (minibatch loss)", title=title)


def plot_loss_by_evaluations(groups: Groups, path: Path, title: str) -> None:
    """Best minibatch loss against gradient evaluations spent (one line per job), comparable across
    methods that spend evaluations differently."""
    fig, ax = new_figure()
    for i, (group, jobs) in enumerate(groups.items()):
        for j, job in enumerate(jobs):
            spent, loss = job.history.get("evaluations", {}), job.history.get("loss/min", {})
            steps = sorted(set(spent) & set(loss))
            ax.plot([spent[s] for s in steps], [loss[s] for s in steps], color=f"C{i % 10}", lw=0.9, alpha=0.8,
                    label=label(group) if j == 0 else None)
    save_figure(fig, ax, path, xlabel="gradient evaluations", ylabel="best minibatch loss", title=title, logy=True)


def front_csvs(groups: Groups) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Each job's front, as label → seed → columns (jobs killed before writing one left out)."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for group, jobs in groups.items():
        for job in jobs:
            if job.front is not None:
                out.setdefault(label(group), {})[job.seed] = job.front
    return out


def plot_fronts(groups: Groups, path: Path, title: str) -> None:
    fig, ax = new_figure()
    for i, (name, fronts) in enumerate(front_csvs(groups).items()):
        for j, front in enumerate(fronts.values()):
            ax.plot(front["density"], front["train_loss"], "o-", ms=2, lw=0.8, color=f"C{i % 10}", alpha=0.7,
                    label=name if j == 0 else None)
    save_figure(fig, ax, path, xlabel="density", ylabel="train loss", title=title, logy=True)


def pictured(groups: Groups, name: str) -> dict[str, object]:
    """``torch.load`` of file ``name`` of each setting's pictured job (the first that has it; the record
    keeps it for that job only), by label; settings without one left out."""
    loaded = {}
    for group, jobs in groups.items():
        path = next((p for p in (j.file(name) for j in jobs) if p is not None), None)
        if path is not None:
            loaded[label(group)] = torch.load(path, map_location="cpu", weights_only=False)
    return loaded


def plot_reconstructions(groups: Groups, path: Path, title: str) -> None:
    """The same validation digits reconstructed by each method's member at density ≤ 0.1."""
    records = pictured(groups, RECONSTRUCTIONS)
    if records:
        comparison_plot(path, records, f"{title}: reconstructions at density ≤ 0.1 (else the sparsest member)")


def plot_connections(groups: Groups, path: Path, title: str) -> None:
    """First-layer connections of each method's knee model, if the inputs are images."""
    masks = {name: unpack_mask(packed) for name, packed in pictured(groups, CONNECTIONS).items()}
    if any(image_side(m.shape[1]) is None for m in masks.values()):
        return
    if masks:
        connection_plot(path, masks, title=f"{title}: first-layer connections of each knee model")
