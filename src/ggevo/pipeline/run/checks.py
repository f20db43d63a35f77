"""Check the world before any compute: each failure is one line naming the key or path, and no
MLflow run has been opened yet.

The tracking store answers (``ggevo.pipeline.record.store``), the run folder and the artifact store can
be written, no other live run writes to the run folder, and a checkpoint to resume from loads, was
made under the same config and belongs to a run the store holds.

Runs whose process died without closing them (SIGKILL, a lost machine) would stay RUNNING in MLflow
for ever; a live run holds its run folder's lock (``RunFolderClaim``) until its process ends, so a
RUNNING run of this machine whose folder is free is dead: ``close_abandoned_runs`` closes it KILLED
with a ``ggevo.failure`` tag saying so, at the start of every run and in ``ggevo-report``.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from ggevo.lit.config_stamp import STAMP_KEY
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.paths import rooted
from ggevo.pipeline.record.recorder import close_run
from ggevo.pipeline.record.store import (check_artifact_store, check_store, experiment_artifact_location, open_store,
                                        tracking_uri, uri_key, writable)
from ggevo.pipeline.record.tracking import flatten_config

# what a resumed run must share with its checkpoint (where the data files live, and whether the
# kernel is compiled, may change)
_STAMPED = ("seed", "model.", "optimizer.", "data.")
_FREE = ("data.data_dir", "data.prepared", "optimizer.compile")


def config_stamp(cfg: DictConfig) -> dict[str, str]:
    """The flattened config keys that fix what a checkpoint's population means."""
    return {k: v for k, v in flatten_config(cfg).items() if k.startswith(_STAMPED) and k not in _FREE}


@dataclass
class Resume:
    """A checkpoint that loads and matches the config: its path, MLflow run and module state."""

    path: Path
    run_id: str | None
    state_dict: dict


def load_checkpoint(cfg: DictConfig) -> Resume | None:
    """``ckpt_path`` loaded and compared with the config (None when not resuming)."""
    if not cfg.get("ckpt_path"):
        return None
    path = rooted(cfg.ckpt_path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path: no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
            raise ValueError("not a Lightning checkpoint")
    except Exception as err:  # a corrupt, empty or truncated file raises whatever its reader meets
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"ckpt_path: {path} does not load ({type(err).__name__}: {first})") from None
    stamp, now = ckpt.get(STAMP_KEY), config_stamp(cfg)
    if stamp is not None and stamp != now:
        keys = sorted(k for k in set(stamp) | set(now) if stamp.get(k) != now.get(k))
        shown = ", ".join(f"{k}={stamp.get(k)} (now {now.get(k)})" for k in keys[:3])
        raise ConfigError(f"ckpt_path: {path} was made under another config: {shown}")
    return Resume(path, ckpt.get("ggevo", {}).get("mlflow_run_id"), ckpt["state_dict"])


def check_module_matches(resume: Resume | None, module: torch.nn.Module) -> None:
    """The checkpoint's weights fit the module built from the config (same names and shapes)."""
    if resume is None:
        return
    mine = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in resume.state_dict.items()}
    if mine != theirs:
        diff = sorted(set(mine.items()) ^ set(theirs.items()))[:2]
        raise ConfigError(f"ckpt_path: {resume.path} holds another network than the config builds "
                          f"(differs at {', '.join(f'{k} {s}' for k, s in diff)})")


def _lock_exclusively(fd: int) -> bool:
    """Whether the exclusive run lock on ``fd``'s folder was taken (False: another holds it)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


# a live run holds its folder for its whole life; ``close_abandoned_runs`` holds a dead run's folder for a moment
# while it closes that run, so a claim waits this long before it calls the folder in use
CLAIM_WAIT_S = 2.0


class RunFolderClaim:
    """An exclusive lock on a run folder itself (no file is written into it), held until ``close``
    (or the end of the process, however it ends), so two runs never write one folder's checkpoints
    and front over each other's; a folder another live run holds (still held after ``CLAIM_WAIT_S``) is a
    ConfigError naming ``key``."""

    def __init__(self, out: Path, key: str, wait: float = CLAIM_WAIT_S):
        self.fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
        deadline = time.monotonic() + wait
        while not _lock_exclusively(self.fd):
            if time.monotonic() >= deadline:
                os.close(self.fd)
                raise ConfigError(f"{key}: the run folder {out} is in use by another live run; "
                                  f"give this run its own: run_dir=<folder>")
            time.sleep(0.05)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1

    def __enter__(self) -> RunFolderClaim:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


RUN_DIR_TAG, HOST_TAG = "ggevo.run_dir", "ggevo.host"  # where a run's folder is, on which machine


def run_folder_tags(out: Path) -> dict[str, str]:
    """The tags by which ``close_abandoned_runs`` finds a run's folder later."""
    return {RUN_DIR_TAG: str(out.resolve()), HOST_TAG: socket.gethostname()}


def claim_if_free(folder: Path) -> RunFolderClaim | None:
    """``folder``'s claim when no live process holds it, at once (no wait); None when a live run holds it or the
    folder cannot be opened."""
    try:
        return RunFolderClaim(folder, "run_dir", wait=0.0)
    except (OSError, ConfigError):
        return None


def close_abandoned_runs(uri: str) -> list[str]:
    """RUNNING runs of this machine whose run folder no live process holds, closed KILLED; their ids.

    A run of another machine, or whose folder is gone, is left as it is: nothing here can tell. A run closes
    its MLflow run before it lets go of its folder, so a run listed RUNNING may have ended well by the time
    its folder is found free: each is closed only while its folder's lock is held here and a fresh read
    still says RUNNING (its owner gone without closing it), never over the status its owner gave it."""
    client = open_store(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    host, closed = socket.gethostname(), []
    for run in client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=5000):
        folder = run.data.tags.get(RUN_DIR_TAG)
        if not folder or run.data.tags.get(HOST_TAG) != host:
            continue
        claim = claim_if_free(Path(folder))
        if claim is None:  # a live run holds it
            continue
        with claim:
            if client.get_run(run.info.run_id).info.status != "RUNNING":  # closed by its owner meanwhile
                continue
            close_run(uri, run.info.run_id, "KILLED",
                      f"abandoned: its process ended without closing the run (its run folder {folder} is no longer held)")
            closed.append(run.info.run_id)
    return closed


def check_resumed_run(cfg: DictConfig, resume: Resume | None) -> None:
    """The run a checkpoint belongs to is in the tracking store the resumed run writes to."""
    if resume is None or resume.run_id is None:
        return
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(cfg)
    try:
        open_store(uri).get_run(resume.run_id)
    except MlflowException:
        raise ConfigError(f"ckpt_path: {resume.path} belongs to MLflow run {resume.run_id}, which the store {uri} "
                          f"({uri_key(cfg)}) does not hold: resume against the store that ran it") from None


def check_world(cfg: DictConfig, out: Path) -> tuple[Resume | None, RunFolderClaim]:
    """The store, the run folder (claimed for this run: close the returned claim to release it), the
    artifact store and the checkpoint, in that order; then the store's abandoned runs are closed."""
    check_store(cfg)
    key = "run_dir" if cfg.get("run_dir") else "hydra.run.dir"
    writable(out, key, "run folder")
    claim = RunFolderClaim(out, key)
    try:
        check_artifact_store(*experiment_artifact_location(cfg))
        resume = load_checkpoint(cfg)
        check_resumed_run(cfg, resume)
        for run_id in close_abandoned_runs(tracking_uri(cfg)):
            print(f"closed MLflow run {run_id} as KILLED: its process is gone")
        return resume, claim
    except BaseException:
        claim.close()
        raise
