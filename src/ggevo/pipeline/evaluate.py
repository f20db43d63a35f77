"""``ggevo-evaluate RUN_DIR…``: score a finished run's front on the held-out test split (DVC ``evaluate``)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import mlflow
import torch
from omegaconf import OmegaConf

from ggevo.cli import USER_ERRORS, fail
from ggevo.ea.evaluate import dataset_losses
from ggevo.ea.front import knee
from ggevo.pipeline.artifacts import read_front_csv
from ggevo.pipeline.tracking import tracking_uri
from ggevo.pipeline.train import build


def evaluate_run(run_dir: Path) -> dict[str, float]:
    """Test loss of every front member of the run in ``run_dir``; writes ``evaluation.csv`` and
    ``test_metrics.json`` there and logs both to the run's MLflow record."""
    for name in ("config.yaml", "front.pt", "front.csv"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir / name} is missing: is {run_dir} a finished ggevo-train run folder?")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    module, data = build(cfg)
    front = torch.load(run_dir / "front.pt", weights_only=False)
    X, F = front["X"], front["F"]
    batches = data.batches("test")
    test = dataset_losses(module.evaluator, X, lambda: batches)
    table = read_front_csv(run_dir / "front.csv")
    k = knee(F)
    rows = list(zip(table["density"], table["train_loss"], table["val_loss"], test.tolist(), table["knee"]))
    with open(run_dir / "evaluation.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("density", "train_loss", "val_loss", "test_loss", "knee"))
        w.writerows([f"{v:.8g}" for v in row] for row in rows)
    density = F[:, 0].double()
    metrics = {"test/loss_knee": float(test[k]), "test/loss_best": float(test.min()),
               "test/density_at_best": float(density[int(test.argmin())])}
    for budget in (0.1, 0.2):
        ok = density <= budget
        if ok.any():
            metrics[f"test/loss_at_density_{budget}"] = float(test[ok].min())
    (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    run_id = front.get("mlflow_run_id")
    if run_id:
        client = mlflow.tracking.MlflowClient(tracking_uri(cfg))
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        client.log_artifact(run_id, str(run_dir / "evaluation.csv"))
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description="Score finished runs' fronts on the test split.")
    ap.add_argument("run_dirs", nargs="+", type=Path, help="run folders written by ggevo-train (run_dir=...)")
    args = ap.parse_args()
    try:
        for run_dir in args.run_dirs:
            metrics = evaluate_run(run_dir.resolve())
            print(f"{run_dir}: " + ", ".join(f"{k} {v:.5g}" for k, v in metrics.items()))
    except USER_ERRORS as err:
        fail(err)


if __name__ == "__main__":
    main()
