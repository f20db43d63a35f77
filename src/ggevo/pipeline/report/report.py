"""``ggevo-report``: ablation tables and figures from the files sweeps and runs recorded (DVC ``report``).

A sweep is read from its record (``ggevo.pipeline.record.sweep_record``): ``reports/sweeps/<preset>/``, which a
multirun with ``sweep_record=...`` writes and DVC and git track. Its jobs are grouped by the swept
settings (seeds pooled) into ``reports/<preset>/table.md`` (mean ± std of final hypervolume, best train
loss, train loss at density ≤ 0.02, 0.05, 0.1, 0.25 and 0.5, explained variance at the knee, density
at the knee and wall time), ``hypervolume.png`` (hypervolume by generation, mean over seeds),
``fronts.png`` (the final fronts overlaid) and ``loss_by_evaluations.png``; where jobs measured
downstream accuracy, ``downstream.md``; where its fronts carry validation and test accuracy (a classifier
with ``score_test``), ``accuracy.md`` (each setting's test accuracy at each density budget, the member
chosen on validation, as the bench leaderboard does; an autoencoder with ``score_test``: ``test_loss.md``,
its test loss); where the sweep compares optimizers, ``budgets.md`` (each
method's best train loss at density ≤ 0.02 … 0.5, and GEMONN+'s ratio to magnitude pruning),
``connections.png`` (each method's first-layer connections, image inputs) and ``reconstructions.png``
(the same validation digits reconstructed by each method's member at density ≤ 0.1). A single run is
read from its run folder (``--run reports/dvc_default``: ``metrics.json``, ``history.csv``):
``reports/<preset>/summary.md`` and ``hypervolume.png``.

The DVC ``report`` stage reads only those tracked files, never a tracking store, so ``dvc repro``
rebuilds every report on any clone. MLflow stays the place to browse: ``--parent <id>`` (any sweep),
or no argument (the latest sweep of each ablation preset and method comparison, and the latest
``dvc_default`` run), first writes the same files from the store into a temporary folder
(``ggevo.pipeline.record.sweep_mlflow``) and draws them the same way.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
from pathlib import Path

from ggevo.pipeline.core.files import write_atomically, write_json, write_text
from ggevo.pipeline.core.paths import default_tracking_uri, rooted
from ggevo.pipeline.record.recorder import RUN_JSON
from ggevo.pipeline.record.sweep_record import Job, SweepRecord, group_jobs, read_record
from ggevo.pipeline.report.bench import held_out_markdown, mean_score, pick, scored_classifier, scored_on_test
from ggevo.pipeline.report.budget_table import BASELINE, BUDGETS, PLUS, best_at, budget_table
from ggevo.pipeline.report.figures import (Groups, front_csvs, label, plot_connections, plot_fronts, plot_hypervolume,
                                           plot_loss_by_evaluations, plot_reconstructions)
from ggevo.pipeline.run.cli import fail

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
ABLATIONS = ("ablation_popsize", "ablation_sparsity", "ablation_plus", "ablation_plus_gradual", "ablation_plus_rebase",
             "ablation_plus_rebase_mlp",
             "compare_ae", "compare_ae_small")


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def table_rows(groups: Groups, columns: dict[str, str] = COLUMNS) -> list[dict]:
    rows = []
    for group, jobs in groups.items():
        row = {"setting": label(group), "runs": len(jobs)}
        for metric in columns:
            values = [j.metrics[metric] for j in jobs if metric in j.metrics]
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


def write_fronts_csv(path: Path, fronts: dict[str, dict[str, dict[str, list[float]]]]) -> None:
    """Every front in one long table (method, seed, then each member's columns), for ``dvc plots``:
    the template ``.dvc/plots/fronts.json`` draws density against a score, one line per method and seed."""
    columns = ["density", "train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "dominated"]
    present = [c for c in columns if any(c in f for seeds in fronts.values() for f in seeds.values())]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["method", "seed", *present])
            for method, seeds in fronts.items():
                for seed, front in seeds.items():
                    for i in range(len(front["density"])):
                        w.writerow([method, seed, *(f"{front[c][i]:.8g}" if c in front else "" for c in present)])

    write_atomically(path, write)


def headline(fronts: dict[str, dict[str, dict[str, list[float]]]], jobs_metrics: dict[str, list[dict]]) -> dict:
    """The figures ``dvc metrics show`` lists for a sweep: per method, the mean over seeds of the best
    train loss at each density budget, for a classifier also the test accuracy of the member best on validation
    there (``bench.pick``), and of the final hypervolume (and downstream accuracy where measured);
    with GEMONN+ and IMP both swept, their ratio at each budget (below 1: GEMONN+ is better)."""
    out: dict[str, dict] = {}
    for method, seeds in fronts.items():
        entry = {}
        for b in BUDGETS:
            values = [v for f in seeds.values() if (v := best_at(f, b)) is not None]
            if values and len(values) == len(seeds):
                entry[f"train_loss_at_density_{b:g}"] = round(statistics.fmean(values), 8)
        if all(scored_classifier(f) for f in seeds.values()):  # a classifier: the leaderboard's rule
            for b in BUDGETS:
                score = mean_score({s: pick(f, b, classifier=True) for s, f in seeds.items()})
                if score is not None:
                    entry[f"test_accuracy_at_density_{b:g}"] = round(score, 6)
        for key, name in (("final/hypervolume", "hypervolume"), ("downstream/test_accuracy_mean", "downstream_accuracy")):
            values = [m[key] for m in jobs_metrics.get(method, []) if key in m]
            if values:
                entry[name] = round(statistics.fmean(values), 6)
        out[method] = entry
    plus = next((m for m in out if m == PLUS or m.startswith(PLUS + "_")), None)
    if plus and BASELINE in out:
        out["ratio_to_imp"] = {k: round(out[plus][k] / out[BASELINE][k], 4) for k in out[plus]
                               if k.startswith("train_loss_at") and out[BASELINE].get(k)}
    return out


def report_sweep(record: SweepRecord, out: Path) -> Path:
    """Table and figures of one sweep under ``out/<preset>/``; returns the table's path."""
    if not record.jobs:
        raise ValueError(f"the sweep record {record.folder} has no jobs")
    groups = group_jobs(record.jobs, record.swept)
    folder = out / record.preset
    folder.mkdir(parents=True, exist_ok=True)
    sweep = f"sweep {record.parent_run_id[:8]}, " if record.parent_run_id else ""
    title = f"{record.preset} ({sweep}{len(record.jobs)} runs)"
    table = folder / "table.md"
    write_text(table, markdown_table(table_rows(groups), title))
    plot_hypervolume(groups, folder / "hypervolume.png", title)
    plot_fronts(groups, folder / "fronts.png", title)
    plot_loss_by_evaluations(groups, folder / "loss_by_evaluations.png", title)
    if any("downstream/test_accuracy_mean" in j.metrics for j in record.jobs):
        write_text(folder / "downstream.md", markdown_table(
            table_rows(groups, DOWNSTREAM), f"{title}: downstream accuracy (encoder + softmax, "
            "mean ± std over runs of each run's mean over fine-tuning seeds)", DOWNSTREAM))
    fronts = front_csvs(groups)
    write_fronts_csv(folder / "fronts.csv", fronts)
    every = [f for seeds in fronts.values() for f in seeds.values()]
    if every and all(scored_classifier(f) for f in every):
        write_text(folder / "accuracy.md", held_out_markdown(fronts, title))
    elif every and all(scored_on_test(f) for f in every):  # an autoencoder with score_test
        write_text(folder / "test_loss.md", held_out_markdown(fronts, title, classifier=False))
    metrics = {label(g): [j.metrics for j in jobs] for g, jobs in groups.items()}
    write_json(folder / "headline.json", headline(fronts, metrics))
    if "optimizer" in record.swept:
        write_text(folder / "budgets.md", budget_table(fronts, title))
        plot_connections(groups, folder / "connections.png", title)
        plot_reconstructions(groups, folder / "reconstructions.png", title)
    return table


def report_run(run_folder: Path, out: Path, preset: str | None = None) -> Path:
    """``out/<preset>/summary.md`` (final metrics) and ``hypervolume.png`` of one run, from its run folder's
    ``metrics.json``, ``history.csv`` and ``run.json``; ``preset`` defaults to the folder's name."""
    if not (run_folder / "metrics.json").is_file():
        raise FileNotFoundError(f"no metrics.json in {run_folder}: the run has not finished there")
    preset = preset or run_folder.name
    info = json.loads((run_folder / RUN_JSON).read_text()) if (run_folder / RUN_JSON).is_file() else {}
    run = str(info.get("mlflow_run_id") or run_folder.name)[:8]
    job = Job(name=run, mlflow_run_id=info.get("mlflow_run_id"), status=str(info.get("status")), seed="",
              settings={}, folder=run_folder)
    groups = {(("run", run),): [job]}
    folder = out / preset
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "summary.md", markdown_table(table_rows(groups), f"{preset} (run {run})"))
    plot_hypervolume(groups, folder / "hypervolume.png", f"{preset}: hypervolume by generation")
    return folder / "summary.md"


def report(tracking_uri: str, out: Path, parents: list[str] | None = None, presets=ABLATIONS,
           single: list[str] | None = ("dvc_default",)) -> list[Path]:
    """From an MLflow store: the sweeps ``parents`` (default: the latest of each of ``presets``) and the
    latest run of each ``single`` preset, each written as files first; returns the tables written."""
    import mlflow

    from ggevo.pipeline.record.sweep_mlflow import export_run, export_sweep, latest

    from ggevo.pipeline.run.checks import close_abandoned_runs

    for run_id in close_abandoned_runs(tracking_uri):  # a dead job's status is reported as what it is
        print(f"closed MLflow run {run_id} as KILLED: its process is gone")
    client = mlflow.tracking.MlflowClient(tracking_uri)
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    sweeps = [client.get_run(p) for p in parents] if parents else \
        [r for r in (latest(client, experiment_ids, p, "sweep") for p in presets) if r is not None]
    written = []
    with tempfile.TemporaryDirectory(prefix="ggevo-report-") as tmp:
        for i, sweep in enumerate(sweeps):
            index = export_sweep(client, sweep, Path(tmp) / f"sweep{i}", Path(tmp) / "downloads")
            written.append(report_sweep(read_record(index.parent), out))
        for preset in single or ():
            run = latest(client, experiment_ids, preset, "train")
            if run is not None:
                written.append(report_run(export_run(client, run, Path(tmp) / "runs" / preset), out))
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep-record", action="append", type=Path, default=[],
                    help="a sweep's record folder, written by a multirun with sweep_record=... (repeatable)")
    ap.add_argument("--run", action="append", type=Path, default=[],
                    help="a run folder to summarise from its files, e.g. reports/dvc_default (repeatable)")
    ap.add_argument("--parent", action="append", default=[],
                    help="a sweep's MLflow parent run id (repeatable); with no record, run or parent given: the "
                         "latest sweeps and dvc_default run in the store")
    ap.add_argument("--out", type=Path, default=Path("reports"), help="folder for tables and figures")
    ap.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or the project's mlflow.db")
    args = ap.parse_args()
    out = rooted(args.out)
    try:
        tables = [report_sweep(read_record(rooted(r)), out) for r in args.sweep_record]
        tables += [report_run(rooted(r), out) for r in args.run]
    except (FileNotFoundError, ValueError) as err:  # a record missing, of the older form, or empty
        fail(err)
    if args.parent or not (args.sweep_record or args.run):
        tables += report(args.tracking_uri or default_tracking_uri(), out, args.parent or None,
                         single=() if args.parent else ("dvc_default",))
    if not tables:
        print("nothing to report: no sweep of " + ", ".join(ABLATIONS) + " and no dvc_default run found")
    for t in tables:
        print(f"wrote {t}")


if __name__ == "__main__":
    main()
