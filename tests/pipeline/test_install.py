"""An install that works anywhere: the configs ship inside the package (``ggevo.conf``, mapped from the
project's ``conf/``), so a wheel installed outside a clone runs ``ggevo-train`` from an empty folder and
keeps its runs there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.conftest import ROOT

# what the run must not inherit: each would point it back at the clone or at another store
CLONE_VARS = ("GGEVO_ROOT", "DVC_ROOT", "GGEVO_CONF", "MLFLOW_TRACKING_URI", "GGEVO_SWEEP_PARENT", "PYTHONPATH")
# a preset of the user's own, outside the package, for --config-dir
USER_PRESET = ("# @package _global_\ndefaults:\n  - override /optimizer: gemonn\npreset: mine\n"
               "model: {hidden: 8}\ndata: {batch_size: 32, limit: 300}\noptimizer: {pop_size: 4, compile: false}\n"
               "trainer: {max_steps: 2, val_check_interval: 2}\ncheckpoint: {every_n_steps: 2}\n")


def test_every_package_in_src_is_listed_for_the_wheel():
    # pyproject.toml lists its packages (ggevo.conf lives outside src/): a new subpackage must join the list
    tomllib = pytest.importorskip("tomllib")  # Python 3.11
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT / "src").parts) for p in (ROOT / "src" / "ggevo").rglob("__init__.py")}
    assert listed == found | {"ggevo.conf"}


def _wheel(folder: Path) -> Path:
    """A wheel of the project built from a copy of it (building in the clone would leave build/ and
    egg-info there)."""
    source = folder / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=junk)
    shutil.copytree(ROOT / "conf", source / "conf", ignore=junk)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder / "wheels"),
                    str(source)], check=True)
    (wheel,) = (folder / "wheels").glob("ggevo-*.whl")
    return wheel


def _site_packages(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip()).resolve()


def _isolated_venv(folder: Path) -> Path:
    """A virtual environment whose own site-packages comes first and which sees this environment's
    site-packages (torch, lightning, ...) as plain paths: their ``.pth`` files, the editable install of
    this clone among them, are never run. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    outer = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (_site_packages(python) / "outer_site_packages.pth").write_text("".join(f"{p}\n" for p in outer))
    return python


def _yaml_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.yaml"))


@pytest.mark.slow
def test_a_wheel_installed_outside_the_clone_trains_from_an_empty_folder(tmp_path):
    python = _isolated_venv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(_wheel(tmp_path))],
                   check=True)
    installed = _site_packages(python) / "ggevo"
    empty, mine = tmp_path / "empty", tmp_path / "mine"
    empty.mkdir()
    (mine / "experiment").mkdir(parents=True)
    (mine / "experiment" / "mine.yaml").write_text(USER_PRESET)
    env = {k: v for k, v in os.environ.items() if k not in CLONE_VARS}

    where = subprocess.run([str(python), "-c", "import ggevo; from ggevo.pipeline.core.paths import config_dir, "
                            "project_root; print(ggevo.__file__); print(config_dir()); print(project_root())"],
                           cwd=empty, env=env, check=True, capture_output=True, text=True).stdout.splitlines()
    assert [Path(line).resolve() for line in where] == [installed / "__init__.py", installed / "conf", empty]
    assert _yaml_files(installed / "conf") == _yaml_files(ROOT / "conf")  # every group, every option

    run = subprocess.run([str(python.parent / "ggevo-train"), "--config-dir", str(mine), "experiment=mine"],
                         cwd=empty, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    (folder,) = (empty / "outputs").glob("*/*")  # Hydra's run folder, under the working directory
    assert (folder / "front.csv").is_file()
    sources = yaml.safe_load((folder / ".hydra" / "hydra.yaml").read_text())["hydra"]["runtime"]["config_sources"]
    searched = {s["provider"]: Path(s["path"]) for s in sources if s["schema"] == "file"}
    assert searched == {"main": installed / "conf", "command-line": mine}
    # the MLflow store, mlflow.db and mlartifacts/, in the working directory too
    assert (empty / "mlartifacts").is_dir()
    client = mlflow.tracking.MlflowClient(f"sqlite:///{empty / 'mlflow.db'}")
    (recorded,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert recorded.info.status == "FINISHED"
