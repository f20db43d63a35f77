"""``ggevo-prepare``: materialise the configured data set's fixed splits as ``data/<name>.npz`` (DVC ``prepare``)."""

from __future__ import annotations

from omegaconf import DictConfig

from ggevo.pipeline.core.paths import rooted
from ggevo.pipeline.run.build import unprepared_data
from ggevo.pipeline.run.cli import hydra_entry


def prepare(cfg: DictConfig) -> str:
    """Write ``<data.data_dir>/<data.name>.npz``; returns its path."""
    data = unprepared_data(cfg)
    path = rooted(cfg.data.data_dir) / f"{cfg.data.name}.npz"
    data.save_prepared(path)
    sizes = {s: len(data.split_arrays()[s][0]) for s in ("train", "val", "test")}
    print(f"{cfg.data.name}: {sizes} -> {path}")
    return str(path)


main = hydra_entry(prepare)

if __name__ == "__main__":
    main()
