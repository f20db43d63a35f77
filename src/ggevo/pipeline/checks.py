"""Check the world before any compute: each failure is one line naming the key or path, and no
MLflow run has been opened yet.

The tracking store answers (``ggevo.pipeline.store``), the run folder and the artifact store can
be written, no other live run writes to the run folder, and a checkpoint to resume from loads and was
made under the same config.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from ggevo.lit.config_stamp import STAMP_KEY
from ggevo.pipeline.paths import rooted
from ggevo.pipeline.recorder import experiment_artifact_location
from ggevo.pipeline.store import check_artifact_store, check_store, writable
from ggevo.pipeline.tracking import flatten_config
from ggevo.pipeline.validate import ConfigError

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


class RunFolderClaim:
    """An exclusive lock on a run folder itself (no file is written into it), held until ``close``
    (or the end of the process, however it ends), so two runs never write one folder's checkpoints
    and front over each other's; a folder another live run holds is a ConfigError naming ``key``."""

    def __init__(self, out: Path, key: str):
        self.fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise ConfigError(f"{key}: the run folder {out} is in use by another live run; "
                              f"give this run its own: run_dir=<folder>") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1

    def __enter__(self) -> RunFolderClaim:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_world(cfg: DictConfig, out: Path) -> tuple[Resume | None, RunFolderClaim]:
    """The store, the run folder (claimed for this run: close the returned claim to release it), the
    artifact store and the checkpoint, in that order."""
    check_store(cfg)
    key = "run_dir" if cfg.get("run_dir") else "hydra.run.dir"
    writable(out, key, "run folder")
    claim = RunFolderClaim(out, key)
    try:
        check_artifact_store(*experiment_artifact_location(cfg))
        return load_checkpoint(cfg), claim
    except BaseException:
        claim.close()
        raise
