"""The bench's tasks and the leaderboard's rule (docs/ALGORITHM.md, "Benchmark"): a sweep record read as
one task (its methods, each with a front per seed), a bench record and its ``_check`` record merged, and
under each density budget the member each method's front offers (best on validation, scored on test),
compared with the best baseline seed by seed. ``ggevo.pipeline.report.leaderboard`` writes them out.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from ggevo.pipeline.record.sweep_record import Job, SweepRecord, job_order
from ggevo.pipeline.report.budget_table import BUDGETS, rows_within

BANDS = ((0.01, 0.03), (0.03, 0.07), (0.07, 0.15), (0.15, 0.35), (0.35, 0.7))
CHECK_SUFFIX = "_check"  # experiment=bench_<task>_check: the same sweep on a seed used for no choice
OURS_PREFIX = "gemonn"  # gemonn, gemonn_plus, gemonn_plus_trunk: ours; every other optimizer is a baseline


@dataclass
class Pick:
    """The member one job's front offers under one density budget, and what it scores."""

    row: int
    density: float
    val: float
    test: float
    train_loss: float


@dataclass
class Task:
    """One bench task: its name, whether its figure of merit is accuracy, and its jobs by method."""

    name: str
    classifier: bool
    methods: dict[str, list[Job]]
    skipped: list[str]
    check_seeds: list[str] = field(default_factory=list)  # seeds of a ``bench_<task>_check`` record: chose nothing

    @property
    def ours(self) -> list[str]:
        return [m for m in self.methods if m.startswith(OURS_PREFIX)]

    @property
    def baselines(self) -> list[str]:
        return [m for m in self.methods if not m.startswith(OURS_PREFIX)]

    def seeds(self) -> list[str]:
        return sorted({job.seed for jobs in self.methods.values() for job in jobs}, key=job_order)


def method_of(job: Job, swept: list[str]) -> str:
    """A job's method: its optimizer, and any other swept key but the seed (``imp,budget_per_density=whole``)."""
    parts = [job.settings.get("optimizer", "?")]
    parts += [f"{k}={job.settings[k]}" for k in swept if k not in ("optimizer", "seed") and k in job.settings]
    return ",".join(parts)


def read_task(record: SweepRecord) -> Task:
    """A record as a task; jobs that did not finish, or whose front has no test scores, are left out (named)."""
    methods: dict[str, list[Job]] = {}
    skipped = []
    classifier = None
    for job in record.jobs:
        front = job.front
        if job.status != "FINISHED" or front is None:
            skipped.append(f"{job.name} ({job.status})")
            continue
        if "test_loss" not in front:
            raise ValueError(f"{job.folder / 'front.csv'} has no test scores: run the bench sweep with "
                             f"score_test=true (the bench_<task> presets set it)")
        classifier = "test_accuracy" in front if classifier is None else classifier
        methods.setdefault(method_of(job, record.swept), []).append(job)
    if not methods:
        raise ValueError(f"{record.folder}: no finished job with a front")
    name = record.preset.removeprefix("bench_")
    if name.endswith(CHECK_SUFFIX):
        seeds = sorted({j.seed for jobs in methods.values() for j in jobs}, key=job_order)
        return Task(name.removesuffix(CHECK_SUFFIX), bool(classifier), methods, skipped, seeds)
    return Task(name, bool(classifier), methods, skipped)


def merged(tasks: list[Task]) -> list[Task]:
    """Tasks of one name (a bench record, its ``_check`` record, and the candidate's ``_ours`` records of both) as
    one, their jobs together, in order; a method's seed in two records fails."""
    out: dict[str, Task] = {}
    for task in tasks:
        if task.name not in out:
            out[task.name] = task
            continue
        into = out[task.name]
        if into.classifier != task.classifier:
            raise ValueError(f"bench records of task {task.name} disagree on whether it is a classifier")
        for method, jobs in task.methods.items():
            known = {j.seed for j in into.methods.get(method, [])}
            clash = [j.seed for j in jobs if j.seed in known]
            if clash:
                raise ValueError(f"task {task.name}, {method}: seed {clash[0]} is in two bench records")
            into.methods.setdefault(method, []).extend(jobs)
        into.skipped += task.skipped
        into.check_seeds += [s for s in task.check_seeds if s not in into.check_seeds]
    return list(out.values())


def pick(front: dict[str, list[float]], budget: float, classifier: bool) -> Pick | None:
    """The member under ``budget`` that scores best on validation data (ties: the sparser), or None."""
    rows = rows_within(front, budget)
    if not rows:
        return None
    if classifier:
        best = min(rows, key=lambda i: (-front["val_accuracy"][i], front["val_loss"][i], front["density"][i]))
        val, test = front["val_accuracy"][best], front["test_accuracy"][best]
    else:
        best = min(rows, key=lambda i: (front["val_loss"][i], front["density"][i]))
        val, test = front["val_loss"][best], front["test_loss"][best]
    return Pick(best, front["density"][best], val, test, front["train_loss"][best])


def better(a: float | None, b: float | None, classifier: bool) -> bool:
    """Whether score ``a`` is at least as good as ``b`` (no score loses to any)."""
    if a is None:
        return False
    if b is None:
        return True
    return a >= b if classifier else a <= b


def cells(task: Task) -> dict[float, dict[str, dict[str, Pick | None]]]:
    """``{budget: {method: {seed: pick}}}``."""
    return {b: {m: {job.seed: pick(job.front, b, task.classifier) for job in jobs} for m, jobs in task.methods.items()}
            for b in BUDGETS}


def mean_score(picks: dict[str, Pick | None]) -> float | None:
    scores = [p.test for p in picks.values() if p is not None]
    return statistics.fmean(scores) if scores and len(scores) == len(picks) else None


def bands_covered(front: dict[str, list[float]]) -> int:
    return sum(any(lo <= d < hi for d in front["density"]) for lo, hi in BANDS)


def front_size(front: dict[str, list[float]]) -> str:
    """A front's member count, ``k+b`` where it also reports ``b`` band members it dominates (column ``dominated``)."""
    extra = int(sum(front.get("dominated", ())))
    size = len(front["density"]) - extra
    return f"{size}+{extra}" if extra else str(size)


def compare(task: Task, table: dict, ours: str) -> dict[float, dict]:
    """Per budget: ``ours`` against the best baseline other than itself on each seed (for one of ours: the
    best of all the baselines), and whether it leads on every seed."""
    others = [m for m in task.baselines if m != ours]
    out = {}
    for b, by_method in table.items():
        per_seed = {}
        for seed in task.seeds():
            rivals = [by_method[m].get(seed) for m in others]
            scores = [p.test for p in rivals if p is not None]
            best = (max(scores) if task.classifier else min(scores)) if scores else None
            mine = by_method[ours].get(seed)
            per_seed[seed] = (mine.test if mine else None, best)
        margins = [_margin(m, r, task.classifier) for m, r in per_seed.values()]
        out[b] = {"per_seed": per_seed, "margins": margins,
                  "leads": bool(per_seed) and all(better(m, r, task.classifier) for m, r in per_seed.values())}
    return out


def standing(task: Task, versus: dict[str, dict[float, dict]]) -> dict[str, dict]:
    """Every method (ours and each baseline) against the best of the baselines other than itself, from
    ``versus`` (``{method: compare(task, table, method)}``, every method of ``task``): budgets led on every
    seed, seed-cells behind (no member counts as behind) of all, the worst margin, and the margins' sum
    (accuracy points) or geometric mean (MSE ratios). What one method faces in the leaderboard's last columns,
    measured on each baseline too: the best of several noisy scores is a high bar even for a method as strong
    as the rest."""
    out = {}
    for m in task.methods:
        mine = versus[m]
        margins = [x for v in mine.values() for x in v["margins"]]
        scored = [x for x in margins if x is not None]
        behind = sum(not better(score, rival, task.classifier)
                     for v in mine.values() for score, rival in v["per_seed"].values())
        if task.classifier:
            worst, total = (min(scored), sum(scored)) if scored else (None, None)
        else:
            worst = max(scored) if scored else None
            total = statistics.geometric_mean(scored) if scored else None
        out[m] = {"led": sum(v["leads"] for v in mine.values()), "behind": behind, "seed_cells": len(margins),
                  "worst": worst, "total": total}
    return out


def _margin(mine: float | None, rival: float | None, classifier: bool) -> float | None:
    """Ours minus the best baseline (accuracy) or ours over it (MSE); None where either has no member."""
    if mine is None or rival is None:
        return None
    return mine - rival if classifier else mine / rival


def scored_classifier(front: dict[str, list[float]]) -> bool:
    """Whether a front carries the validation and test accuracy ``pick`` chooses and scores a classifier by."""
    return "val_accuracy" in front and "test_accuracy" in front


def scored_on_test(front: dict[str, list[float]]) -> bool:
    """Whether a front carries the test scores ``pick`` reports (a run with ``score_test``)."""
    return "val_loss" in front and "test_loss" in front


def held_out_markdown(fronts: dict[str, dict[str, dict[str, list[float]]]], title: str, classifier: bool = True) -> str:
    """An ablation's table by the leaderboard's rule (``fronts``: setting → seed → front with test scores): per
    density budget, each setting's test score (a classifier's accuracy, else its loss) of the member ``pick``
    chooses on validation (mean over seeds, each seed in brackets; — where a seed has no member that sparse),
    the best mean in bold; then each setting's bands covered and front size per seed (``front_size``)."""
    names = list(fronts)
    head = ["density ≤", *names]
    score = "test accuracy" if classifier else "test loss"
    lines = [f"## {title}: {score} of the member best on validation at each density budget", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    digits = ".4f" if classifier else ".5f"
    for b in BUDGETS:
        picks = {n: {s: pick(f, b, classifier) for s, f in fronts[n].items()} for n in names}
        means = {n: mean_score(p) for n, p in picks.items()}
        known = [m for m in means.values() if m is not None]
        top = (max if classifier else min)(known, default=None)
        cells = [str(b)]
        for n in names:
            seeds = "/".join("—" if p is None else f"{p.test:{digits}}" for p in picks[n].values())
            mean = "—" if means[n] is None else f"{means[n]:{digits}}"
            cells.append(f"**{mean}** ({seeds})" if means[n] is not None and means[n] == top else f"{mean} ({seeds})")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| setting | bands covered (of 5) | front size |", "|---|---|---|"]
    for n in names:
        lines.append(f"| {n} | {'/'.join(str(bands_covered(f)) for f in fronts[n].values())} | "
                     f"{'/'.join(front_size(f) for f in fronts[n].values())} |")
    return "\n".join(lines) + "\n"
