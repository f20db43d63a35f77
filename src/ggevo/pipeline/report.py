"""``ggevo-report``: ablation tables and figures from what MLflow recorded (DVC ``report``).

For a sweep's parent run it groups the child runs by the swept settings (seeds pooled) and
writes ``reports/<preset>/table.md`` (mean ± std of final hypervolume, best train loss, train
loss at density ≤ 0.02, 0.05, 0.1, 0.25 and 0.5, explained variance at the knee, density at the knee
and wall time), ``hypervolume.png``
(hypervolume by generation, mean over seeds), ``fronts.png`` (the final fronts overlaid) and
``loss_by_evaluations.png``; where runs measured downstream accuracy, ``downstream.md``; where
the sweep compares optimizers on image inputs, ``connections.png`` (each method's first-layer
connections), ``budgets.md`` (each method's best train loss at density ≤ 0.02 … 0.5, and
GEMONN+'s ratio to magnitude pruning) and ``reconstructions.png`` (the same validation digits reconstructed by each
method's member at density ≤ 0.1). By default it reports the latest sweep of each ablation preset and of the method
comparisons (``compare_ae``, ``compare_ae_small``), and the latest single run of the DVC preset.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import mlflow
import torch
from mlflow.entities import Run

from ggevo.pipeline.artifacts import read_front_csv
from ggevo.pipeline.budget_table import budget_table
from ggevo.pipeline.connections import connection_plot, first_layer, image_side
from ggevo.pipeline.paths import default_tracking_uri, rooted
from ggevo.pipeline.plotting import new_figure, save_figure
from ggevo.pipeline.reconstructions import comparison_plot

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

COLUMNS = {
    "final/hypervolume": "final hypervolume",
    "final/train_loss_best": "best train loss",
    "final/train_loss_at_density_0.02": "train loss at density ≤ 0.02",
    "final/train_loss_at_density_0.05": "≤ 0.05",
    "final/train_loss_at_density_0.1": "≤ 0.1",
    "final/train_loss_at_density_0.25": "≤ 0.25",
    "final/train_loss_at_density_0.5": "≤ 0.5",
    "final/explained_variance_knee": "explained variance at knee",
    "final/density_knee": "density at knee",
    "wall_time_s": "wall time (s)",
}
DOWNSTREAM = {
    "downstream/density": "density of the encoder",
    "downstream/test_accuracy_mean": "test accuracy",
}
ABLATIONS = ("ablation_popsize", "ablation_sparsity", "ablation_plus", "compare_ae", "compare_ae_small")


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def children(client: mlflow.tracking.MlflowClient, parent: Run) -> list[Run]:
    runs = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                              max_results=10_000)
    return sorted(runs, key=lambda r: r.info.start_time)


def setting(run: Run, key: str) -> str:
    """The run's value of a swept key: a config value, or a config-group choice (``optimizer=adam``)."""
    return run.data.params.get(key) or run.data.tags.get(f"choice.{key}", "?")


def group_runs(runs: list[Run], keys: list[str]) -> dict[tuple, list[Run]]:
    """Runs keyed by their values of the swept ``keys`` other than ``seed``."""
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[tuple((k, setting(run, k)) for k in keys if k != "seed")].append(run)
    return dict(groups)


def label(group: tuple) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in group) or "all runs"


def table_rows(groups: dict[tuple, list[Run]], columns: dict[str, str] = COLUMNS) -> list[dict]:
    rows = []
    for group, runs in groups.items():
        row = {"setting": label(group), "runs": len(runs)}
        for metric in columns:
            values = [r.data.metrics[metric] for r in runs if metric in r.data.metrics]
            row[metric] = mean_std(values) if values else None
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], title: str, columns: dict[str, str] = COLUMNS) -> str:
    head = ["setting", "runs", *columns.values()]
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["setting"], str(row["runs"])]
        for metric in columns:
            v = row[metric]
            cells.append("—" if v is None else f"{v[0]:.4g} ± {v[1]:.2g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_hypervolume(client, groups: dict[tuple, list[Run]], path: Path, title: str) -> None:
    fig, ax = new_figure()
    for group, runs in groups.items():
        curves = [[m.value for m in sorted(client.get_metric_history(r.info.run_id, "hypervolume"),
                                              key=lambda m: m.step)] for r in runs]
        curves = [c for c in curves if c]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        mean = [statistics.fmean(c[i] for c in curves) for i in range(length)]
        ax.plot(range(1, length + 1), mean, label=f"{label(group)} (n={len(curves)})")
    save_figure(fig, ax, path, xlabel="generation", ylabel="hypervolume (minibatch loss)", title=title)


def plot_loss_by_evaluations(client, groups: dict[tuple, list[Run]], path: Path, title: str) -> None:
    """Best minibatch loss against gradient evaluations spent (one line per run), comparable across
    methods that spend evaluations differently."""
    fig, ax = new_figure()
    for i, (group, runs) in enumerate(groups.items()):
        for j, run in enumerate(runs):
            by_step = lambda key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}  # noqa: E731
            spent, loss = by_step("evaluations"), by_step("loss/min")
            steps = sorted(set(spent) & set(loss))
            ax.plot([spent[s] for s in steps], [loss[s] for s in steps], color=f"C{i % 10}", lw=0.9, alpha=0.8,
                    label=label(group) if j == 0 else None)
    save_figure(fig, ax, path, xlabel="gradient evaluations", ylabel="best minibatch loss", title=title, logy=True)


def front_csvs(client, groups: dict[tuple, list[Run]]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Each run's ``front.csv``, as label → seed → columns (runs killed before writing one left out)."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for group, runs in groups.items():
            for run in runs:
                try:
                    local = client.download_artifacts(run.info.run_id, "front.csv", f"{tmp}/{run.info.run_id}")
                except Exception:  # a run killed before it wrote its front
                    continue
                seed = run.data.params.get("seed", run.info.run_id[:8])
                out.setdefault(label(group), {})[seed] = read_front_csv(Path(local))
    return out


def plot_fronts(client, groups: dict[tuple, list[Run]], path: Path, title: str) -> None:
    fig, ax = new_figure()
    for i, (name, fronts) in enumerate(front_csvs(client, groups).items()):
        for j, front in enumerate(fronts.values()):
            ax.plot(front["density"], front["train_loss"], "o-", ms=2, lw=0.8, color=f"C{i % 10}", alpha=0.7,
                    label=name if j == 0 else None)
    save_figure(fig, ax, path, xlabel="density", ylabel="train loss", title=title, logy=True)


def report_sweep(client, parent: Run, out: Path) -> Path:
    """Table and figures of one sweep under ``out/<preset>/``; returns the table's path."""
    preset = parent.data.tags.get("experiment_preset", parent.info.run_id)
    keys = [k for k in parent.data.tags.get("ggevo.sweep.params", "").split(",") if k]
    runs = children(client, parent)
    if not runs:
        raise ValueError(f"sweep run {parent.info.run_id} has no child runs")
    groups = group_runs(runs, keys)
    folder = out / preset
    folder.mkdir(parents=True, exist_ok=True)
    title = f"{preset} (sweep {parent.info.run_id[:8]}, {len(runs)} runs)"
    table = folder / "table.md"
    table.write_text(markdown_table(table_rows(groups), title))
    plot_hypervolume(client, groups, folder / "hypervolume.png", title)
    plot_fronts(client, groups, folder / "fronts.png", title)
    plot_loss_by_evaluations(client, groups, folder / "loss_by_evaluations.png", title)
    if any("downstream/test_accuracy_mean" in r.data.metrics for r in runs):
        (folder / "downstream.md").write_text(
            markdown_table(table_rows(groups, DOWNSTREAM), f"{title}: downstream accuracy (encoder + softmax, "
                           "mean ± std over runs of each run's mean over fine-tuning seeds)", DOWNSTREAM))
    if "optimizer" in keys:
        (folder / "budgets.md").write_text(budget_table(front_csvs(client, groups), title))
        plot_connections(client, groups, folder / "connections.png", title)
        plot_reconstructions(client, groups, folder / "reconstructions.png", title)
    return table


def first_run_artifacts(client, groups: dict[tuple, list[Run]], name: str) -> dict[str, object]:
    """``torch.load`` of artifact ``name`` of each group's first run, by label (runs without it left out:
    not an autoencoder on images, or killed before they recorded their front)."""
    loaded = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (group, runs) in enumerate(groups.items()):
            try:
                local = client.download_artifacts(runs[0].info.run_id, name, f"{tmp}/{i}")
            except Exception:
                continue
            loaded[label(group)] = torch.load(local, map_location="cpu", weights_only=False)
    return loaded


def plot_reconstructions(client, groups: dict[tuple, list[Run]], path: Path, title: str) -> None:
    """The same validation digits reconstructed by each method's member at density ≤ 0.1 (its first run)."""
    records = first_run_artifacts(client, groups, "reconstructions.pt")
    if records:
        comparison_plot(path, records, f"{title}: reconstructions at density ≤ 0.1 (else the sparsest member)")


def plot_connections(client, groups: dict[tuple, list[Run]], path: Path, title: str) -> None:
    """First-layer connections of each method's knee model (its first run), if the inputs are images."""
    layers = {name: first_layer(knee["state_dict"])
              for name, knee in first_run_artifacts(client, groups, "knee_model.pt").items()}
    if any(image_side(w.shape[1]) is None for w in layers.values()):
        return
    if layers:
        connection_plot(path, layers, title=f"{title}: first-layer connections of each knee model")


def latest(client, experiment_ids: list[str], preset: str, role: str) -> Run | None:
    runs = client.search_runs(experiment_ids, f"tags.experiment_preset = '{preset}' and tags.`ggevo.role` = '{role}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def report(tracking_uri: str, out: Path, parents: list[str] | None = None, presets=ABLATIONS,
           single: list[str] | None = ("dvc_default",)) -> list[Path]:
    """Write every table and figure; returns the tables written."""
    client = mlflow.tracking.MlflowClient(tracking_uri)
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    sweeps = [client.get_run(p) for p in parents] if parents else \
        [r for r in (latest(client, experiment_ids, p, "sweep") for p in presets) if r is not None]
    written = [report_sweep(client, s, out) for s in sweeps]
    for preset in single or ():
        run = latest(client, experiment_ids, preset, "train")
        if run is None:
            continue
        folder = out / preset
        folder.mkdir(parents=True, exist_ok=True)
        groups = {(("run", run.info.run_id[:8]),): [run]}
        (folder / "summary.md").write_text(markdown_table(table_rows(groups), f"{preset} (latest run)"))
        plot_hypervolume(client, groups, folder / "hypervolume.png", f"{preset}: hypervolume by generation")
        written.append(folder / "summary.md")
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parent", action="append", help="a sweep's parent run id (repeatable); default: latest sweeps")
    ap.add_argument("--sweep-record", action="append", type=Path,
                    help="a JSON written by a multirun with sweep_record=... (repeatable)")
    ap.add_argument("--out", type=Path, default=Path("reports"), help="folder for tables and figures")
    ap.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or the project's mlflow.db")
    args = ap.parse_args()
    parents = list(args.parent or [])
    for record in args.sweep_record or []:
        parents.append(json.loads(rooted(record).read_text())["parent_run_id"])
    tables = report(args.tracking_uri or default_tracking_uri(), rooted(args.out), parents or None)
    if not tables:
        print("nothing to report: no sweep of " + ", ".join(ABLATIONS) + " and no dvc_default run found")
    for t in tables:
        print(f"wrote {t}")


if __name__ == "__main__":
    main()
