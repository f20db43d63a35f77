"""Every method against the best of the baselines other than itself (``report.bench.standing``)."""

from pathlib import Path

import pytest

from ggevo.pipeline.record.sweep_record import Job
from ggevo.pipeline.report.bench import BUDGETS, Task, cells, compare, standing


def _job(method: str, seed: str, test: float) -> Job:
    """A finished job whose front is one member at density 0.01, scoring ``test`` (validation the same)."""
    job = Job(f"{method}-{seed}", None, "FINISHED", seed, {"optimizer": method, "seed": seed}, Path("."))
    job.__dict__["front"] = {"density": [0.01], "train_loss": [0.1], "val_loss": [1 - test], "test_loss": [1 - test],
                             "val_accuracy": [test], "test_accuracy": [test]}
    return job


def _standing(task: Task) -> dict[str, dict]:
    table = cells(task)
    return standing(task, {m: compare(task, table, m) for m in task.methods})


def _task(scores: dict[str, tuple[float, float]]) -> Task:
    return Task("t", True, {m: [_job(m, "0", a), _job(m, "1", b)] for m, (a, b) in scores.items()}, [])


def test_each_method_meets_the_best_of_the_baselines_other_than_itself():
    task = _task({"gemonn_plus": (0.95, 0.90), "imp": (0.94, 0.93), "gmp": (0.96, 0.91), "rigl": (0.90, 0.92)})
    table = cells(task)
    st = _standing(task)
    n = len(BUDGETS)
    # ours against imp/gmp/rigl: best 0.96 on seed 0, 0.93 on seed 1
    assert st["gemonn_plus"] == {"led": 0, "behind": 2 * n, "seed_cells": 2 * n,
                                 "worst": pytest.approx(-0.03), "total": pytest.approx(n * (-0.01 - 0.03))}
    # gmp against imp/rigl (not itself): 0.94 and 0.93, ahead on seed 0, behind on seed 1
    assert st["gmp"]["behind"] == n and st["gmp"]["led"] == 0
    assert st["gmp"]["total"] == pytest.approx(n * (0.02 - 0.02))
    # imp against gmp/rigl: behind on seed 0 (0.96), ahead on seed 1 (0.92)
    assert st["imp"]["worst"] == pytest.approx(-0.02) and st["imp"]["behind"] == n
    # ours' own columns are unchanged by the rule: the best of every baseline
    assert compare(task, table, "gemonn_plus")[BUDGETS[0]]["per_seed"] == {"0": (0.95, 0.96), "1": (0.90, 0.93)}


def test_a_method_ahead_of_every_other_on_every_seed_leads_every_budget_and_mse_uses_ratios():
    task = _task({"gemonn_plus": (0.5, 0.5), "imp": (0.97, 0.97), "gmp": (0.95, 0.94)})
    assert _standing(task)["imp"] == {"led": len(BUDGETS), "behind": 0, "seed_cells": 2 * len(BUDGETS),
                                                  "worst": pytest.approx(0.02),
                                                  "total": pytest.approx(len(BUDGETS) * 0.05)}
    mse = Task("t", False, {m: [_job(m, "0", 0.0), _job(m, "1", 0.0)] for m in ("imp", "gmp")}, [])
    for m, (a, b) in {"imp": (0.002, 0.004), "gmp": (0.004, 0.002)}.items():
        for job, loss in zip(mse.methods[m], (a, b)):
            job.front["test_loss"] = [loss]
            job.front["val_loss"] = [loss]
    st = _standing(mse)["imp"]
    assert st["worst"] == pytest.approx(2.0) and st["total"] == pytest.approx(1.0) and st["behind"] == len(BUDGETS)
