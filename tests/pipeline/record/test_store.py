"""The tracking store, checked before any compute: a SQLite store's folder exists, a server answers in
seconds, the artifact store can be written; many runs open one fresh store at once; every experiment
carries the model-training kind."""

import mlflow
import pytest

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.record.store import ensure_experiment
from ggevo.pipeline.record.tracking import EXPERIMENT_KIND
from ggevo.pipeline.run.train import train
from tests.pipeline.processes import train_process as _train
from tests.pipeline.records import fails_before_any_run as _fails_before_any_run
from tests.pipeline.records import runs as _runs


def test_an_unwritable_artifact_store_fails_before_compute(compose_cfg, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    _fails_before_any_run(compose_cfg(f"logger.artifact_location={(tmp_path / 'a_file' / 'art').as_uri()}"),
                          "logger.artifact_location")


def test_a_sqlite_store_in_a_missing_folder_is_refused_not_created(compose_cfg, tmp_path):
    cfg = compose_cfg(f"logger.tracking_uri=sqlite:///{tmp_path / 'nowhere' / 'x.db'}")
    with pytest.raises(ConfigError, match="^logger.tracking_uri: the folder .*nowhere.* does not exist"):
        train(cfg)
    assert not (tmp_path / "nowhere").exists()


def test_an_unreachable_server_fails_in_seconds(compose_cfg):
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=f"^logger.tracking_uri: no MLflow server answers at http://127.0.0.1:{port}"):
        train(compose_cfg(f"logger.tracking_uri=http://127.0.0.1:{port}"))
    assert time.perf_counter() - started < 15


@pytest.mark.slow
def test_several_runs_open_one_fresh_store_at_once(tmp_path):
    procs = [_train(tmp_path, f"seed={s}", run=f"r{s}") for s in range(3)]
    outs = [p.communicate(timeout=1200) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e[-2000:] for _, e in outs]
    client, runs = _runs(tmp_path)
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    for r in runs:
        assert [m.step for m in client.get_metric_history(r.info.run_id, "hypervolume")] == [1, 2, 3, 4, 5]
        assert "final/hypervolume" in r.data.metrics


def test_experiments_carry_the_model_training_kind(tmp_path):
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    new = ensure_experiment(client, "fresh", None)
    assert client.get_experiment(new).tags == EXPERIMENT_KIND
    old = client.create_experiment("older")  # made before ggevo tagged its experiments
    assert ensure_experiment(client, "older", None) == old
    assert client.get_experiment(old).tags == EXPERIMENT_KIND
    client.set_experiment_tag(old, "mlflow.experimentKind", "genai_development")  # a user's choice stays
    ensure_experiment(client, "older", None)
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "genai_development"
