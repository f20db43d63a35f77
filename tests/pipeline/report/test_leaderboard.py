"""The bench leaderboard: picked on validation data, scored on test data, from a record of real tiny runs."""

import csv
import json
import shutil
import subprocess
import sys

import pytest
import torch

from ggevo.pipeline.record.front_csv import read_front_csv, write_front_csv
from ggevo.pipeline.record.sweep_record import read_record
from ggevo.pipeline.report.held_out import evaluate_run
from ggevo.pipeline.report.bench import BUDGETS, pick, read_task
from ggevo.pipeline.report.leaderboard import leaderboard
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # every test reads the record of a real multirun (the bench fixture)

JOBS = {"0": ("gemonn_plus", "0"), "1": ("gemonn_plus", "1"), "2": ("imp", "0"), "3": ("imp", "1")}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A real bench multirun, as `dvc repro bench@<task>` runs one, shrunk: ours and IMP, two seeds each,
    an MLP on the digits, test-scored fronts, its record written by the sweep callback."""
    tmp = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "ggevo.train", "-m", "experiment=mlp_digits", "model.widths=[16]", "budget=120",
         "optimizer=gemonn_plus,imp", "seed=0,1", "score_test=true", "trainer.val_check_interval=1000",
         f"sweep_record={tmp / 'record'}", f"hydra.sweep.dir={tmp / 'multirun'}",
         f"logger.tracking_uri=sqlite:///{tmp / 'mlflow.db'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {j["name"]: (j["settings"]["optimizer"], j["seed"]) for j in json.loads((tmp / "record" / "sweep.json").read_text())["jobs"]}
    assert jobs == JOBS
    return tmp, tmp / "record"


def test_front_test_scores_are_the_evaluation_of_the_saved_front(bench):
    tmp, _ = bench
    run = tmp / "multirun" / "2"
    front = read_front_csv(run / "front.csv")
    evaluate_run(run)  # scores front.pt on the test split, independently of the run
    with open(run / "evaluation.csv") as fh:
        evaluated = list(csv.DictReader(fh))
    assert [float(r["test_accuracy"]) for r in evaluated] == pytest.approx(front["test_accuracy"], abs=1e-7)
    assert [float(r["test_loss"]) for r in evaluated] == pytest.approx(front["test_loss"], rel=1e-6)


def test_each_cell_is_the_test_score_of_the_member_best_on_validation(bench):
    tmp, record = bench
    out = tmp / "board"
    metrics = leaderboard([record], out)
    with open(out / "leaderboard.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(BUDGETS) * len(JOBS)
    fronts = {(m, s): read_front_csv(tmp / "multirun" / job / "front.csv") for job, (m, s) in JOBS.items()}
    for row in rows:
        front = fronts[(row["method"], row["seed"])]
        under = [i for i, d in enumerate(front["density"]) if d <= float(row["density_budget"]) * 1.001]
        if not under:
            assert row["test"] == ""
            continue
        best_val = max(front["val_accuracy"][i] for i in under)
        i = int(row["member"])
        assert i in under and front["val_accuracy"][i] == best_val
        assert float(row["test"]) == pytest.approx(front["test_accuracy"][i], rel=1e-5)
    text = (out / "leaderboard.md").read_text()
    assert "## mlp_digits" in text and "gemonn_plus" in text and "| imp |" in text
    assert (out / "fronts_mlp_digits.png").stat().st_size > 10_000
    assert json.loads((out / "leaderboard.json").read_text()) == metrics
    assert metrics["mlp_digits/cells"] == len(BUDGETS)


def test_ours_leads_a_cell_only_when_it_is_at_least_as_good_on_every_seed(bench, tmp_path):
    _, record = bench
    copy = tmp_path / "record"
    shutil.copytree(record, copy)
    task = read_task(read_record(copy))
    for job in task.methods["gemonn_plus"]:  # ours made perfect on test data at every member ...
        front = read_front_csv(job.folder / "front.csv")
        front["test_accuracy"] = [1.0] * len(front["density"])
        write_front_csv(job.folder / "front.csv", {k: torch.tensor(v, dtype=torch.float64) for k, v in front.items()})
    metrics = leaderboard([copy], tmp_path / "board")
    has_member = [all(pick(j.front, b, True) is not None for j in task.methods["gemonn_plus"]) for b in BUDGETS]
    assert metrics["mlp_digits/gemonn_plus/cells_led"] == sum(has_member)  # ... leads wherever it has a member on both seeds
    seed1 = next(j for j in read_task(read_record(copy)).methods["gemonn_plus"] if j.seed == "1")
    front = read_front_csv(seed1.folder / "front.csv")
    front["test_accuracy"] = [0.0] * len(front["density"])  # ... and none once one seed scores nothing
    write_front_csv(seed1.folder / "front.csv", {k: torch.tensor(v, dtype=torch.float64) for k, v in front.items()})
    assert leaderboard([copy], tmp_path / "board2")["mlp_digits/gemonn_plus/cells_led"] == 0


def test_a_record_without_test_scores_names_the_key(bench, tmp_path):
    _, record = bench
    copy = tmp_path / "record"
    shutil.copytree(record, copy)
    job = read_record(copy).jobs[0]
    front = read_front_csv(job.folder / "front.csv")
    del front["test_loss"], front["test_accuracy"]
    write_front_csv(job.folder / "front.csv", {k: torch.tensor(v, dtype=torch.float64) for k, v in front.items()})
    with pytest.raises(ValueError, match="score_test=true"):
        leaderboard([copy], tmp_path / "board")


def test_a_check_record_adds_its_seeds_to_its_task(bench, tmp_path):
    _, record = bench
    check = tmp_path / "check"
    shutil.copytree(record, check)
    index = json.loads((check / "sweep.json").read_text())
    index["experiment_preset"] = "mlp_digits_check"
    for job in index["jobs"]:  # the same runs, as if they were seeds 2 and 3 of a check sweep
        job["seed"] = job["settings"]["seed"] = str(int(job["seed"]) + 2)
    (check / "sweep.json").write_text(json.dumps(index))
    alone = leaderboard([record], tmp_path / "alone")
    both = leaderboard([record, check], tmp_path / "both")
    counts = {k for k in alone if k.endswith("seed_cells_behind_best_other")}
    assert counts and all(both[k] == 2 * alone[k] for k in counts)  # twice the seed-cells, the same share behind
    # seeds 2 and 3 score as 0 and 1 did: every cell and margin the same
    assert {k: v for k, v in both.items() if k not in counts} == {k: v for k, v in alone.items() if k not in counts}
    text = (tmp_path / "both" / "leaderboard.md").read_text()
    assert text.count("## mlp_digits") == 1 and "seeds 0, 1, 2, 3" in text and "Seed 2, 3 (experiment=" in text
    index["experiment_preset"] = "mlp_digits"
    for job in index["jobs"]:
        job["seed"] = job["settings"]["seed"] = str(int(job["seed"]) - 2)
    (check / "sweep.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="seed 0 is in two bench records"):
        leaderboard([record, check], tmp_path / "clash")


def _as_record(source, folder, preset, rename, seed_shift=0):
    """A copy of the record ``source`` as the record of ``preset``: only the jobs whose optimizer ``rename``
    maps, renamed so, their seeds shifted by ``seed_shift``."""
    shutil.copytree(source, folder)
    index = json.loads((folder / "sweep.json").read_text())
    index["experiment_preset"] = preset
    index["jobs"] = [j for j in index["jobs"] if j["settings"]["optimizer"] in rename]
    for job in index["jobs"]:
        job["settings"]["optimizer"] = rename[job["settings"]["optimizer"]]
        job["seed"] = job["settings"]["seed"] = str(int(job["seed"]) + seed_shift)
    (folder / "sweep.json").write_text(json.dumps(index))
    return folder


def test_the_candidates_own_records_join_their_task_as_one_more_method(bench, tmp_path):
    """bench_ours@<task> and bench_check_ours@<task> write records of the task's preset holding the candidate
    alone: the leaderboard adds it as a method of that task, and its check seed is named once."""
    _, record = bench
    ours = _as_record(record, tmp_path / "ours", "mlp_digits", {"gemonn_plus": "gemonn_plus_decay"})
    check = _as_record(record, tmp_path / "check", "mlp_digits_check", {"gemonn_plus": "gemonn_plus", "imp": "imp"}, 2)
    check_ours = _as_record(record, tmp_path / "check_ours", "mlp_digits_check", {"gemonn_plus": "gemonn_plus_decay"}, 2)
    alone = leaderboard([record, check], tmp_path / "alone")
    both = leaderboard([record, check, ours, check_ours], tmp_path / "both")
    for key, value in alone.items():  # every existing cell as before; the candidate, a copy of gemonn_plus, the same
        assert both[key] == value, key
        if "/gemonn_plus/" in key:
            assert both[key.replace("/gemonn_plus/", "/gemonn_plus_decay/")] == value, key
    text = (tmp_path / "both" / "leaderboard.md").read_text()
    assert text.count("## mlp_digits") == 1 and "Seed 2, 3 (experiment=" in text and "gemonn_plus_decay" in text


def test_paired_pairs_the_leaderboards_own_cells_seed_by_seed(bench, tmp_path):
    """``ggevo-leaderboard --paired``: each difference is ours minus the baseline in the leaderboard's cells."""
    _, record = bench
    leaderboard([record], tmp_path / "board")
    with open(tmp_path / "board" / "leaderboard.csv") as fh:
        cell = {(r["density_budget"], r["method"], r["seed"]): r["test"] for r in csv.DictReader(fh)}
    run = [sys.executable, "-m", "ggevo.pipeline.report.leaderboard", "--out", str(tmp_path / "paired"), str(record)]
    proc = subprocess.run([*run[:3], "--paired", "gemonn_plus", *run[3:]], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "paired" / "paired.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["rival"] == "imp"]
    assert rows
    for r in rows:
        mine, theirs = cell[(r["density_budget"], "gemonn_plus", r["seed"])], cell[(r["density_budget"], "imp", r["seed"])]
        assert float(r["difference"]) == pytest.approx(100 * (float(mine) - float(theirs)), abs=1e-4)
    bad = subprocess.run([*run[:3], "--paired", "gemonn_plus_rebase", *run[3:]], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "no method 'gemonn_plus_rebase'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
