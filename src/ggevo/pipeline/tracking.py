"""MLflow for every run: flattened config as params, provenance tags, metrics, artifacts."""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import MLFlowLogger

from ggevo.pipeline.paths import default_tracking_uri, project_root, rooted

_VERSIONED = ("ggevo", "torch", "pytorch-lightning", "pymoo", "mlflow", "hydra-core", "numpy")


def flatten_config(cfg: DictConfig) -> dict[str, str]:
    """The resolved config as ``{"optimizer.pop_size": "50", …}``."""
    out: dict[str, str] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_tags(cfg: DictConfig) -> dict[str, str]:
    tags = {"git_commit": git_commit(), "dataset": str(cfg.data.name),
            "experiment_preset": str(cfg.get("experiment_name") or "default")}
    for pkg in _VERSIONED:
        try:
            tags[f"version.{pkg}"] = version(pkg)
        except PackageNotFoundError:
            tags[f"version.{pkg}"] = "absent"
    return tags


def make_logger(cfg: DictConfig, run_id: str | None = None) -> MLFlowLogger:
    """An MLFlowLogger on ``logger.tracking_uri`` (default: the project's SQLite store)."""
    lc = cfg.logger
    uri = lc.get("tracking_uri") or default_tracking_uri()
    artifacts = lc.get("artifact_location")
    if artifacts is None and uri.startswith("sqlite:///") and not lc.get("tracking_uri"):
        artifacts = rooted("mlartifacts").as_uri()
    return MLFlowLogger(
        experiment_name=lc.experiment_name,
        run_name=lc.get("run_name"),
        tracking_uri=uri,
        tags=None if run_id else run_tags(cfg),
        artifact_location=artifacts,
        run_id=run_id,
    )
