"""Where the configs come from and where a run's files go: ``$GGEVO_CONF``, else a clone's ``conf/``, else
the configs installed with the package; outside a clone runs land in the working directory."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ggevo.pipeline.core import paths
from ggevo.pipeline.run.cli import hydra_entry
from tests.conftest import ROOT


def _config_folder(folder):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("seed: 0\n")
    return folder


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """The working directory: an empty folder in no clone, nothing in the environment naming one, and
    configs installed with the package in ``tmp_path / 'installed'``."""
    for var in ("GGEVO_ROOT", "DVC_ROOT", "GGEVO_CONF", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(paths, "_SOURCE_ROOT", tmp_path / "site-packages")  # not an editable install of a clone
    installed = _config_folder(tmp_path / "installed")
    monkeypatch.setattr(paths, "packaged_config_dir", lambda: installed)
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    return tmp_path


def test_outside_a_clone_the_installed_configs_are_used_and_runs_land_in_the_working_directory(outside):
    assert paths.config_dir() == outside / "installed"
    assert paths.project_root() == outside / "empty"
    assert paths.rooted("outputs/run") == outside / "empty" / "outputs" / "run"
    assert paths.default_tracking_uri() == f"sqlite:///{outside / 'empty' / 'mlflow.db'}"


def test_inside_a_clone_its_conf_wins_over_the_installed_configs(outside, monkeypatch):
    clone_conf = _config_folder(outside / "clone" / "conf")
    (outside / "clone" / "docs").mkdir()
    monkeypatch.chdir(outside / "clone" / "docs")  # the nearest folder upward holding conf/config.yaml
    assert paths.config_dir() == clone_conf
    monkeypatch.chdir(outside / "empty")
    monkeypatch.setenv("DVC_ROOT", str(outside / "clone"))
    assert paths.config_dir() == clone_conf


def test_ggevo_conf_wins_over_a_clone(outside, monkeypatch):
    _config_folder(outside / "clone" / "conf")
    monkeypatch.chdir(outside / "clone")
    monkeypatch.setenv("GGEVO_CONF", str(_config_folder(outside / "mine")))
    assert paths.config_dir() == outside / "mine"


def test_a_missing_config_is_one_line_naming_the_folder(outside, monkeypatch, capsys):
    monkeypatch.setenv("GGEVO_CONF", str(outside / "nowhere"))
    monkeypatch.setattr(sys, "argv", ["ggevo-train"])
    with pytest.raises(SystemExit) as exit_:
        hydra_entry(lambda cfg: None)()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"error: no config.yaml in {outside / 'nowhere'} (GGEVO_CONF)\n"
    monkeypatch.delenv("GGEVO_CONF")
    monkeypatch.setattr(paths, "packaged_config_dir", lambda: None)  # installed before the configs shipped with it
    expected = f"no config.yaml in {outside / 'empty' / 'conf'} nor in the installed package (ggevo.conf)"
    with pytest.raises(FileNotFoundError, match="^" + re.escape(expected)):
        paths.config_dir()


@pytest.mark.slow
def test_config_dir_adds_a_users_preset_beside_the_projects_configs(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\npreset: mine\nseed: 7\n")
    proc = subprocess.run([sys.executable, "-m", "ggevo.train", "--config-dir", str(tmp_path), "experiment=mine",
                           "--cfg", "job"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "preset: mine" in lines and "seed: 7" in lines
    assert "  _target_: ggevo.models.TiedAutoencoder" in lines  # the rest from the project's conf/
