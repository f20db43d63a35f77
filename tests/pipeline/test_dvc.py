"""`dvc repro` of the real dvc.yaml, shrunk to a tiny configuration, in a fresh repository, then in a
fresh clone of it that has neither its MLflow store nor its DVC cache."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PIN = "defaults:\n  - override /optimizer: gemonn\n"  # as the real presets pin the faithful method
TINY = {
    "conf/experiment/dvc_default.yaml": (
        "# @package _global_\n" + PIN + "preset: dvc_default\nmodel: {hidden: 8}\n"
        "optimizer: {pop_size: 6, compile: false}\n"
        "trainer: {max_steps: 3, val_check_interval: 3}\n"
    ),
    "conf/experiment/ablation_popsize.yaml": (
        "# @package _global_\n" + PIN + "preset: ablation_popsize\nmodel: {hidden: 8}\n"
        "optimizer: {compile: false}\n"
        "trainer: {max_steps: 2, val_check_interval: 2}\n"
        "hydra:\n  sweeper:\n    params:\n      optimizer.pop_size: 4,6\n"
    ),
    "conf/experiment/ablation_sparsity.yaml": (
        "# @package _global_\n" + PIN + "preset: ablation_sparsity\nmodel: {hidden: 8}\n"
        "optimizer: {pop_size: 4, compile: false}\ntrainer: {max_steps: 2, val_check_interval: 2}\n"
        "hydra:\n  sweeper:\n    params:\n      optimizer.sparsity_preservation: 0.0,1.0\n"
    ),
    "conf/experiment/stacked_mnist5k.yaml": (
        "# @package _global_\ndefaults:\n  - override /model: stacked_ae\n  - override /optimizer: gemonn\n"
        "preset: stacked_mnist5k\n"
        "model: {widths: [8, 4]}\noptimizer: {pop_size: 4, compile: false}\n"
        "trainer: {max_steps: 2, val_check_interval: 2}\ndownstream: {seeds: 1, epochs: 1}\n"
    ),
    "conf/experiment/ablation_plus.yaml": (
        "# @package _global_\ndefaults:\n  - override /optimizer: gemonn_plus\npreset: ablation_plus\n"
        "model: {hidden: 8}\noptimizer: {pop_size: 4, warmup: 1, compile: false}\n"
        "trainer: {max_steps: 3, val_check_interval: 3}\n"
        "hydra:\n  sweeper:\n    params:\n      +plus_off: none,warmup\n"
    ),
    "conf/experiment/ablation_plus_gradual.yaml": (
        "# @package _global_\ndefaults:\n  - override /model: mlp\n  - override /optimizer: gemonn_plus_gradual\n"
        "preset: ablation_plus_gradual\nscore_test: true\nhv_ref: [1.1, 2.5]\nmodel: {widths: [8]}\nbudget: 40\n"
        "optimizer: {pop_size: 4}\ntrainer: {val_check_interval: 1000}\n"
        "hydra:\n  sweeper:\n    params:\n      +gradual_off: none,band_edges\n"
    ),
    "conf/experiment/ablation_plus_rebase.yaml": (
        "# @package _global_\ndefaults:\n  - override /optimizer: gemonn_plus_rebase\n"
        "preset: ablation_plus_rebase\nscore_test: true\nmodel: {hidden: 8}\nbudget: 40\n"
        "optimizer: {pop_size: 4}\ndownstream: {seeds: 1, epochs: 1, select: density<=0.1}\n"
        "trainer: {val_check_interval: 1000}\n"
        "hydra:\n  sweeper:\n    params:\n      +rebase_off: none,rebase_extras\n"
    ),
    "conf/experiment/ablation_plus_rebase_mlp.yaml": (
        "# @package _global_\ndefaults:\n  - override /model: mlp\n  - override /optimizer: gemonn_plus_rebase\n"
        "preset: ablation_plus_rebase_mlp\nscore_test: true\nhv_ref: [1.1, 2.5]\nmodel: {widths: [8]}\nbudget: 40\n"
        "optimizer: {pop_size: 4}\ntrainer: {val_check_interval: 1000}\n"
        "hydra:\n  sweeper:\n    params:\n      +rebase_off: none,weight_decay\n"
    ),
    "conf/experiment/compare_ae_small.yaml": (
        "# @package _global_\npreset: compare_ae_small\nmodel: {hidden: 8}\nbudget: 48\noptimizer: {pop_size: 4}\n"
        "downstream: {seeds: 1, epochs: 1}\ntrainer: {val_check_interval: 1000}\n"
        "hydra:\n  sweeper:\n    params:\n      optimizer: gemonn,pymoo_nsga2,adam\n"
    ),
    "conf/experiment/plus_vs_imp_small.yaml": (
        "# @package _global_\npreset: plus_vs_imp_small\nmodel: {hidden: 8}\nbudget: 40\n"
        "trainer: {val_check_interval: 1000}\n"
        "hydra:\n  sweeper:\n    params:\n      optimizer: gemonn_plus,imp\n"
    ),
    "conf/experiment/bench_ae.yaml": (
        "# @package _global_\npreset: bench_ae\nscore_test: true\nmodel: {hidden: 8}\nbudget: 40\n"
        "downstream: {seeds: 1, epochs: 1}\ntrainer: {val_check_interval: 1000}\n"
        "hydra:\n  sweeper:\n    params:\n      optimizer: gemonn_plus,imp\n      seed: 0,1\n"
    ),
    **{f"conf/experiment/bench_{task}.yaml": (
        "# @package _global_\n" + model + f"preset: bench_{task}\nscore_test: true\n{size}budget: 40\n"
        "trainer: {val_check_interval: 1000}\n"
        "hydra:\n  sweeper:\n    params:\n      optimizer: gemonn_plus,imp\n      seed: 0,1\n"
    ) for task, model, size in (
        ("mlp", "defaults:\n  - override /model: mlp\n", "hv_ref: [1.1, 2.5]\nmodel: {widths: [8]}\n"),
        ("lenet5", "defaults:\n  - override /model: lenet5\n", "hv_ref: [1.1, 2.5]\n"))},
    **{f"conf/experiment/bench_{task}_seeds{ours}.yaml": (
        "# @package _global_\n" + f"defaults:\n  - bench_{task}\n  - _self_\n"
        f"hydra:\n  sweeper:\n    params:\n      optimizer: {method}\n      seed: 3\n"
    ) for task in ("mlp", "lenet5") for ours, method in (("", "imp"), ("_ours", "gemonn_plus_rebase"))},
    **{f"conf/experiment/bench_small_{task}.yaml": (
        "# @package _global_\n" + f"defaults:\n  - override /model: {model}\n  - override /data: {data}\n"
        f"preset: bench_small_{task}\nscore_test: true\n{size}budget: 40\ntrainer: {{val_check_interval: 1000}}\n"
        "hydra:\n  sweeper:\n    params:\n      optimizer: imp\n      seed: 0,1\n"  # the candidate's: bench_small_<task>_ours
    ) for task, model, data, size in (
        ("digits", "mlp", "digits", "hv_ref: [1.1, 2.5]\nmodel: {widths: [8]}\n"),
        ("breast_cancer", "mlp", "breast_cancer", "hv_ref: [1.1, 2.5]\nmodel: {widths: [8]}\n"),
        ("wine", "mlp", "wine", "hv_ref: [1.1, 2.5]\nmodel: {widths: [8]}\n"),
        ("digits_ae", "tied_ae", "digits", "hv_ref: [1.1, 2.0]\nmodel: {inputs: 64, hidden: 4}\n"),
        ("mnist_mlp100", "mlp", "mnist5k", "hv_ref: [1.1, 2.5]\nmodel: {widths: [8]}\n"),
        ("mnist_ae200", "tied_ae", "mnist5k", "model: {hidden: 8}\n"))},
}


def _env() -> dict[str, str]:
    """This interpreter's scripts first on PATH, and no tracking store from the caller's environment."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _dvc(repo: Path, *args: str) -> str:
    # the first `dvc repro` runs every stage of the tiny pipeline, each a fresh process: this file's two tests took
    # 854 s on a quiet 2-core Intel Xeon (family 6 model 167), and past 900 s beside other work on the cores
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=_env(), capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _stale(repo: Path) -> set[str]:
    """The stages `dvc status` finds out of date (its JSON, on stdout)."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=repo, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout or "{}"))


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=ggevo", "-c", "user.email=ggevo@example.invalid", *args],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


SWEEPS = ("ablation_popsize", "ablation_sparsity", "ablation_plus", "ablation_plus_gradual", "ablation_plus_rebase",
          "ablation_plus_rebase_mlp",
          "compare_ae_small",
          "plus_vs_imp_small",
          "bench_mlp", "bench_lenet5", "bench_ae")
BENCH = {f"{stage}@{task}" for stage in ("bench", "bench_check", "bench_ours", "bench_check_ours")
         for task in ("mlp", "lenet5", "ae")}  # the baselines' sweeps and the candidate's, each task, seeds 0-1 and 2
COMPARE = {"compare@compare_ae_small", "compare@plus_vs_imp_small"}
SEEDS = {f"{stage}@{task}" for stage in ("bench_seeds", "bench_seeds_ours")
         for task in ("mlp", "lenet5")}  # the baselines and the candidate on more seeds
SMALL_TASKS = ("digits", "breast_cancer", "wine", "digits_ae", "mnist_mlp100", "mnist_ae200")  # tasks chosen on none
SMALL = {f"{stage}@{task}" for stage in ("bench_small", "bench_small_ours") for task in SMALL_TASKS}
ARCHIVE = ("compare_ae", "plus_vs_imp", "plus_trunk_vs_imp")  # frozen: never run
REPORTS = ("reports/ablation_popsize/table.md", "reports/ablation_popsize/hypervolume.png",
           "reports/ablation_popsize/fronts.png", "reports/ablation_popsize/loss_by_evaluations.png",
           "reports/ablation_sparsity/table.md", "reports/ablation_sparsity/fronts.png",
           "reports/ablation_plus/table.md", "reports/ablation_plus/hypervolume.png",
           "reports/ablation_plus_gradual/table.md", "reports/ablation_plus_gradual/accuracy.md",
           "reports/ablation_plus_rebase/table.md", "reports/ablation_plus_rebase/test_loss.md",
           "reports/ablation_plus_rebase/downstream.md", "reports/ablation_plus_rebase_mlp/accuracy.md",
           "reports/compare_ae_small/table.md", "reports/compare_ae_small/fronts.png",
           "reports/compare_ae_small/loss_by_evaluations.png", "reports/compare_ae_small/downstream.md",
           "reports/compare_ae_small/budgets.md", "reports/compare_ae_small/connections.png",
           "reports/compare_ae_small/reconstructions.png",
           "reports/plus_vs_imp_small/table.md", "reports/plus_vs_imp_small/fronts.png",
           "reports/dvc_default/summary.md", "reports/dvc_default/hypervolume.png",
           "reports/bench/leaderboard.md", "reports/bench/leaderboard.csv", "reports/bench/fronts_mlp.png",
           "reports/bench/fronts_ae.png", "reports/bench_seeds/paired.md", "reports/bench_seeds/paired_lenet5.png",
           "reports/bench_small/leaderboard.md",
           "reports/bench_small/fronts_small_digits_ae.png",
           "reports/compare_ae/table.md", "reports/plus_vs_imp/table.md", "reports/plus_trunk_vs_imp/table.md")


def _nothing_deleted(repo: Path) -> None:
    """Every report file is there, and git sees no tracked file deleted."""
    for path in REPORTS:
        assert (repo / path).is_file(), path
    deleted = [line for line in _git(repo, "status", "--porcelain").splitlines() if "D" in line[:2]]
    assert deleted == []


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("clone")
    for item in ("dvc.yaml", "conf", "src", "pyproject.toml"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / item)
    shutil.rmtree(repo / "src" / "ggevo.egg-info", ignore_errors=True)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    for path, text in TINY.items():
        (repo / path).write_text(text)
    data = (repo / "conf/data/mnist5k.yaml").read_text().replace("limit: null", "limit: 600")
    (repo / "conf/data/mnist5k.yaml").write_text(data)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")  # the project's plot template
    return repo


@pytest.fixture(scope="module")
def reproduced(repo) -> Path:
    """The tiny repository after its first ``dvc repro``."""
    prepared = _dvc(repo, "repro", "prepare")
    for name in ARCHIVE:  # the frozen stages' reports, committed as in the project (dvc repro never runs them)
        shutil.copytree(ROOT / "reports" / name, repo / "reports" / name)
    _dvc(repo, "commit", "-f", *(f"archive@{name}" for name in ARCHIVE))
    first = _dvc(repo, "repro")
    assert _ran(prepared) | _ran(first) == {
        "prepare", "train", "evaluate", "ablate@ablation_popsize", "ablate@ablation_sparsity", "ablate_plus",
        "ablate_plus_gradual", "ablate_plus_rebase", "ablate_plus_rebase_mlp", "stack",
        *COMPARE, "report", *BENCH, "leaderboard", *SEEDS, "leaderboard_seeds", *SMALL, "leaderboard_small"}
    return repo


@pytest.mark.slow
def test_repro_runs_everything_then_nothing_then_only_dependents(reproduced):
    repo = reproduced
    for path in ("reports/dvc_default/front.csv", "reports/dvc_default/metrics.json",
                 "reports/dvc_default/history.csv", "reports/dvc_default/run.json",
                 "reports/dvc_default/test_metrics.json", *REPORTS,
                 "reports/stacked_mnist5k/stack.md", "reports/stacked_mnist5k/stack_fronts.png",
                 *(f"reports/sweeps/{s}/sweep.json" for s in SWEEPS), "data/mnist5k.npz", "mlflow.db"):
        assert (repo / path).is_file(), path
    table = (repo / "reports/ablation_popsize/table.md").read_text()
    assert "pop_size=4" in table and "pop_size=6" in table
    compare = (repo / "reports/compare_ae_small/table.md").read_text()
    assert all(f"| optimizer={m} | 1 |" in compare for m in ("gemonn", "pymoo_nsga2", "adam"))
    record = json.loads((repo / "reports/sweeps/ablation_popsize/sweep.json").read_text())
    assert [j["settings"]["optimizer.pop_size"] for j in record["jobs"]] == ["4", "6"]
    for job in record["jobs"]:  # every job's front, metrics and history; no weights anywhere in the record
        assert {"front.csv", "metrics.json", "history.csv"} <= {p.name for p in (
            repo / "reports/sweeps/ablation_popsize" / job["name"]).iterdir()}
    assert not [p for s in SWEEPS for p in (repo / "reports/sweeps" / s).rglob("*model*")]
    board = (repo / "reports/bench/leaderboard.md").read_text()
    assert "## mlp" in board and "## lenet5" in board and "## ae" in board and "| density ≤ | gemonn_plus | imp |" in board
    small = (repo / "reports/bench_small/leaderboard.md").read_text()
    assert all(f"## small_{task}" in small for task in SMALL_TASKS)
    assert "| density ≤ | imp | gemonn_plus_rebase |" in small
    paired = (repo / "reports/bench_seeds/paired.md").read_text()  # seeds 0-1, 2 and 3 of the candidate and IMP
    assert "## mlp: gemonn_plus_rebase against each baseline" in paired and "(0, 1, 2, 3)" in paired

    metrics = _dvc(repo, "metrics", "show", "--json")  # the headline figures and the leaderboard
    for name in ("compare_ae_small/headline.json", "bench/leaderboard.json", "bench_seeds/paired.json",
                 "dvc_default/metrics.json"):
        assert name in metrics, name
    assert "mlp/gemonn_plus/cells_led" in metrics
    shown = _dvc(repo, "plots", "show", "-o", str(repo.parent / "plots_html"))
    page = (repo.parent / "plots_html" / "index.html").read_text()
    assert "compare_ae_small, final fronts" in page and "bench mlp, final fronts" in page, shown[-2000:]

    assert _ran(_dvc(repo, "repro")) == set()

    # an edited config file makes every stage that composes it stale, and only those (asked of `dvc status`:
    # re-running them all would re-run nearly the whole pipeline) ...
    gemonn = repo / "conf/optimizer/gemonn.yaml"
    text = gemonn.read_text()
    gemonn.write_text(text.replace("eta: 20.0", "eta: 15.0"))
    stale = _stale(repo)
    assert "prepare" not in stale
    assert {"train", "ablate@ablation_popsize", "ablate@ablation_sparsity", "ablate_plus", "stack"} <= stale
    gemonn.write_text(text)
    # ... and `dvc repro` runs exactly those, then what reads their outputs
    popsize = repo / "conf/experiment/ablation_popsize.yaml"
    popsize.write_text(popsize.read_text().replace("pop_size: 4,6", "pop_size: 4,8"))
    assert _ran(_dvc(repo, "repro")) == {"ablate@ablation_popsize", "report"}


@pytest.mark.slow
def test_a_fresh_clone_rebuilds_every_report_from_tracked_files(reproduced, tmp_path):
    """A clone holds what git holds: no MLflow store, no DVC cache. The report stage rebuilds every
    report from the sweep records there, a test metric that differs in its 8th digit does not touch it,
    and `dvc repro` to the end deletes nothing committed."""
    _git(reproduced, "add", "-A")
    _git(reproduced, "commit", "-qm", "tiny pipeline, reproduced")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(reproduced), str(clone))
    for absent in ("mlflow.db", "mlartifacts", ".dvc/cache", "data/mnist5k.npz", "reports/dvc_default/front.pt",
                   "multirun"):
        assert not (clone / absent).exists(), absent

    alone = _dvc(clone, "repro", "--single-item", "--force", "report")  # its inputs are tracked files only
    assert _ran(alone) == {"report"}
    assert _ran(_dvc(clone, "repro", "--single-item", "--force", "leaderboard")) == {"leaderboard"}  # so are these
    assert _ran(_dvc(clone, "repro", "--single-item", "--force", "leaderboard_small")) == {"leaderboard_small"}
    assert _ran(_dvc(clone, "repro", "--single-item", "--force", "leaderboard_seeds")) == {"leaderboard_seeds"}
    assert not (clone / "mlflow.db").exists() and not (clone / "mlartifacts").exists()  # no store was opened
    _nothing_deleted(clone)
    changed = [line[3:] for line in _git(clone, "status", "--porcelain").splitlines()]
    assert [p for p in changed if not p.endswith(".png")] == []  # the same tables from the same records

    second = _ran(_dvc(clone, "repro"))  # the cached outputs are missing: those stages run again
    assert {"prepare", "train", "evaluate", "stack", "report"} <= second
    assert not second & {"ablate@ablation_popsize", "ablate@ablation_sparsity", "ablate_plus", "ablate_plus_gradual",
                         "ablate_plus_rebase", "ablate_plus_rebase_mlp", *COMPARE, *BENCH, *SEEDS, *SMALL,
                         "leaderboard", "leaderboard_seeds", "leaderboard_small"}
    _nothing_deleted(clone)

    test_metrics = clone / "reports/dvc_default/test_metrics.json"
    values = json.loads(test_metrics.read_text())
    key = next(k for k, v in values.items() if isinstance(v, float) and v != 0)
    values[key] *= 1 + 3e-8  # as another CPU's float32 kernels round it
    test_metrics.write_text(json.dumps(values, indent=2) + "\n")
    third = _ran(_dvc(clone, "repro"))
    assert "report" not in third
    _nothing_deleted(clone)
