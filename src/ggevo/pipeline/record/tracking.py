"""What a run's record holds besides its results: the flattened config as params, provenance tags."""

from __future__ import annotations

import os
import subprocess
from importlib.metadata import PackageNotFoundError, version

from omegaconf import DictConfig, OmegaConf

from ggevo.pipeline.core.paths import project_root

PARENT_ENV = "GGEVO_SWEEP_PARENT"  # the multirun's parent run id, set by pipeline.team.sweep

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
    commit = git_commit()
    tags = {"git_commit": commit, "dataset": str(cfg.data.name), "ggevo.role": "train", "pid": str(os.getpid()),
            "experiment_preset": str(cfg.get("preset") or "default"),
            # MLflow's own provenance tags, which its UI shows as the run's source and commit
            "mlflow.source.name": "ggevo-train", "mlflow.source.type": "LOCAL", "mlflow.source.git.commit": commit}
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
