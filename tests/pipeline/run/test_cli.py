"""Command-line failures a user meets first: one line on stderr, the exit status, nothing half-written."""

import socket

import pytest

from tests.pipeline.processes import cli as _cli
from tests.pipeline.processes import one_line as _one_line


@pytest.mark.slow
def test_an_unwritable_hydra_run_dir_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    proc, _ = _cli("ggevo.train", "experiment=smoke", f"hydra.run.dir={tmp_path / 'a_file' / 'out'}",
                   f"logger.tracking_uri=sqlite:///{tmp_path / 'm.db'}")
    assert proc.returncode == 2
    assert _one_line(proc).startswith("error: hydra.run.dir: the output folder ")


@pytest.mark.slow
def test_an_unreachable_server_is_one_line_in_seconds(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, _ = _cli("ggevo.train", "experiment=smoke", f"logger.tracking_uri=http://127.0.0.1:{port}",
                   f"run_dir={tmp_path / 'r'}")
    assert proc.returncode == 2
    assert _one_line(proc).startswith(f"error: logger.tracking_uri: no MLflow server answers at http://127.0.0.1:{port}")
    assert "within 5 s" in _one_line(proc)


@pytest.mark.slow
def test_a_tracking_uri_in_a_missing_folder_from_the_environment_is_refused(tmp_path):
    proc, _ = _cli("ggevo.train", "experiment=smoke", f"run_dir={tmp_path / 'r'}",
                   env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'nonexistent_dir' / 'x.db'}"})
    assert proc.returncode == 2
    assert _one_line(proc).startswith("error: MLFLOW_TRACKING_URI: the folder ")
    assert not (tmp_path / "nonexistent_dir").exists()
