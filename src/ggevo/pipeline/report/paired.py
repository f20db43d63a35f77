"""One of ours against each baseline, seed by seed, over many seeds (``ggevo-leaderboard --paired``).

The leaderboard asks whether ours is at least as good as the best of six baselines on every seed: a high bar that
an equally good method fails most of the time, and one that says nothing of how far behind or ahead it is. This
asks the second question. Under each density budget, each seed gives one difference: ours minus the baseline's test
accuracy (points), or for an autoencoder the log of ours over the baseline's test MSE, both picked by the
leaderboard's rule (``bench.pick``). Over the seeds both have a member: the mean and the half-width of its 95%
Student-t interval (an autoencoder's as a ratio: the geometric mean and its interval), and on how many seeds ours is
behind (a seed where only the baseline has a member that sparse counts as behind and has no difference). The last
row is the best of all the baselines on each seed, on the seeds every baseline ran. Beside it, the bar (``bar``):
every method that ran every seed, each baseline included, against the best of the baselines other than itself.

    paired.md            per task, a table: baseline × density budget
    paired.csv           every seed's difference, one row per (task, budget, baseline, seed)
    paired.json          per task, budget and baseline: mean, ci95 (half-width), n, behind (DVC metrics); and under
                         ``bar/<method>`` every method against the best of the others (``bar``)
    paired_<task>.png    the means with their intervals against the density budget, a line per baseline
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import t as student_t

from ggevo.pipeline.core.files import write_json, write_text
from ggevo.pipeline.core.plotting import new_figure, save_figure
from ggevo.pipeline.record.sweep_record import job_order
from ggevo.pipeline.report.bench import BUDGETS, Task, cells

BEST = "best_baseline"  # the rival that is, on each seed, the best of the baselines
LABELS = {BEST: "the best baseline, per seed"}


@dataclass
class Paired:
    """Ours against one rival under one budget: the per-seed differences, and what they add up to."""

    differences: dict[str, float]  # seed -> ours minus rival (points, or log of the MSE ratio)
    behind: int
    seeds: int  # seeds where the rival has a member (with or without ours)

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.differences.values()) if self.differences else None

    @property
    def half_width(self) -> float | None:
        if self.n < 2:
            return None
        sd = statistics.stdev(self.differences.values())
        return float(student_t.ppf(0.975, self.n - 1)) * sd / math.sqrt(self.n)


def difference(mine: float, rival: float, classifier: bool) -> float:
    """Ours minus the rival in accuracy points, or the log of ours over the rival's MSE (below 0: ours better)."""
    return 100 * (mine - rival) if classifier else math.log(mine / rival)


def paired(task: Task, ours: str) -> dict[str, dict[float, Paired]]:
    """``{rival: {budget: Paired}}`` for ``ours`` against each baseline of ``task`` other than itself (any method may
    be ``ours``: a baseline is then measured against the others) and the best of them per seed."""
    if ours not in task.methods:
        raise ValueError(f"task {task.name} has no method {ours!r} (it has {', '.join(task.methods)})")
    table = cells(task)
    baselines = [m for m in task.baselines if m != ours]
    out: dict[str, dict[float, Paired]] = {}
    for rival in [*baselines, BEST]:
        out[rival] = {}
        for b, by_method in table.items():
            diffs, behind, seeds = {}, 0, 0
            for seed, mine in by_method[ours].items():
                if rival == BEST:
                    picks = [by_method[m].get(seed, False) for m in baselines]
                    if any(p is False for p in picks):
                        continue  # a baseline did not run this seed
                    scores = [p.test for p in picks if p is not None]
                    best = (max(scores) if task.classifier else min(scores)) if scores else None
                else:
                    if seed not in by_method[rival]:
                        continue
                    p = by_method[rival][seed]
                    best = None if p is None else p.test
                if best is None:
                    continue
                seeds += 1
                if mine is None:
                    behind += 1
                    continue
                d = difference(mine.test, best, task.classifier)
                diffs[seed] = d
                behind += d < 0 if task.classifier else d > 0
            out[rival][b] = Paired(diffs, behind, seeds)
    return out


def _cell(p: Paired, classifier: bool) -> str:
    if p.mean is None:
        return "—"
    h = p.half_width
    if classifier:
        text = f"{round(p.mean, 2) + 0.0:+.2f}" + ("" if h is None else f" ± {h:.2f}")
    else:
        text = f"{math.exp(p.mean):.3f}×" + ("" if h is None else
                                              f" [{math.exp(p.mean - h):.3f}, {math.exp(p.mean + h):.3f}]")
    significant = h is not None and abs(p.mean) > h
    return f"{'**' + text + '**' if significant else text} ({p.behind} of {p.seeds})"


def bar(task: Task) -> dict[str, dict[float, Paired]]:
    """Every method that ran every seed of ``task``, against the best of the baselines other than itself per seed
    (``{method: {budget: Paired}}``): how far below that bar the baselines themselves sit."""
    seeds = set(task.seeds())
    return {m: paired(task, m)[BEST] for m, jobs in task.methods.items() if {j.seed for j in jobs} == seeds}


def task_markdown(task: Task, ours: str, result: dict[str, dict[float, Paired]],
                  bars: dict[str, dict[float, Paired]]) -> str:
    seeds = sorted({s for by_b in result.values() for p in by_b.values() for s in p.differences}, key=job_order)
    unit = ("test accuracy minus the rival's in points, the mean ± the half-width of its 95% t-interval"
            if task.classifier else
            "test MSE over the rival's, the geometric mean [its 95% t-interval] (below 1: ours is better)")
    lines = [f"## {task.name}: {ours} against each baseline", "",
             f"Per density budget, over the seeds both ran ({', '.join(seeds)}): {ours}'s {unit}; in brackets, on how "
             f"many of those seeds {ours} is behind. Bold: the interval excludes {'0' if task.classifier else '1'}, "
             f"a difference beyond the seeds' spread. Each member is picked by the leaderboard's rule (best on "
             f"validation under the budget, scored on test).", "",
             "| rival | " + " | ".join(f"≤ {b:g}" for b in BUDGETS) + " |", "|---|" + "---|" * len(BUDGETS)]
    for rival, by_budget in result.items():
        row = " | ".join(_cell(by_budget[b], task.classifier) for b in BUDGETS)
        lines.append(f"| {LABELS.get(rival, rival)} | {row} |")
    lines += ["", f"The bar, measured on the baselines: each method that ran every seed against the best of the "
              f"baselines other than itself on each seed (for {ours}: its last row above). The best of several "
              f"noisy scores sits above most single methods' even where they are equally good.", "",
              "| method | " + " | ".join(f"≤ {b:g}" for b in BUDGETS) + " |", "|---|" + "---|" * len(BUDGETS)]
    for method, by_budget in bars.items():
        lines.append(f"| {method} | " + " | ".join(_cell(by_budget[b], task.classifier) for b in BUDGETS) + " |")
    return "\n".join(lines) + "\n"


def plot_task(task: Task, ours: str, result: dict[str, dict[float, Paired]], path: Path) -> None:
    fig, ax = new_figure()
    width = 0.04  # each rival's points a little apart along the log axis
    for i, (rival, by_budget) in enumerate(result.items()):
        shift = math.exp(width * (i - (len(result) - 1) / 2))
        xs, ys, errs = [], [], []
        for b in BUDGETS:
            p = by_budget[b]
            if p.mean is None:
                continue
            xs.append(b * shift)
            ys.append(p.mean if task.classifier else math.exp(p.mean))
            h = p.half_width or 0.0
            errs.append(h if task.classifier else [[math.exp(p.mean) - math.exp(p.mean - h)],
                                                  [math.exp(p.mean + h) - math.exp(p.mean)]])
        if not xs:
            continue
        yerr = errs if task.classifier else [[e[0][0] for e in errs], [e[1][0] for e in errs]]
        ax.errorbar(xs, ys, yerr=yerr, fmt="o-" if rival != BEST else "s--", ms=3, lw=1, capsize=2,
                    color="k" if rival == BEST else f"C{i % 10}", label=LABELS.get(rival, rival))
    ax.axhline(0.0 if task.classifier else 1.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(BUDGETS, [f"{b:g}" for b in BUDGETS])
    ax.minorticks_off()
    save_figure(fig, ax, path, xlabel="density budget",
                ylabel="ours minus the rival (accuracy points)" if task.classifier else "ours' MSE over the rival's",
                logy=not task.classifier, title=f"{task.name}: {ours} vs each baseline, mean and 95% interval")


def _figures(p: Paired) -> dict:
    h = p.half_width
    return {"mean": None if p.mean is None else round(p.mean, 6), "ci95": None if h is None else round(h, 6),
            "n": p.n, "behind": p.behind}


def write_paired(tasks: list[Task], ours: str, out: Path, records: list[Path]) -> dict:
    """Write ``paired.md``, ``.csv``, ``.json`` and ``paired_<task>.png`` for ``ours`` on ``tasks``; returns the
    metrics."""
    out.mkdir(parents=True, exist_ok=True)
    sections, rows, metrics = [], [], {}
    for task in tasks:
        result, bars = paired(task, ours), bar(task)
        sections.append(task_markdown(task, ours, result, bars))
        plot_task(task, ours, result, out / f"paired_{task.name}.png")
        for rival, by_budget in result.items():
            for b, p in by_budget.items():
                for seed, d in sorted(p.differences.items(), key=lambda kv: job_order(kv[0])):
                    rows.append({"task": task.name, "density_budget": b, "rival": rival, "seed": seed,
                                 "difference": f"{d:.6g}"})
                metrics[f"{task.name}/{b:g}/{rival}"] = _figures(p)
        for method, by_budget in bars.items():
            for b, p in by_budget.items():
                metrics[f"{task.name}/{b:g}/bar/{method}"] = _figures(p)
    header = ["# Ours against each baseline, seed by seed", "",
              f"`ggevo-leaderboard --paired {ours}` of the sweep records "
              + ", ".join(f"`{r.as_posix()}`" for r in records) + " (`dvc repro leaderboard_seeds`). Where the "
              "leaderboard (reports/bench/) asks whether ours is at least as good as the best of the baselines on "
              "every seed, this asks by how much it is ahead of or behind each one, and how sure that is.", ""]
    write_text(out / "paired.md", "\n".join(header) + "\n" + "\n".join(sections))
    with open(out / "paired.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["task", "density_budget", "rival", "seed", "difference"])
        w.writeheader()
        w.writerows(rows)
    write_json(out / "paired.json", metrics)
    return metrics
