"""``ggevo-evaluate RUN_DIR…``: score a finished run's front on the held-out test split (DVC ``evaluate``).

With ``--downstream``, also the downstream accuracy (CCR) of a chosen member's encoder
(``--select knee|best|density<=B``), fine-tuned with a softmax classifier over several seeds; with
``--probe``, a linear probe of every member's frozen encoder features (``report/probe.py``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

from ggevo.ea.front import BUDGETS, within
from ggevo.pipeline.core.files import write_atomically, write_json
from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.record.recorder import add_to_run
from ggevo.pipeline.record.store import tracking_uri
from ggevo.pipeline.report.probe import PROBE_C, check_probe_c, linear_probe
from ggevo.pipeline.run.build import build
from ggevo.pipeline.run.cli import USER_ERRORS, fail
from ggevo.pipeline.score.artifacts import choose_member, read_run, split_scores
from ggevo.pipeline.score.downstream import ClassifierRecipe, downstream_record


def load_run(run_dir: Path):
    """``(cfg, module, data, front)`` of the finished run in ``run_dir``; ``front`` holds ``X``, ``F``."""
    cfg, front, _ = read_run(run_dir)
    module, data = build(cfg)
    return cfg, module, data, front


def _log(cfg, front: dict, metrics: dict[str, float], *artifacts: Path) -> None:
    if front.get("mlflow_run_id"):
        add_to_run(tracking_uri(cfg), front["mlflow_run_id"], metrics, files=list(artifacts))


def write_columns(path: Path, columns: dict[str, list[float]]) -> None:
    """A CSV of ``columns`` (name -> one value per front member), 8 significant digits, written atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            w.writerows([f"{v:.8g}" for v in row] for row in zip(*columns.values()))

    write_atomically(path, write)


def best_under_budgets(name: str, values: torch.Tensor, density: torch.Tensor, higher: bool) -> dict[str, float]:
    """``{name}_at_density_{B}``: the best of ``values`` (one per member) among the members within each budget
    B of ``BUDGETS`` (``front.within``), the highest where ``higher``, else the lowest; budgets with none left out."""
    out = {}
    for budget in BUDGETS:
        ok = within(density, budget)
        if ok.any():
            out[f"{name}_at_density_{budget}"] = float(values[ok].max() if higher else values[ok].min())
    return out


def evaluate_run(run_dir: Path) -> dict[str, float]:
    """Test loss (and accuracy, for a classifier) of every front member of the run in ``run_dir``;
    writes ``evaluation.csv`` and ``test_metrics.json`` there and logs both to the run's MLflow record."""
    cfg, module, data, front = load_run(run_dir)
    test = split_scores(module.evaluator, front["X"], data, "test", module.task)
    table = read_front_csv(run_dir / "front.csv")
    columns = {"density": table["density"], "train_loss": table["train_loss"], "val_loss": table["val_loss"],
               **{f"test_{k}": v.tolist() for k, v in test.items()}, "knee": table["knee"]}
    write_columns(run_dir / "evaluation.csv", columns)
    k = choose_member(table, "knee")
    density = torch.tensor(table["density"], dtype=torch.float64)
    metrics = {}
    for name, values in test.items():
        metrics[f"test/{name}_knee"] = float(values[k])
        pick = values.argmax() if name == "accuracy" else values.argmin()
        metrics[f"test/{name}_best"] = float(values[pick])
        metrics[f"test/density_at_best_{name}"] = float(density[int(pick)])
        metrics |= best_under_budgets(f"test/{name}", values, density, higher=name == "accuracy")
    write_json(run_dir / "test_metrics.json", metrics)
    _log(cfg, front, metrics, run_dir / "evaluation.csv")
    return metrics


def evaluate_downstream(run_dir: Path, select: str, seeds: list[int], recipe: ClassifierRecipe) -> dict[str, float]:
    """CCR of the member ``select`` picks; writes ``downstream.json`` and logs ``downstream/*`` to MLflow."""
    cfg, module, data, front = load_run(run_dir)
    table = read_front_csv(run_dir / "front.csv")
    metrics, record = downstream_record(module.evaluator.flat.module, front["X"], table, data, select, seeds, recipe)
    write_json(run_dir / "downstream.json", record)
    _log(cfg, front, metrics, run_dir / "downstream.json")
    return metrics


def evaluate_probe(run_dir: Path, C: float = PROBE_C) -> dict[str, float]:
    """Linear-probe accuracy of every front member's encoder; writes ``probe.csv`` (a row per member, as in
    ``front.csv``) and logs ``probe/*`` (the knee's, and the best test accuracy under each density budget, as
    ``evaluate_run`` reports the test split) with the file to the run's MLflow record."""
    cfg, module, data, front = load_run(run_dir)
    table = read_front_csv(run_dir / "front.csv")
    k = len(table["density"])

    def progress(i: int, scores: dict[str, float]) -> None:
        print(f"probe {i + 1}/{k} (density {table['density'][i]:.4g}): train accuracy "
              f"{scores['train_accuracy']:.4f}, test accuracy {scores['test_accuracy']:.4f}", flush=True)

    probe = linear_probe(module.evaluator.flat.module, front["X"], data, C, progress)
    columns = {"density": table["density"], "train_loss": table["train_loss"],
               "probe_train_accuracy": probe["train_accuracy"], "probe_test_accuracy": probe["test_accuracy"]}
    write_columns(run_dir / "probe.csv", columns)
    test = torch.tensor(probe["test_accuracy"], dtype=torch.float64)
    density = torch.tensor(table["density"], dtype=torch.float64)
    metrics = {"probe/C": C, "probe/test_accuracy_knee": float(test[choose_member(table, "knee")]),
               **best_under_budgets("probe/test_accuracy", test, density, higher=True)}
    _log(cfg, front, metrics, run_dir / "probe.csv")
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description="Score finished runs' fronts on the test split.")
    ap.add_argument("run_dirs", nargs="+", type=Path, help="run folders written by ggevo-train (run_dir=...)")
    ap.add_argument("--downstream", action="store_true",
                    help="also the downstream accuracy (CCR) of a chosen member's encoder + softmax classifier")
    ap.add_argument("--select", default="knee", help="knee | best | density<=B (default: knee)")
    ap.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds (default 3)")
    ap.add_argument("--epochs", type=int, default=ClassifierRecipe.epochs)
    ap.add_argument("--lr", type=float, default=ClassifierRecipe.lr)
    ap.add_argument("--momentum", type=float, default=ClassifierRecipe.momentum)
    ap.add_argument("--release-zeros", action="store_true", help="let fine-tuning move the encoder's zeros")
    ap.add_argument("--probe", action="store_true",
                    help="also a linear probe (logistic regression) on every member's frozen encoder features")
    ap.add_argument("--probe-c", type=float, default=PROBE_C,
                    help=f"the probe's inverse L2 strength (default {PROBE_C})")
    args = ap.parse_args()
    recipe = ClassifierRecipe(epochs=args.epochs, lr=args.lr, momentum=args.momentum, keep_zeros=not args.release_zeros)
    try:
        if args.probe:
            check_probe_c(args.probe_c)
        for run_dir in args.run_dirs:
            if args.downstream:  # a selection that picks nothing fails before anything is written
                choose_member(read_front_csv(run_dir.resolve() / "front.csv"), args.select)
            metrics = evaluate_run(run_dir.resolve())
            if args.downstream:
                metrics |= evaluate_downstream(run_dir.resolve(), args.select, list(range(args.seeds)), recipe)
            if args.probe:
                metrics |= evaluate_probe(run_dir.resolve(), args.probe_c)
            print(f"{run_dir}: " + ", ".join(f"{k} {v:.5g}" for k, v in metrics.items() if "seed" not in k))
    except USER_ERRORS as err:
        fail(err)


if __name__ == "__main__":
    main()
