"""The MLflow tracking store, checked before any compute and opened safely by many runs at once.

``check_store`` answers in seconds: a SQLite store's folder must exist (it is never created
silently), a server must answer within ``TIMEOUT_S`` (MLflow's own client retries for minutes).
Every client on it comes from ``open_store``.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.paths import default_tracking_uri
from ggevo.pipeline.record.tracking import EXPERIMENT_KIND

TIMEOUT_S = 5.0


def tracking_uri(cfg: DictConfig) -> str:
    """``logger.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the project's SQLite store."""
    return cfg.logger.get("tracking_uri") or default_tracking_uri()


def uri_key(cfg: DictConfig) -> str:
    """The name of the setting the tracking URI came from, for error messages."""
    if cfg.logger.get("tracking_uri"):
        return "logger.tracking_uri"
    return "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "tracking store"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for any other store)."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def artifact_location(cfg: DictConfig) -> str | None:
    """Where a new experiment keeps artifacts: ``logger.artifact_location``, else for a SQLite store the
    folder ``mlartifacts`` beside its database file, else the tracking server's default."""
    location = cfg.logger.get("artifact_location")
    db = sqlite_path(tracking_uri(cfg))
    if location is None and db is not None:
        location = (db.parent / "mlartifacts").as_uri()
    return location


def _check_server(uri: str, key: str) -> None:
    probe = uri.rstrip("/") + "/health"
    try:
        urllib.request.urlopen(probe, timeout=TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered; a server without /health is still a server
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ConfigError(f"{key}: no MLflow server answers at {uri} within {TIMEOUT_S:.0f} s ({reason})") from None


def check_store(cfg: DictConfig) -> None:
    """The tracking store can be used: a SQLite file's folder exists and is writable, a server answers."""
    uri, key = tracking_uri(cfg), uri_key(cfg)
    db = sqlite_path(uri)
    if db is not None:
        if not db.is_absolute():
            raise ConfigError(f"{key}: a SQLite store needs an absolute path (sqlite:////abs/path.db), got {uri}")
        if not db.parent.is_dir():
            raise ConfigError(f"{key}: the folder {db.parent} of the SQLite store does not exist (create it first)")
        if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
            raise ConfigError(f"{key}: the SQLite store {db} is not writable")
    elif urlparse(uri).scheme in ("http", "https"):
        _check_server(uri, key)


def writable(folder: Path, key: str, what: str) -> None:
    """``folder`` exists or can be made, and a file can be written in it (checked by writing one)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as err:
        raise ConfigError(f"{key}: the {what} {folder} is not writable ({err.strerror or err})") from None


def check_artifact_store(location: str | None, key: str = "logger.artifact_location") -> None:
    """A local artifact store (``file:`` URI or path) can be written; a remote one answers for itself."""
    if location is None:
        return
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        writable(Path(parsed.path if parsed.scheme else location), key, "artifact store")


def open_store(uri: str) -> MlflowClient:
    """A client on the store ``uri``. A SQLite schema is created or upgraded under a file lock beside
    the database, so runs starting together on a fresh store cannot both migrate it (MLflow's
    migration run twice at once left stores corrupt for good)."""
    db = sqlite_path(uri)
    if db is None:
        return MlflowClient(uri)
    with FileLock(str(db) + ".lock", timeout=600):
        client = MlflowClient(uri)  # builds the store: creates or migrates the schema
        client.search_experiments(max_results=1)
    return client


def experiment_artifact_location(cfg: DictConfig) -> tuple[str | None, str]:
    """Where this run's artifacts would go (the experiment's location if it exists) and the setting naming it."""
    exp = open_store(tracking_uri(cfg)).get_experiment_by_name(str(cfg.logger.experiment_name))
    if exp is None:
        return artifact_location(cfg), "logger.artifact_location"
    return exp.artifact_location, f"experiment '{exp.name}' artifact location"


def ensure_experiment(client, name: str, location: str | None) -> str:
    """The id of experiment ``name``, created if new (another run may create it at the same moment);
    every experiment ggevo records into carries ``EXPERIMENT_KIND`` (an older one without a kind gets
    it; a kind a user set stays)."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
        except MlflowException:  # another run created it in the meantime
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    for key, value in EXPERIMENT_KIND.items():
        if key not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id
