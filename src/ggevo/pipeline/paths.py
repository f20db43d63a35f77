"""Where a run's files go: everything is rooted at the project, absolute, so DVC copies and sweeps agree."""

from __future__ import annotations

import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parents[3]


def project_root() -> Path:
    """``$DVC_ROOT`` or ``$GGEVO_ROOT`` if set, else the nearest folder upward holding ``conf/config.yaml``,
    else the source checkout this package was installed from, else the working directory."""
    for var in ("GGEVO_ROOT", "DVC_ROOT"):
        if os.environ.get(var):
            return Path(os.environ[var]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "conf" / "config.yaml").is_file():
            return folder
    if (_SOURCE_ROOT / "conf" / "config.yaml").is_file():
        return _SOURCE_ROOT
    return here


def config_dir() -> Path:
    path = Path(os.environ.get("GGEVO_CONF", project_root() / "conf"))
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"no config.yaml in {path}: run from the project folder or set GGEVO_CONF")
    return path.resolve()


def rooted(path: str | os.PathLike) -> Path:
    """``path`` made absolute against the project root (an absolute path stays as it is)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else an absolute SQLite store ``mlflow.db`` at the project root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"
