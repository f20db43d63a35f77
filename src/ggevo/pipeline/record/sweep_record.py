"""A sweep's record: everything its report draws, as small files DVC tracks and git holds.

``reports/sweeps/<preset>/`` (the DVC stages ``ablate``, ``ablate_plus``, ``compare``)::

    sweep.json              the index: preset, the MLflow parent run, the swept keys, and per job its
                            name (its folder under the multirun's folder: Hydra's job number), MLflow run,
                            status, seed and swept settings
    <job>/metrics.json      final metrics (downstream accuracy among them), as in the run folder
    <job>/front.csv         the final front
    <job>/history.csv       each generation's status: hypervolume, evaluations, loss/min, …
    <job>/downstream.json   where the run measured downstream accuracy
    <job>/reconstructions.pt, <job>/connections.pt
                            for the first job of each setting only (the report pictures one job per
                            setting): its reconstructions record, and its knee model's first-layer
                            connections as a bit-packed mask (no weights)

Two sources write it, both through ``write_record``: a multirun's run folders (``from_run_folders``,
called by the Hydra callback with ``sweep_record=...``) and an MLflow parent run
(``ggevo.pipeline.record.sweep_mlflow``, for ``ggevo-report --parent``). ``read_record`` reads it back;
the report needs nothing else, so ``dvc repro`` rebuilds it on any clone.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from ggevo.pipeline.core.files import Writer, write_atomically
from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.record.history import HISTORY, History, read_history_csv
from ggevo.pipeline.record.recorder import RUN_JSON

INDEX = "sweep.json"
METRICS, FRONT, DOWNSTREAM = "metrics.json", "front.csv", "downstream.json"
RECONSTRUCTIONS, CONNECTIONS = "reconstructions.pt", "connections.pt"
COPIED = (METRICS, FRONT, HISTORY, DOWNSTREAM, RECONSTRUCTIONS)  # taken from a run folder as they are
PICTURES = (RECONSTRUCTIONS, CONNECTIONS)  # kept for the first job of each setting only

Setting = tuple[tuple[str, str], ...]


@dataclass
class JobSource:
    """One job as a source hands it to ``write_record``: who it is, and a writer for each record file it has."""

    name: str
    mlflow_run_id: str | None
    status: str
    seed: str
    settings: dict[str, str]
    files: dict[str, Writer] = field(default_factory=dict)


@dataclass
class Job:
    """One job read back from a record (``folder`` is its folder in the record)."""

    name: str
    mlflow_run_id: str | None
    status: str
    seed: str
    settings: dict[str, str]
    folder: Path

    def file(self, name: str) -> Path | None:
        path = self.folder / name
        return path if path.is_file() else None

    @cached_property
    def metrics(self) -> dict[str, float]:
        path = self.file(METRICS)
        return json.loads(path.read_text()) if path else {}

    @cached_property
    def history(self) -> History:
        path = self.file(HISTORY)
        return read_history_csv(path) if path else {}

    @cached_property
    def front(self) -> dict[str, list[float]] | None:
        path = self.file(FRONT)
        return read_front_csv(path) if path else None


@dataclass
class SweepRecord:
    folder: Path
    preset: str
    parent_run_id: str | None
    swept: list[str]
    jobs: list[Job]


def setting_of(settings: dict[str, str], swept: Iterable[str]) -> Setting:
    """A job's setting: its values of the swept keys other than ``seed`` (the report pools seeds)."""
    return tuple((k, settings.get(k, "?")) for k in swept if k != "seed")


def group_jobs(jobs: list, swept: Iterable[str]) -> dict[Setting, list]:
    """Jobs (``Job`` or ``JobSource``) by setting, settings and jobs in the order they come."""
    swept = list(swept)
    groups: dict[Setting, list] = defaultdict(list)
    for job in jobs:
        groups[setting_of(job.settings, swept)].append(job)
    return dict(groups)


def job_order(name: str) -> tuple:
    """Hydra's job numbers in numeric order (``2`` before ``10``), other names after, by name."""
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


# ---------------------------------------------------------------------- writing
def write_record(folder: Path, preset: str, parent_run_id: str | None, swept: list[str],
                 jobs: list[JobSource]) -> Path:
    """The record of ``jobs`` written into a fresh folder that then replaces ``folder`` whole (a stale job
    of an earlier sweep never survives); every file atomically, the index last. Returns the index."""
    tmp, old = folder.with_name(f".{folder.name}.tmp"), folder.with_name(f".{folder.name}.old")
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    jobs = sorted(jobs, key=lambda j: job_order(j.name))
    pictured = set()
    for group in group_jobs(jobs, swept).values():
        for name in PICTURES:
            first = next((j for j in group if name in j.files), None)
            if first is not None:
                pictured.add((first.name, name))
    for job in jobs:
        for name, writer in job.files.items():
            if name in PICTURES and (job.name, name) not in pictured:
                continue
            path = tmp / job.name / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, writer)
    index = {"experiment_preset": preset, "parent_run_id": parent_run_id, "swept": list(swept),
             "jobs": [{"name": j.name, "mlflow_run_id": j.mlflow_run_id, "status": j.status, "seed": j.seed,
                       "settings": j.settings} for j in jobs]}
    tmp.mkdir(parents=True, exist_ok=True)
    write_atomically(tmp / INDEX, lambda p: p.write_text(json.dumps(index, indent=2) + "\n"))
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder / INDEX


def copy_file(path: Path, *, source: Path) -> None:
    shutil.copyfile(source, path)


def first_layer(state_dict: dict[str, torch.Tensor]) -> torch.Tensor:
    """The first weight matrix (hidden × inputs) in the state dict's order."""
    for tensor in state_dict.values():
        if tensor.dim() == 2:
            return tensor
    raise ValueError("the model has no weight matrix to draw")


def pack_mask(mask: torch.Tensor) -> dict:
    """A boolean matrix (hidden × inputs) bit-packed for storage: an eighth of a bool tensor's bytes."""
    bits = np.packbits(mask.detach().cpu().numpy().astype(bool).ravel())
    return {"shape": list(mask.shape), "bits": torch.from_numpy(bits)}


def unpack_mask(packed: dict) -> torch.Tensor:
    """The boolean matrix ``pack_mask`` stored."""
    shape = packed["shape"]
    bits = np.unpackbits(packed["bits"].numpy(), count=math.prod(shape))
    return torch.from_numpy(bits.astype(bool)).reshape(shape)


def write_connections(path: Path, *, knee_model: Path) -> None:
    """``connections.pt``: which first-layer weights of a ``knee_model.pt`` are nonzero, bit-packed."""
    knee = torch.load(knee_model, map_location="cpu", weights_only=False)
    torch.save(pack_mask(first_layer(knee["state_dict"]) != 0), path)


def config_setting(config: DictConfig | None, choices: dict[str, str], key: str) -> str:
    """A job's value of a swept ``key``, as MLflow records it: the config value (as a param), else the
    config-group choice (``optimizer=adam``, ``+plus_off=warmup``), else ``?``."""
    value = OmegaConf.select(config, key, default=None) if config is not None else None
    if isinstance(value, ListConfig):
        return str(OmegaConf.to_container(value, resolve=True))
    if value is not None and not isinstance(value, DictConfig):
        return str(value)
    return choices.get(key, "?")


def run_folder_job(folder: Path, name: str, info: dict, swept: list[str]) -> JobSource:
    """A job from its run folder: ``run.json`` (the recorder's), ``config.yaml`` and the files it wrote."""
    config = OmegaConf.load(folder / "config.yaml") if (folder / "config.yaml").is_file() else None
    choices = info.get("choices") or {}
    files: dict[str, Writer] = {n: partial(copy_file, source=folder / n) for n in COPIED if (folder / n).is_file()}
    if (folder / "knee_model.pt").is_file():
        files[CONNECTIONS] = partial(write_connections, knee_model=folder / "knee_model.pt")
    return JobSource(name=name, mlflow_run_id=info.get("mlflow_run_id"), status=str(info.get("status")),
                     seed=config_setting(config, choices, "seed"),
                     settings={k: config_setting(config, choices, k) for k in swept}, files=files)


def from_run_folders(sweep_dir: Path, parent_run_id: str, swept: list[str]) -> list[JobSource]:
    """The jobs of the multirun whose MLflow parent is ``parent_run_id``: the run folders under
    ``sweep_dir`` whose ``run.json`` names that parent (folders of earlier sweeps there are not its jobs)."""
    jobs = []
    for run_json in sorted(sweep_dir.rglob(RUN_JSON)):
        info = json.loads(run_json.read_text())
        if info.get("parent_run_id") == parent_run_id:
            folder = run_json.parent
            jobs.append(run_folder_job(folder, folder.relative_to(sweep_dir).as_posix(), info, swept))
    return jobs


# ---------------------------------------------------------------------- reading
def read_record(path: Path) -> SweepRecord:
    """A record from its folder (or its ``sweep.json``)."""
    index_path = path / INDEX if path.is_dir() else path
    if not index_path.is_file():
        raise FileNotFoundError(f"no sweep record at {path} (no {INDEX}): run the sweep with sweep_record={path}")
    index = json.loads(index_path.read_text())
    if "jobs" not in index:
        raise ValueError(f"{index_path} names only an MLflow parent run (an older sweep record): rerun the sweep, "
                         f"or report it from its store with ggevo-report --parent {index.get('parent_run_id')}")
    folder = index_path.parent
    jobs = [Job(name=j["name"], mlflow_run_id=j.get("mlflow_run_id"), status=j["status"], seed=j["seed"],
                settings=j["settings"], folder=folder / j["name"]) for j in index["jobs"]]
    return SweepRecord(folder, index["experiment_preset"], index.get("parent_run_id"), index["swept"], jobs)
