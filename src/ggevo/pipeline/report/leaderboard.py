"""``ggevo-leaderboard``: every method on every bench task, at each density budget (DVC ``leaderboard``).

Reads the sweep records of the ``experiment=bench_<task>`` multiruns (``reports/sweeps/bench_<task>``,
written with ``score_test: true``, so each front member carries its test scores) and writes to ``--out``:

    leaderboard.md      per task, a table: density budget × method, mean over seeds (each seed in
                        brackets), the best in bold, and ours against the best baseline per seed
    leaderboard.csv     every cell, one row per (task, budget, method, seed): the member picked and its scores
    leaderboard.json    per task and budget, ours minus (classifier) or over (autoencoder) the best baseline,
                        how many cells ours leads on every seed, and for every method the seed-cells where
                        it is behind the best baseline other than itself (DVC metrics)
    fronts_<task>.png   every method's front on validation data (seed by line style)
    fronts_<task>.csv   the same fronts as one long table, for ``dvc plots``

With ``--paired METHOD`` it writes instead METHOD against each baseline seed by seed, the mean difference over the
seeds and its 95% interval (``ggevo.pipeline.report.paired``; DVC ``leaderboard_seeds``, ten seeds).

The rule (docs/ALGORITHM.md, "Benchmark"): under a density budget B, a method's member is the one of its
final front with density ≤ B (0.1% tolerance, as everywhere) that scores best on the validation split;
the cell is that member's score on the test split: accuracy for a classifier, MSE for an autoencoder.
Choosing on validation data and reporting on test data keeps the test split out of every choice. A
method with no member under B gets no score there, and loses the cell.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from ggevo.pipeline.core.files import write_json, write_text
from ggevo.pipeline.core.plotting import new_figure, save_figure
from ggevo.pipeline.record.sweep_record import job_order, read_record
from ggevo.pipeline.report.bench import (BANDS, BUDGETS, CHECK_SUFFIX, Task, bands_covered, cells, compare, mean_score,
                                         front_size, merged, read_task, standing)
from ggevo.pipeline.report.paired import write_paired
from ggevo.pipeline.report.report import write_fronts_csv
from ggevo.pipeline.run.cli import fail

def _fmt(value: float | None, classifier: bool) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if classifier else f"{value:.5f}"


def _fmt_margin(value: float | None, classifier: bool) -> str:
    if value is None:
        return "—"
    return f"{100 * value:+.1f} pts" if classifier else f"{value:.2f}×"


def task_markdown(task: Task, table: dict, versus: dict[str, dict], standing_of: dict[str, dict]) -> str:
    metric = "test accuracy (higher is better)" if task.classifier else "test MSE (lower is better)"
    methods = list(task.methods)
    seeds = task.seeds()
    lines = [f"## {task.name}", "",
             f"Cell: the {metric} of the member with the best validation "
             f"{'accuracy' if task.classifier else 'MSE'} at density ≤ the budget; mean over seeds "
             f"{', '.join(seeds)} (each seed in brackets). Best mean in bold. Last columns: each of ours "
             f"against the best baseline on each seed "
             f"({'difference in accuracy points' if task.classifier else 'ratio of MSEs, below 1 is better'}); "
             f"✔ where ours is at least as good on every seed."
             + (f" Seed {', '.join(task.check_seeds)} (experiment=bench_{task.name}{CHECK_SUFFIX}) chose nothing: "
                f"every setting of ours was picked on the others." if task.check_seeds else ""), ""]
    lines.append("| density ≤ | " + " | ".join(methods) + "".join(f" | {o} vs best baseline" for o in versus) + " |")
    lines.append("|---|" + "---|" * (len(methods) + len(versus)))
    for b, by_method in table.items():
        means = {m: mean_score(by_method[m]) for m in methods}
        scored = [v for v in means.values() if v is not None]
        top = (max(scored) if task.classifier else min(scored)) if scored else None
        row = []
        for m in methods:
            text = _fmt(means[m], task.classifier)
            each = "/".join(_fmt(by_method[m].get(s).test if by_method[m].get(s) else None, task.classifier)
                            for s in seeds)
            text = f"**{text}**" if means[m] is not None and means[m] == top else text
            row.append(f"{text} ({each})")
        for mine in versus.values():
            v = mine[b]
            margin = ", ".join(_fmt_margin(x, task.classifier) for x in v["margins"])
            row.append(f"{'✔' if v['leads'] else '✘'} {margin}")
        lines.append(f"| {b:g} | " + " | ".join(row) + " |")
    n_others = len(task.baselines) - 1
    lines += ["", f"Every method against the best of the baselines other than itself ({len(task.baselines)} for ours, "
              f"{n_others} for a baseline), by the rule of the last columns: the density budgets it leads on every "
              f"seed, the seed-cells where it is behind, its worst "
              + ("difference and the sum of its differences (accuracy points) over every seed-cell. "
                 if task.classifier else "ratio and the geometric mean of its ratios over every seed-cell. ")
              + "The bar ours must clear, measured on the baselines themselves: the best of several noisy scores "
              "is above most single methods' score even where they are equally good.", "",
              "| method | budgets led on every seed | seed-cells behind | worst | "
              + ("sum |" if task.classifier else "geometric mean |"), "|---|---|---|---|---|"]
    for m, st in standing_of.items():
        worst = _fmt_margin(st["worst"], task.classifier)
        total = _fmt_margin(st["total"], task.classifier)
        lines.append(f"| {m} | {st['led']} of {len(table)} | {st['behind']} of {st['seed_cells']} | {worst} | {total} |")
    lines += ["", "Front: members in each density band "
              + ", ".join(f"[{lo:g}, {hi:g})" for lo, hi in BANDS) + " (of 5, per seed); front size (k+b: k "
              + "non-dominated members and b band members they dominate, reported beside them); "
              + f"best validation {'accuracy' if task.classifier else 'MSE'} of the whole front.", "",
              "| method | bands covered | front size | best validation |", "|---|---|---|---|"]
    for m, jobs in task.methods.items():
        jobs = sorted(jobs, key=lambda j: job_order(j.seed))
        bands = "/".join(str(bands_covered(j.front)) for j in jobs)
        sizes = "/".join(front_size(j.front) for j in jobs)
        key = "val_accuracy" if task.classifier else "val_loss"
        best = "/".join(_fmt((max if task.classifier else min)(j.front[key]), task.classifier) for j in jobs)
        lines.append(f"| {m} | {bands} | {sizes} | {best} |")
    downstream = {m: [j.metrics.get("downstream/test_accuracy_mean") for j in jobs] for m, jobs in task.methods.items()}
    if any(v is not None for vs in downstream.values() for v in vs):
        select = next((json.loads(j.file("downstream.json").read_text()).get("select")
                       for jobs in task.methods.values() for j in jobs if j.file("downstream.json")), "?")
        lines += ["", f"Downstream accuracy (CCR on the test split) of each method's encoder chosen by `{select}`, "
                  "fine-tuned with a softmax classifier; per seed, and the chosen member's density.", "",
                  "| method | CCR | density |", "|---|---|---|"]
        for m, jobs in task.methods.items():
            jobs = sorted(jobs, key=lambda j: job_order(j.seed))
            ccr = "/".join("—" if j.metrics.get("downstream/test_accuracy_mean") is None
                           else f"{j.metrics['downstream/test_accuracy_mean']:.4f}" for j in jobs)
            dens = "/".join("—" if j.metrics.get("downstream/density") is None
                            else f"{j.metrics['downstream/density']:.3f}" for j in jobs)
            lines.append(f"| {m} | {ccr} | {dens} |")
    if task.skipped:
        lines += ["", "Left out (did not finish): " + ", ".join(task.skipped)]
    return "\n".join(lines) + "\n"


def plot_task(task: Task, path: Path) -> None:
    fig, ax = new_figure()
    key = "val_accuracy" if task.classifier else "val_loss"
    styles = ("o-", "s--", "^:", "d-.")
    colors = {m: f"C{i % 10}" for i, m in enumerate(task.methods)}
    for m, jobs in task.methods.items():
        for job in sorted(jobs, key=lambda j: job_order(j.seed)):
            order = sorted(range(len(job.front["density"])), key=lambda i: job.front["density"][i])
            style = styles[task.seeds().index(job.seed) % len(styles)]
            ax.plot([job.front["density"][i] for i in order], [job.front[key][i] for i in order], style,
                    color=colors[m], ms=3, lw=1, label=f"{m}, seed {job.seed}")
    ax.set_xscale("log")
    for b in BUDGETS:
        ax.axvline(b, color="0.8", lw=0.8, zorder=0)
    save_figure(fig, ax, path, xlabel="density (fraction of nonzero weights)",
                ylabel="validation accuracy" if task.classifier else "validation MSE",
                title=f"bench {task.name}: every method's final front", logy=not task.classifier)


def leaderboard(records: list[Path], out: Path) -> dict:
    """Write the leaderboard of ``records`` (bench sweep records) to ``out``; returns its metrics."""
    out.mkdir(parents=True, exist_ok=True)
    tasks = merged([read_task(read_record(r)) for r in records])
    sections, rows, metrics = [], [], {}
    for task in tasks:
        table = cells(task)
        everyone = {m: compare(task, table, m) for m in task.methods}
        versus = {o: everyone[o] for o in task.ours}
        standing_of = standing(task, everyone)
        sections.append(task_markdown(task, table, versus, standing_of))
        plot_task(task, out / f"fronts_{task.name}.png")
        write_fronts_csv(out / f"fronts_{task.name}.csv",
                         {m: {j.seed: j.front for j in jobs} for m, jobs in task.methods.items()})
        for b, by_method in table.items():
            for m, picks in by_method.items():
                for seed, p in sorted(picks.items(), key=lambda kv: job_order(kv[0])):
                    rows.append({"task": task.name, "density_budget": b, "method": m, "seed": seed,
                                 "member": "" if p is None else p.row,
                                 "density": "" if p is None else f"{p.density:.6g}",
                                 "val": "" if p is None else f"{p.val:.6g}",
                                 "test": "" if p is None else f"{p.test:.6g}",
                                 "train_loss": "" if p is None else f"{p.train_loss:.6g}"})
        name = "minus_best_baseline" if task.classifier else "over_best_baseline"
        for o, mine in versus.items():  # the worst seed's margin: a cell is led only if every seed is
            for b, v in mine.items():
                margins = [x for x in v["margins"] if x is not None]
                metrics[f"{task.name}/{o}/{b:g}/{name}"] = \
                    round(min(margins) if task.classifier else max(margins), 6) if margins else None
            metrics[f"{task.name}/{o}/cells_led"] = sum(v["leads"] for v in mine.values())
        for m, st in standing_of.items():
            metrics[f"{task.name}/{m}/seed_cells_behind_best_other"] = st["behind"]
        metrics[f"{task.name}/cells"] = len(BUDGETS)
    header = ["# Bench leaderboard", "",
              "Every method on every task at the same total number of gradient evaluations for its whole front "
              "(a method that trains one network per target density splits it evenly across them). Produced by "
              "`ggevo-leaderboard` from the sweep records " + ", ".join(f"`{r.as_posix()}`" for r in records) +
              " (each made by `ggevo-train -m experiment=<its name> hydra/launcher=local_parallel "
              "sweep_record=<the record>`; `dvc repro leaderboard` and `dvc repro leaderboard_small` run them); "
              "the rule is in docs/ALGORITHM.md (Benchmark).", ""]
    write_text(out / "leaderboard.md", "\n".join(header) + "\n" + "\n".join(sections))
    with open(out / "leaderboard.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    clean = {k: (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v) for k, v in metrics.items()}
    write_json(out / "leaderboard.json", clean)
    return clean


def main() -> None:
    ap = argparse.ArgumentParser(description="Leaderboard of the bench sweeps: every method, task and density budget.")
    ap.add_argument("records", nargs="+", type=Path, help="sweep records (reports/sweeps/bench_<task>)")
    ap.add_argument("--out", type=Path, default=Path("reports/bench"), help="output folder (default reports/bench)")
    ap.add_argument("--paired", metavar="METHOD",
                    help="write instead METHOD (e.g. gemonn_plus_rebase; a baseline is measured against the others) "
                         "against each baseline, seed by seed: paired.md, paired.csv, paired.json, paired_<task>.png")
    args = ap.parse_args()
    if args.paired:
        try:
            write_paired(merged([read_task(read_record(r)) for r in args.records]), args.paired, args.out, args.records)
        except (FileNotFoundError, ValueError) as err:
            fail(err)
        print(f"wrote {args.out / 'paired.md'}")
        return
    try:
        metrics = leaderboard(args.records, args.out)
    except (FileNotFoundError, ValueError) as err:
        fail(err)
    for key in sorted(k for k in metrics if k.endswith("cells_led")):
        task, ours = key.split("/")[:2]
        print(f"{task}: {ours} leads {metrics[key]} of {metrics[f'{task}/cells']} density budgets on every seed")
    print(f"wrote {args.out / 'leaderboard.md'}")


if __name__ == "__main__":
    main()
