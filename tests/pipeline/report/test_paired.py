"""``ggevo-leaderboard --paired``: ours against each baseline seed by seed, from fronts written as runs write them."""

import csv
import json
import math
import statistics

import pytest
import torch

from ggevo.pipeline.record.front_csv import write_front_csv
from ggevo.pipeline.record.sweep_record import Job
from ggevo.pipeline.report.bench import BUDGETS, Task, pick
from ggevo.pipeline.report.paired import BEST, LABELS, bar, paired, write_paired

T_975_2DF = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom (3 seeds)


def _job(folder, method, seed, rows):
    """A finished job whose front.csv holds ``rows`` of (density, validation, test) scores."""
    folder.mkdir(parents=True)
    density, val, test = (torch.tensor(c, dtype=torch.float64) for c in zip(*rows))
    write_front_csv(folder / "front.csv", {"density": density, "train_loss": 1 - val, "val_loss": 1 - val,
                                           "val_accuracy": val, "test_loss": 1 - test, "test_accuracy": test})
    return Job(f"{method}-{seed}", None, "FINISHED", seed, {"optimizer": method, "seed": seed}, folder)


def _task(tmp_path, fronts, classifier=True):
    methods = {m: [_job(tmp_path / m / s, m, s, rows) for s, rows in by_seed.items()] for m, by_seed in fronts.items()}
    return Task("toy", classifier, methods, [])


FRONTS = {  # (density, val, test) per member; every seed has a member at <= 0.02 but gemonn_plus's seed 2
    "gemonn_plus": {"0": [(0.02, 0.90, 0.91), (0.3, 0.95, 0.94)],
                    "1": [(0.015, 0.88, 0.87), (0.3, 0.96, 0.97)],
                    "2": [(0.05, 0.93, 0.92), (0.4, 0.97, 0.95)]},
    "imp": {"0": [(0.02, 0.89, 0.90), (0.5, 0.97, 0.96)],
            "1": [(0.02, 0.90, 0.88), (0.25, 0.95, 0.99)],
            "2": [(0.02, 0.91, 0.93), (0.5, 0.96, 0.96)]},
    "gmp": {"0": [(0.02, 0.92, 0.89), (0.1, 0.93, 0.95)],
            "1": [(0.02, 0.87, 0.92), (0.1, 0.95, 0.93)]},  # no seed 2
}


def test_each_difference_is_ours_minus_the_rivals_pick_with_students_interval(tmp_path):
    task = _task(tmp_path, FRONTS)
    result = paired(task, "gemonn_plus")
    fronts = {m: {j.seed: j.front for j in jobs} for m, jobs in task.methods.items()}
    for rival in ("imp", "gmp"):
        for b, p in result[rival].items():
            expected = {}
            for seed, front in fronts[rival].items():
                mine, theirs = pick(fronts["gemonn_plus"][seed], b, True), pick(front, b, True)
                if mine and theirs:
                    expected[seed] = 100 * (mine.test - theirs.test)
            assert p.differences == pytest.approx(expected)
            assert p.behind == sum(d < 0 for d in expected.values()) + (b == 0.02 and rival == "imp")
    at_half = result["imp"][0.5]
    diffs = list(at_half.differences.values())
    assert at_half.n == 3 and at_half.mean == pytest.approx(statistics.fmean(diffs))
    assert at_half.half_width == pytest.approx(T_975_2DF * statistics.stdev(diffs) / math.sqrt(3))
    assert result["gmp"][0.5].n == 2  # gmp never ran seed 2


def test_a_seed_where_only_the_rival_has_a_member_that_sparse_is_behind_without_a_difference(tmp_path):
    result = paired(_task(tmp_path, FRONTS), "gemonn_plus")
    at_002 = result["imp"][0.02]
    assert set(at_002.differences) == {"0", "1"} and at_002.seeds == 3
    assert at_002.behind == 1 + sum(d < 0 for d in at_002.differences.values())


def test_the_best_baseline_is_taken_per_seed_on_the_seeds_every_baseline_ran(tmp_path):
    result = paired(_task(tmp_path, FRONTS), "gemonn_plus")
    best = result[BEST][0.1]
    assert set(best.differences) == {"0", "1"}  # gmp has no seed 2
    # seed 0 at <= 0.1: ours 0.91, imp 0.90, gmp's best on validation 0.95 (test); seed 1: 0.87, 0.88, 0.93
    assert best.differences["0"] == pytest.approx(100 * (0.91 - 0.95))
    assert best.differences["1"] == pytest.approx(100 * (0.87 - 0.93))
    as_ours = paired(_task(tmp_path / "again", FRONTS), "imp")  # a baseline against the others, not itself
    assert set(as_ours) == {"gmp", BEST}
    assert as_ours[BEST][0.1].differences == pytest.approx(as_ours["gmp"][0.1].differences)
    bars = bar(_task(tmp_path / "bars", FRONTS))  # every method that ran every seed: gmp has no seed 2
    assert set(bars) == {"gemonn_plus", "imp"}
    assert bars["imp"][0.1].differences == pytest.approx(as_ours[BEST][0.1].differences)
    assert bars["gemonn_plus"][0.1].differences == pytest.approx(best.differences)


def test_an_autoencoder_pairs_the_log_of_its_mse_ratio(tmp_path):
    fronts = {m: {s: rows for s, rows in by_seed.items() if s != "2"} for m, by_seed in FRONTS.items()}
    task = _task(tmp_path, fronts, classifier=False)
    result = paired(task, "gemonn_plus")
    mine = pick(task.methods["gemonn_plus"][0].front, 0.5, False)
    theirs = pick(task.methods["imp"][0].front, 0.5, False)
    assert result["imp"][0.5].differences["0"] == pytest.approx(math.log(mine.test / theirs.test))


def test_the_files_agree_and_an_unknown_method_is_named(tmp_path):
    task = _task(tmp_path / "runs", FRONTS)
    metrics = write_paired([task], "gemonn_plus", tmp_path / "out", [tmp_path / "record"])
    out = tmp_path / "out"
    assert json.loads((out / "paired.json").read_text()) == metrics
    with open(out / "paired.csv") as fh:
        rows = list(csv.DictReader(fh))
    imp_half = [float(r["difference"]) for r in rows if r["rival"] == "imp" and r["density_budget"] == "0.5"]
    assert statistics.fmean(imp_half) == pytest.approx(metrics["toy/0.5/imp"]["mean"], abs=1e-5)
    barred = {f"toy/{b:g}/bar/{m}" for b in BUDGETS for m in ("gemonn_plus", "imp")}
    assert {k for k in metrics if "/bar/" in k} == barred
    text = (out / "paired.md").read_text()
    assert "## toy: gemonn_plus against each baseline" in text and f"| {LABELS[BEST]} |" in text
    assert (out / "paired_toy.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="no method 'gemonn_plus_rebase'"):
        write_paired([task], "gemonn_plus_rebase", tmp_path / "bad", [])
