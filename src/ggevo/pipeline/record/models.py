"""Models and datasets in MLflow's own forms: a run's dataset input, a member logged with
``mlflow.pytorch.log_model`` and registered in the model registry. Writes to MLflow like the recorder,
through the fluent API where MLflow offers nothing else, its global tracking URI restored after."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from contextlib import contextmanager

from ggevo.pipeline.core.interrupts import shielded
from ggevo.pipeline.record.store import open_store

_URI_VARIABLE = "MLFLOW_TRACKING_URI"
KNEE_MODEL = "knee_model"  # the name of every run's logged model (the knee member)


def dataset_input(summary: Mapping[str, str], context: str = "training"):
    """An MLflow ``DatasetInput`` from a data module's ``summary()``: its name, content digest, where it
    came from and its split sizes (the profile)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    profile = {k: summary[k] for k in ("splits", "features", "normalize", "test_split") if k in summary}
    dataset = Dataset(name=str(summary.get("name", "data")), digest=str(summary.get("data_sha1", ""))[:36],
                      source_type="local", source=json.dumps({"source": str(summary.get("source", ""))}),
                      profile=json.dumps(profile))
    return DatasetInput(dataset=dataset, tags=[InputTag("mlflow.data.context", context)])


def log_model_to_run(uri: str, run_id: str, model, name: str, input_example, **kwargs) -> str:
    """``mlflow.pytorch.log_model`` of ``model`` into run ``run_id`` (pickled module, ``input_example`` and the
    signature inferred from it), the run's status left as it was; returns the logged model's URI."""
    import mlflow
    import mlflow.pytorch
    import torch

    client = open_store(uri)
    status = client.get_run(run_id).info.status
    quiet = logging.getLogger("mlflow.pytorch")  # its warning that pickle runs code on loading: chosen, so that
    level, quiet.level = quiet.level, logging.ERROR  # load_model gives back the nn.Module itself
    try:
        with fluent_store(uri), shielded(), mlflow.start_run(run_id=run_id):
            info = mlflow.pytorch.log_model(model, name=name, input_example=input_example,
                                            serialization_format="pickle",
                                            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "ggevo"],
                                            **kwargs)
    finally:
        quiet.level = level
        with shielded():
            if status == "RUNNING":
                client.update_run(run_id, status="RUNNING")
            else:
                client.set_terminated(run_id, status)
    return info.model_uri


def register_model(uri: str, model_uri: str, name: str, alias: str, tags: Mapping[str, str]) -> str:
    """A new version of the registered model ``name`` from ``model_uri``, with ``alias`` and ``tags``;
    returns the version."""
    import mlflow

    with fluent_store(uri), shielded():
        version = mlflow.register_model(model_uri, name).version
        client = open_store(uri)
        client.set_registered_model_alias(name, alias, version)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
    return str(version)


@contextmanager
def fluent_store(uri: str):
    """MLflow's fluent API (``mlflow.start_run``, ``log_model``, ``register_model``) on the store ``uri`` for
    the block, then as it was: ``mlflow.set_tracking_uri`` also writes ``$MLFLOW_TRACKING_URI``, which would
    send every later run of the process (the next layer of a stack, the next test) to this store."""
    from mlflow.tracking._tracking_service import utils

    saved_uri, saved_env = utils._tracking_uri, os.environ.get(_URI_VARIABLE)
    utils.set_tracking_uri(uri)
    try:
        yield
    finally:
        utils._tracking_uri = saved_uri
        if saved_env is None:
            os.environ.pop(_URI_VARIABLE, None)
        else:
            os.environ[_URI_VARIABLE] = saved_env
