"""``ggevo-export RUN_DIR``: one front member as a standalone PyTorch model.

Writes, into ``--out`` (default ``RUN_DIR/export``):
- ``model.pt`` — ``{"model": <the model's config, with _target_>, "task": ..., "state_dict": ...}``,
  the dense weights with their zeros; ``load_exported`` rebuilds the ``nn.Module`` from it;
- ``model_sparse.pt`` — the same tensors, each weight matrix (2 or more dimensions) as a
  ``torch.sparse_coo_tensor`` holding exactly its nonzeros, vectors dense;
- ``model.json`` — the selection rule, the member's density and nonzero count, and its logged
  metrics (the row of ``front.csv``).

With ``--register NAME`` the member is also logged to its run as an MLflow model
(``mlflow.pytorch.log_model``: the pickled ``nn.Module`` with its zeros, an input example of two test
inputs and the signature inferred from it) and registered as a new version of the registered model
NAME, with ``--alias`` (default ``champion``) pointing at it:
``mlflow.pytorch.load_model("models:/NAME@champion")`` then gives the network back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from ggevo.ea.flat import FlatParams
from ggevo.lit.tasks import model_task
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.files import save_torch, write_json
from ggevo.pipeline.record.models import log_model_to_run, register_model
from ggevo.pipeline.record.recorder import add_to_run
from ggevo.pipeline.record.store import tracking_uri
from ggevo.pipeline.run.build import build_model
from ggevo.pipeline.run.cli import USER_ERRORS, fail
from ggevo.pipeline.score.artifacts import choose_member, read_run


def sparse_form(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weight matrices as coalesced COO tensors of their nonzeros; vectors (biases) as they are."""
    return {k: v.to_sparse().coalesce() if v.dim() >= 2 else v for k, v in state.items()}


def load_exported(path: Path | str) -> nn.Module:
    """The exported model, rebuilt from its config and loaded with its weights (zeros included)."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(saved["model"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def export_member(run_dir: Path, select: str = "knee", out: Path | None = None) -> dict:
    """Export the member ``select`` picks (``knee``, ``best``, ``density<=B``); returns the sidecar record."""
    cfg, front, table = read_run(run_dir)
    i = choose_member(table, select)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    task = model_task(model_cfg)
    model_cfg.pop("task", None)
    model = build_model(model_cfg)
    FlatParams(model).load_(front["X"][i])
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = out or run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    save_torch(out / "model.pt", {"model": model_cfg, "task": task, "state_dict": state})
    save_torch(out / "model_sparse.pt", sparse_form(state))
    flat = front["X"][i]
    record = {"run_dir": run_dir.name, "select": select, "member": i, "task": task,
              "model": model_cfg["_target_"], "parameters": int(flat.numel()),
              "nonzeros": int(torch.count_nonzero(flat)), "density": float(table["density"][i]),
              "metrics": {k: v[i] for k, v in table.items() if k != "knee"}}
    write_json(out / "model.json", record)
    if front.get("mlflow_run_id"):
        add_to_run(tracking_uri(cfg), front["mlflow_run_id"],
                   files=[out / name for name in ("model.pt", "model_sparse.pt", "model.json")],
                   artifact_path=f"export/{select}")
    return record


def register_member(run_dir: Path, name: str, select: str = "knee", alias: str = "champion",
                    out: Path | None = None) -> dict:
    """Export the member ``select`` picks, log it to its MLflow run as a PyTorch model and register it as
    a new version of ``name`` with ``alias``; returns the export record with ``model_uri`` and ``version``."""
    from ggevo.pipeline.run.build import build_data

    record = export_member(run_dir, select, out)
    out = out or run_dir / "export"
    cfg, front, _ = read_run(run_dir)
    run_id = front.get("mlflow_run_id")
    if not run_id:
        raise ConfigError(f"--register: {run_dir} was not recorded in MLflow (front.pt names no run): nothing to attach "
                          f"the model to")
    model = load_exported(out / "model.pt")
    example = build_data(cfg).batches("test")[0][0][:2].numpy()
    uri = tracking_uri(cfg)
    logged = log_model_to_run(uri, run_id, model, f"member-{select.replace('<=', '-le-')}", example)
    version = register_model(uri, logged, name, alias,
                             {"ggevo.select": select, "ggevo.density": f"{record['density']:.6g}"})
    return record | {"model_uri": f"models:/{name}@{alias}", "version": version, "logged": logged}


def main() -> None:
    ap = argparse.ArgumentParser(description="Export one front member as a standalone PyTorch model.")
    ap.add_argument("run_dir", type=Path, help="a run folder written by ggevo-train")
    ap.add_argument("--select", default="knee", help="knee | best | density<=B (default: knee)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/export)")
    ap.add_argument("--register", metavar="NAME", default=None,
                    help="also log the member to its MLflow run and register it in the model registry as NAME")
    ap.add_argument("--alias", default="champion", help="the registered version's alias (default: champion)")
    args = ap.parse_args()
    try:
        if args.register:
            record = register_member(args.run_dir.resolve(), args.register, args.select, args.alias, args.out)
        else:
            record = export_member(args.run_dir.resolve(), args.select, args.out)
    except USER_ERRORS as err:
        fail(err)
    if args.register:
        print(f"registered {record['model_uri']} (version {record['version']}): "
              f"mlflow.pytorch.load_model(\"{record['model_uri']}\")")
    print(f"exported member {record['member']} ({args.select}): density {record['density']:.4f}, "
          f"{record['nonzeros']} of {record['parameters']} parameters nonzero, "
          f"train loss {record['metrics']['train_loss']:.5g} -> {args.out or args.run_dir / 'export'}")


if __name__ == "__main__":
    main()
