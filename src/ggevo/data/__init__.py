"""Data sets as in-memory tensors, their fixed splits, and the minibatch stream of a run."""

from ggevo.data.datamodule import ArrayDataModule
from ggevo.data.sources import DATASETS, load_arrays
from ggevo.data.stream import MinibatchStream

__all__ = ["ArrayDataModule", "DATASETS", "MinibatchStream", "load_arrays"]
