"""``ggevo-train`` / ``python -m ggevo.train``: the Hydra entry point around ``ggevo.pipeline.train.train``."""

from ggevo.cli import hydra_entry
from ggevo.pipeline.train import train

main = hydra_entry(train)

if __name__ == "__main__":
    main()
