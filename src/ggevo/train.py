"""``ggevo-train`` / ``python -m ggevo.train``: the Hydra entry point around ``ggevo.pipeline.train.train``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from ggevo.data.sources import DataUnavailableError
from ggevo.pipeline.paths import config_dir
from ggevo.pipeline.train import train
from ggevo.pipeline.validate import ConfigError


def _task(cfg: DictConfig) -> float:
    try:
        return train(cfg)
    except (ConfigError, DataUnavailableError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    try:
        conf = config_dir()
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    hydra.main(config_path=str(conf), config_name="config", version_base="1.3")(_task)()


if __name__ == "__main__":
    main()
