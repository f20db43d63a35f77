"""MLflow for every run: flattened config as params, provenance tags, metrics, artifacts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from importlib.metadata import PackageNotFoundError, version

import mlflow
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import MLFlowLogger

from ggevo.pipeline.paths import default_tracking_uri, project_root

PARENT_ENV = "GGEVO_SWEEP_PARENT"  # the multirun's parent run id, set by pipeline.sweep

# MLflow 3 tells model-training experiments from GenAI ones by this tag (3.17's UI decides by its
# "Model training" switch or ?workflowType=machine_learning in the address instead)
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

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
    tags = {"git_commit": git_commit(), "dataset": str(cfg.data.name), "ggevo.role": "train", "pid": str(os.getpid()),
            "experiment_preset": str(cfg.get("experiment_name") or "default")}
    parent = cfg.logger.get("parent_run_id") or sweep_parent()
    if parent:
        tags["mlflow.parentRunId"] = parent
    tags.update({f"choice.{group}": str(choice) for group, choice in hydra_choices().items()})
    for pkg in _VERSIONED:
        try:
            tags[f"version.{pkg}"] = version(pkg)
        except PackageNotFoundError:
            tags[f"version.{pkg}"] = "absent"
    return tags


def hydra_choices() -> dict[str, str]:
    """The config-group options Hydra composed this run from (``optimizer: adam``, …), if under Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choices = HydraConfig.get().runtime.choices
    except ValueError:
        return {}
    return {k: v for k, v in choices.items() if not k.startswith("hydra") and v is not None}


def sweep_parent() -> str | None:
    """The parent run of the Hydra multirun this job belongs to, if any."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return None
    except ValueError:  # not running under Hydra
        return None
    return os.environ.get(PARENT_ENV)


def tracking_uri(cfg: DictConfig) -> str:
    """``logger.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the project's SQLite store."""
    return cfg.logger.get("tracking_uri") or default_tracking_uri()


def artifact_location(cfg: DictConfig) -> str | None:
    """Where a new experiment keeps artifacts: ``logger.artifact_location``, else for a SQLite store the
    folder ``mlartifacts`` beside its database file, else the tracking server's default."""
    location = cfg.logger.get("artifact_location")
    uri = tracking_uri(cfg)
    if location is None and uri.startswith("sqlite:///"):
        location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return location


def ensure_experiment(client: mlflow.tracking.MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created if new; every experiment ggevo records into carries
    ``EXPERIMENT_KIND`` (an older one without a kind gets it)."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location, tags=EXPERIMENT_KIND)
        except mlflow.exceptions.MlflowException:  # a parallel job created it first
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    for key, value in EXPERIMENT_KIND.items():
        if key not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


def make_logger(cfg: DictConfig, run_id: str | None = None) -> MLFlowLogger:
    """An MLFlowLogger on ``logger.tracking_uri`` (default: the project's SQLite store)."""
    ensure_experiment(mlflow.tracking.MlflowClient(tracking_uri(cfg)), cfg.logger.experiment_name,
                      artifact_location(cfg))
    return MLFlowLogger(
        experiment_name=cfg.logger.experiment_name,
        run_name=cfg.logger.get("run_name"),
        tracking_uri=tracking_uri(cfg),
        tags=None if run_id else run_tags(cfg),
        artifact_location=artifact_location(cfg),
        run_id=run_id,
    )
