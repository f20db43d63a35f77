"""The one way out: the only code that writes a run's MLflow record and its run folder.

``Recorder`` is a Lightning logger built from the ``logger`` config. It is handed values —
params, tags, each generation's status dict, validation scores, the final front's files and
metrics — and never reaches back into the optimizer or the data. Its record is true or absent:

- every write is whole (a Ctrl-C or SIGTERM during it waits for its end, ``interrupts.shielded``);
- on a resume it reopens the same run and skips every (metric, step) already stored, so each
  generation appears exactly once however often it was replayed;
- the run ends FINISHED only through ``close("FINISHED")`` after the front and its files are
  stored; a failure closes it FAILED with a one-line ``ggevo.failure`` tag, an interruption KILLED.

The run folder holds what a report needs without the store: the front's files, ``history.csv``
(each generation's status, written with them) and ``run.json`` (written by ``close``: the MLflow run
and its parent, the config-group choices, the status and its reason). A sweep's record is built
from these (``ggevo.pipeline.record.sweep_record``).

Sweep and stack parent runs, and files added to a finished run (export, test evaluation), go
through the functions at the bottom of this module.
"""

from __future__ import annotations

import json
import secrets
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from omegaconf import DictConfig
from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.utilities import rank_zero_only

from ggevo.lit.status import STATUS_KEYS
from ggevo.pipeline.core.files import Writer, write_atomically
from ggevo.pipeline.core.interrupts import shielded
from ggevo.pipeline.record.history import HISTORY, History, add_to_history, write_history_csv
from ggevo.pipeline.record.models import KNEE_MODEL, dataset_input, log_model_to_run
from ggevo.pipeline.record.store import artifact_location, ensure_experiment, open_store, tracking_uri

STATUS_ORDER = ("FINISHED", "KILLED", "FAILED")  # a parent run ends with the worst of its children's
RUN_JSON = "run.json"
FLUSH_SECONDS = 1.0  # metrics are stored at most this long after they are logged (and at every checkpoint)


def unique_run_name(prefix: str) -> str:
    """``<prefix>-<8 hex digits>`` from the operating system's randomness (never the training seed)."""
    return f"{prefix}-{secrets.token_hex(4)}"


def failure_reason(err: BaseException) -> str:
    """One line naming what went wrong, for the ``ggevo.failure`` tag."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:500]


class Recorder(Logger):
    """Writes one training run: MLflow (params, tags, metrics, artifacts, status) and its run folder ``out``."""

    def __init__(self, cfg: DictConfig, out: Path):
        super().__init__()
        self.uri = tracking_uri(cfg)
        self.experiment_name = str(cfg.logger.experiment_name)
        self.location = artifact_location(cfg)
        self.run_name = cfg.logger.get("run_name")
        self.out = Path(out)
        self._client = None
        self._run_id: str | None = None
        self._stored: set[tuple[str, int]] = set()
        self._history: History = {}
        self._identity: dict[str, object] = {}
        self._pending: list[Metric] = []  # logged, not yet stored (``save``)
        self._flushed_at = time.monotonic()
        self.closed: str | None = None

    # ------------------------------------------------------------------ Lightning's Logger
    @property
    def name(self) -> str:
        return self.experiment_name

    @property
    def version(self) -> str | None:
        return self._run_id

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def save_dir(self) -> str:
        return str(self.out)

    @property
    def experiment(self) -> Recorder:
        return self

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """Lightning's own hyperparameters are not recorded: ``open`` stores the whole config as params."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Each (metric, step) once: those a resumed run stored before its interruption are skipped."""
        step = int(step or 0)
        now = int(time.time() * 1000)
        fresh = [Metric(k, float(v), now, step) for k, v in metrics.items() if (k, step) not in self._stored]
        if not fresh or self._run_id is None:
            return
        self._pending.extend(fresh)
        self._stored.update((m.key, step) for m in fresh)
        add_to_history(self._history, {m.key: m.value for m in fresh}, step, STATUS_KEYS)
        if time.monotonic() - self._flushed_at >= FLUSH_SECONDS:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        """Store the metrics held since the last write, in batches of MLflow's limit of 1,000.

        Metrics are held for up to ``FLUSH_SECONDS``: one store write per generation cost a
        single-network phase (a trunk generation) more than its evaluation. Every checkpoint stores
        them first (``lit.last_checkpoint.StoreBeforeCheckpoint`` calls this), and so does ``close``,
        so a resumed run finds every generation that its checkpoint holds.
        """
        pending, self._pending = self._pending, []
        self._flushed_at = time.monotonic()
        if not pending or self._run_id is None:
            return
        with shielded():
            for i in range(0, len(pending), 1000):
                self._client.log_batch(self._run_id, metrics=pending[i:i + 1000])

    def finalize(self, status: str) -> None:
        """Lightning's end of fit; the run's status is set by ``close`` alone, once the record is whole."""

    # ------------------------------------------------------------------ the run
    def open(self, params: Mapping[str, str], tags: Mapping[str, str], run_id: str | None = None) -> str:
        """Create the run (unique name, params, tags) or reopen ``run_id``; returns the run id."""
        self._client = open_store(self.uri)
        self._identity = {"parent_run_id": tags.get("mlflow.parentRunId"),
                          "choices": {k.removeprefix("choice."): str(v) for k, v in tags.items()
                                      if k.startswith("choice.")}}
        with shielded():
            if run_id is not None:
                self._client.update_run(run_id, status="RUNNING")
                self._run_id = run_id
                self._stored = self._stored_steps(run_id)
                return run_id
            exp = ensure_experiment(self._client, self.experiment_name, self.location)
            name = self.run_name or unique_run_name(str(tags.get("experiment_preset", "run")))
            run = self._client.create_run(exp, run_name=name, tags=dict(tags))
            self._run_id = run.info.run_id
            items = [Param(k, str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):
                self._client.log_batch(self._run_id, params=items[i:i + 100])
        return self._run_id

    def _stored_steps(self, run_id: str) -> set[tuple[str, int]]:
        """The (metric, step) pairs the run holds; its status history so far goes back into ``history.csv``."""
        stored = set()
        for key in self._client.get_run(run_id).data.metrics:
            for m in self._client.get_metric_history(run_id, key):
                stored.add((key, m.step))
                add_to_history(self._history, {key: m.value}, m.step, STATUS_KEYS)
        return stored

    def set_tags(self, tags: Mapping[str, object]) -> None:
        """Extra tags handed in (data provenance, the evaluation strategy chosen, …)."""
        if tags and self._run_id is not None:
            with shielded():
                self._client.log_batch(self._run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def write(self, files: Mapping[str, Writer], artifact_path: str | None = None) -> list[Path]:
        """Each ``name → writer`` written whole into the run folder, then stored as an artifact; with them
        the history of every generation recorded so far (``history.csv``)."""
        if self._history:
            history = {k: dict(v) for k, v in self._history.items()}
            files = {**files, HISTORY: lambda p: write_history_csv(p, history)}
        paths = []
        for name, writer in files.items():
            path = self.out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, writer)
            paths.append(path)
        if self._run_id is not None:
            with shielded():
                for path in paths:
                    self._client.log_artifact(self._run_id, str(path), artifact_path=artifact_path)
        return paths

    def log_dataset(self, summary: Mapping[str, str], context: str = "training") -> None:
        """The run's data as an MLflow dataset input (name, digest, split sizes): the UI's "Datasets used"."""
        if self._run_id is None:
            return
        dataset = dataset_input(summary, context)
        for attempt in range(3):  # runs starting together on one store insert the same dataset row at once
            try:
                with shielded():
                    self._client.log_inputs(self._run_id, datasets=[dataset])
                return
            except Exception as err:  # noqa: BLE001 (the losers see the row once the winner has stored it)
                if attempt == 2:
                    warnings.warn(f"the dataset input was not logged to MLflow: {type(err).__name__}")
                    return
                time.sleep(0.5 * (attempt + 1))

    def log_model(self, model, input_example, name: str = KNEE_MODEL) -> str | None:
        """``model`` (an ``nn.Module``, its zeros kept) logged to the run with ``mlflow.pytorch.log_model``;
        returns its ``runs:/`` URI, which ``mlflow.pytorch.load_model`` and the model registry take."""
        if self._run_id is None:
            return None
        try:  # the front is recorded already: a model MLflow cannot store is a warning and a tag, not a failed run
            return log_model_to_run(self.uri, self._run_id, model, name, input_example)
        except Exception as err:  # noqa: BLE001 (a busy store, a full disk)
            warnings.warn(f"the knee model was not logged to MLflow: {type(err).__name__}: {err}")
            self.set_tags({"ggevo.log_model": f"failed: {type(err).__name__}"})
            return None

    def close(self, status: str, reason: str | None = None) -> None:
        """End the run FINISHED, KILLED or FAILED; ``reason`` (one line) goes to the ``ggevo.failure`` tag."""
        if self._run_id is None or self.closed is not None:
            return
        self.save()
        with shielded():
            if reason:
                self._client.set_tag(self._run_id, "ggevo.failure", reason)
            self._client.set_terminated(self._run_id, status)
            self._write_run_json(status, reason)
        self.closed = status

    def _write_run_json(self, status: str, reason: str | None) -> None:
        """``run.json`` in the run folder: which MLflow run (and parent) this folder is, how it ended."""
        record = {"mlflow_run_id": self._run_id, **self._identity, "status": status, "failure": reason}
        self.out.mkdir(parents=True, exist_ok=True)
        write_atomically(self.out / RUN_JSON, lambda p: p.write_text(json.dumps(record, indent=2) + "\n"))


# ---------------------------------------------------------------------- parent runs and added files
def open_parent(cfg: DictConfig, name: str, tags: Mapping[str, str]) -> str:
    """A parent run (a sweep's, a stack's) in ``logger.experiment_name``; returns its id."""
    client = open_store(tracking_uri(cfg))
    exp = ensure_experiment(client, str(cfg.logger.experiment_name), artifact_location(cfg))
    with shielded():
        return client.create_run(exp, run_name=name, tags=dict(tags)).info.run_id


def reopen(uri: str, run_id: str) -> None:
    with shielded():
        open_store(uri).update_run(run_id, status="RUNNING")


def worst_status(statuses: list[str]) -> str:
    """FAILED over KILLED over FINISHED; a run still RUNNING (its process died) counts as FAILED."""
    ranks = [STATUS_ORDER.index(s) if s in STATUS_ORDER else len(STATUS_ORDER) - 1 for s in statuses]
    return STATUS_ORDER[max(ranks, default=0)]


def children_statuses(uri: str, run_id: str) -> list[str]:
    client = open_store(uri)
    parent = client.get_run(run_id)
    runs = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    return [r.info.status for r in runs]


def close_run(uri: str, run_id: str, status: str, reason: str | None = None) -> None:
    client = open_store(uri)
    with shielded():
        if reason:
            client.set_tag(run_id, "ggevo.failure", reason)
        client.set_terminated(run_id, status)


def add_to_run(uri: str, run_id: str, metrics: Mapping[str, float] | None = None,
               files: list[Path] = (), artifact_path: str | None = None) -> None:
    """Metrics and files added to an existing run (a stack layer's summary, an export, a test evaluation)."""
    client = open_store(uri)
    now = int(time.time() * 1000)
    with shielded():
        if metrics:
            client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        for path in files:
            client.log_artifact(run_id, str(path), artifact_path=artifact_path)
