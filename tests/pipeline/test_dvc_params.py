"""DVC dependencies that cannot drift: every config file a stage's command composes is in its params or deps,
and its deps name exactly the pipeline modules its command runs."""

import shlex
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests.conftest import ROOT
from tests.pipeline.test_layers import BELOW, SRC, imported

# the config groups each entry point reads (ggevo-prepare only materialises the data set)
READS = {"ggevo-train": None, "ggevo-stack": None, "ggevo-prepare": ("data",)}


def _stages():
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in spec.items():
        if "foreach" in stage:
            for item in stage["foreach"]:
                body = yaml.safe_load(yaml.safe_dump(stage["do"]).replace("${item}", item))
                yield f"{name}@{item}", body
        else:
            yield name, stage


def _commands(stage: dict) -> list[str]:
    """A stage's commands: its ``cmd``, or each of a list (the frozen compare_full: a sweep, then its report)."""
    return stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]


def _hydra_stages():
    return [(n, s) for n, s in _stages() if any(shlex.split(c)[0] in READS for c in _commands(s))]


def _compose(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def _with_defaults(path) -> set[str]:
    """``path`` and the files of its group that its own ``defaults`` list pulls in, recursively."""
    found = {str(path.relative_to(ROOT))}
    for entry in (yaml.safe_load(path.read_text()) or {}).get("defaults", []):
        if isinstance(entry, str) and entry != "_self_" and (path.parent / f"{entry}.yaml").is_file():
            found |= _with_defaults(path.parent / f"{entry}.yaml")
    return found


def files_read(cmd: str) -> set[str]:
    """The config files (relative to the project) the command's composition reads, over every sweep point."""
    program, *args = shlex.split(cmd)
    overrides = [a for a in args if a != "-m" and not a.startswith("hydra.")]
    groups = READS[program]
    cfg = _compose(overrides)
    points = [[]]
    for key, values in (OmegaConf.select(cfg, "hydra.sweeper.params") or {}).items():
        points = [p + [f"{key}={v}"] for p in points for v in str(values).split(",")]
    for o in overrides:  # command-line comma lists sweep too
        if "," in o.split("=", 1)[-1]:
            key, values = o.split("=", 1)
            points = [p + [f"{key}={v}"] for p in points for v in values.split(",")]
    read = set() if groups else {"conf/config.yaml"}
    for point in points:
        choices = _compose(overrides + point).hydra.runtime.choices
        for group, option in choices.items():
            path = ROOT / "conf" / group / f"{option}.yaml"
            if option is not None and path.is_file() and (groups is None or group in groups):
                read |= _with_defaults(path)
    return read


def listed(stage: dict) -> tuple[set[str], set[str]]:
    """Whole files in the stage's params, and its deps."""
    params = set()
    for entry in stage.get("params", []):
        if isinstance(entry, dict):
            params |= {f for f, keys in entry.items() if not keys}
    return params, set(stage.get("deps", []))


@pytest.mark.parametrize("name, stage", _hydra_stages(), ids=[n for n, _ in _hydra_stages()])
def test_every_config_file_a_stage_reads_is_a_param_or_dep(name, stage):
    params, deps = listed(stage)
    read = set().union(*(files_read(c) for c in _commands(stage) if shlex.split(c)[0] in READS))
    missing = [f for f in sorted(read)
               if f not in params and not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
    assert not missing, f"stage {name} reads {missing} but lists neither as a whole-file param nor a dep"


def test_the_check_sees_the_files_of_a_sweep():
    read = files_read("ggevo-train -m experiment=compare_ae_small")
    assert {"conf/optimizer/gemonn.yaml", "conf/optimizer/adam_lr1e-3.yaml", "conf/optimizer/adam.yaml",
            "conf/data/mnist5k.yaml", "conf/config.yaml", "conf/experiment/compare_ae_small.yaml"} <= read


def _module_file(module: str) -> Path | None:
    path = SRC / module.replace(".", "/")
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _checked(path: Path) -> bool:
    """A module whose edits a stage must see: ggevo's own outside the packages below the pipeline (which
    stages list whole), package ``__init__.py`` files aside (docstrings only)."""
    parts = path.relative_to(SRC / "ggevo").parts
    return path.name != "__init__.py" and parts[0] not in BELOW and parts[0] != "conf"


def modules_run(cmd: str) -> set[str]:
    """The files (relative to the project) of the ggevo modules ``cmd`` imports, transitively, the ones
    imported inside functions too; a multirun adds the Hydra callbacks' (``hydra.callbacks`` in conf/config.yaml)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11
    program, *args = shlex.split(cmd)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    todo = [scripts[program].split(":")[0]]
    if "-m" in args:
        callbacks = yaml.safe_load((ROOT / "conf" / "config.yaml").read_text())["hydra"]["callbacks"]
        todo += [c["_target_"].rsplit(".", 1)[0] for c in callbacks.values()]
    seen: set[Path] = set()
    while todo:
        path = _module_file(todo.pop())
        if path is not None and path not in seen:
            seen.add(path)
            todo += [m for _, m in imported(path, SRC) if m.split(".")[0] == "ggevo"]
    return {str(p.relative_to(ROOT)) for p in seen if _checked(p)}


def modules_listed(deps: set[str]) -> set[str]:
    """The files of ggevo's modules that ``deps`` name, one by one or by their folder."""
    found = set()
    for dep in deps:
        path = ROOT / dep
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.suffix == ".py" else []
        found |= {str(f.relative_to(ROOT)) for f in files if f.is_relative_to(SRC / "ggevo") and _checked(f)}
    return found


@pytest.mark.parametrize("name, stage", list(_stages()), ids=[n for n, _ in _stages()])
def test_a_stage_depends_on_exactly_the_pipeline_modules_it_runs(name, stage):
    run = set().union(*(modules_run(c) for c in _commands(stage)))
    listed_ = modules_listed(set(stage.get("deps", [])))
    assert not run - listed_, f"stage {name} runs {sorted(run - listed_)} but does not list them as deps"
    assert not listed_ - run, f"stage {name} lists {sorted(listed_ - run)} as deps but never imports them"


def test_the_modules_a_multirun_runs_include_the_sweep_callbacks():
    single, sweep = modules_run("ggevo-train experiment=smoke"), modules_run("ggevo-train -m experiment=smoke")
    assert sweep - single == {"src/ggevo/pipeline/team/sweep.py", "src/ggevo/pipeline/record/sweep_record.py"}
    assert {"src/ggevo/train.py", "src/ggevo/pipeline/run/cli.py", "src/ggevo/pipeline/core/paths.py"} <= single
