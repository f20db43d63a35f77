"""Torch threads per job, so that parallel sweep jobs share the cores instead of oversubscribing them."""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig

from ggevo.pipeline.core.errors import ConfigError


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parallel_jobs() -> int:
    """How many jobs of this Hydra run execute at once on this machine: a multirun's joblib
    ``n_jobs`` (joblib's convention: -1 = all cores, -2 = all but one, …), else 1."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):  # not under Hydra (a test, a notebook)
        return 1
    n_jobs = hc.launcher.get("n_jobs") if hc.mode == RunMode.MULTIRUN else None
    if n_jobs is None:  # the basic launcher runs jobs one after another; ray/slurm jobs get their own CPUs
        return 1
    n_jobs = int(n_jobs)
    return max(1, n_jobs if n_jobs > 0 else cores() + 1 + n_jobs)


def job_threads(setting: object, jobs: int, available: int) -> int | None:
    """Threads for one job: ``setting`` if a positive int; for ``auto``, ``available // jobs`` (at least 1)
    when ``jobs`` run at once, else None (torch's default: every core)."""
    if setting == "auto":
        return max(1, available // jobs) if jobs > 1 else None
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ConfigError(f"threads: must be auto or a positive integer, got {setting!r}")
    return setting


def set_job_threads(cfg: DictConfig) -> int:
    """Apply ``cfg.threads`` to this process (see ``job_threads``); returns the thread count torch now uses."""
    jobs, available = parallel_jobs(), cores()
    threads = job_threads(cfg.get("threads", "auto"), jobs, available)
    if threads is not None:
        torch.set_num_threads(threads)
    if jobs > 1:
        print(f"torch threads: {torch.get_num_threads()} per job, {jobs} jobs at once on {available} cores")
    return torch.get_num_threads()
