"""``ggevo-train`` / ``python -m ggevo.train``: the Hydra entry point around ``ggevo.pipeline.run.train.train``."""

from ggevo.pipeline.run.cli import hydra_entry
from ggevo.pipeline.run.train import train

main = hydra_entry(train)

if __name__ == "__main__":
    main()
