"""Shared command-line plumbing: Hydra entry points that fail in one line on bad input."""

from __future__ import annotations

import sys
from collections.abc import Callable

import hydra
from omegaconf import DictConfig

from ggevo.data.sources import DataConfigError, DataUnavailableError
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.interrupts import RunKilled
from ggevo.pipeline.core.memory import apply_memory_setting
from ggevo.pipeline.core.numerics import apply_numerics_setting
from ggevo.pipeline.core.paths import config_dir, rooted
from ggevo.pipeline.core.threads import set_job_threads
from ggevo.pipeline.record.store import writable
from ggevo.pipeline.core.renamed import check_renamed_overrides

# FloatingPointError: a gradient baseline whose loss diverged (it names the step and the fix)
USER_ERRORS = (ConfigError, DataConfigError, DataUnavailableError, FileNotFoundError, FloatingPointError)


def fail(err: BaseException) -> None:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)


def check_output_overrides(argv: list[str]) -> None:
    """``hydra.run.dir=`` / ``hydra.sweep.dir=`` on the command line can be written (Hydra itself
    would fail there with a traceback, before the task starts)."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir") and value and "${" not in value:
            writable(rooted(value), key, "output folder")


def hydra_entry(task: Callable[[DictConfig], object]) -> Callable[[], None]:
    """A console-script ``main`` running ``task(cfg)`` on the project's composed config."""

    def guarded(cfg: DictConfig):
        try:
            set_job_threads(cfg)
            apply_memory_setting(cfg)
            apply_numerics_setting(cfg)
            return task(cfg)
        except USER_ERRORS as err:
            fail(err)
        except RunKilled as err:
            print(f"killed: {err}", file=sys.stderr)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:  # before any record was opened
            print("interrupted: nothing recorded", file=sys.stderr)
            sys.exit(130)

    def main() -> None:
        try:
            conf = config_dir()
            check_output_overrides(sys.argv[1:])
            check_renamed_overrides(sys.argv[1:])
        except (FileNotFoundError, ConfigError) as err:
            fail(err)
        hydra.main(config_path=str(conf), config_name="config", version_base="1.3")(guarded)()

    return main
