"""Where the configs come from and where a run's files go: everything is rooted at the project, absolute,
so DVC copies and sweeps agree; outside a clone the project is the working directory."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parents[4]  # src/ggevo/pipeline/core/paths.py


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
    """The Hydra config folder: ``$GGEVO_CONF`` if set; else ``conf/`` of the project root when it has one,
    as a clone does, so edits there take effect; else the configs installed with the package
    (``ggevo.conf``, which pyproject.toml maps from ``conf/``). ``--config-dir DIR`` on the command line
    puts a folder of the user's own on Hydra's search path after whichever this is."""
    if os.environ.get("GGEVO_CONF"):
        path = Path(os.environ["GGEVO_CONF"])
        if not (path / "config.yaml").is_file():
            raise FileNotFoundError(f"no config.yaml in {path} (GGEVO_CONF)")
        return path.resolve()
    project = project_root() / "conf"
    for path in (project, packaged_config_dir()):
        if path is not None and (path / "config.yaml").is_file():
            return path.resolve()
    raise FileNotFoundError(f"no config.yaml in {project} nor in the installed package (ggevo.conf): run from the "
                            "project folder, reinstall ggevo or set GGEVO_CONF")


def packaged_config_dir() -> Path | None:
    """The folder of the configs installed with the package, ``ggevo/conf`` (an editable install maps it to
    the clone's ``conf/``); None in an install made before they shipped with it."""
    try:
        return Path(str(resources.files("ggevo.conf")))
    except ModuleNotFoundError:
        return None


def rooted(path: str | os.PathLike) -> Path:
    """``path`` made absolute against the project root (an absolute path stays as it is)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else an absolute SQLite store ``mlflow.db`` at the project root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"
