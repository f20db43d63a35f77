"""A LightningDataModule over an in-memory data set with fixed train/val/test splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from ggevo.data.sources import DATASETS, DataUnavailableError, load_arrays
from ggevo.data.stream import MinibatchStream


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Disjoint train/val/test index arrays covering ``range(n)``, from a permutation fixed by ``seed``."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"data.val_fraction/test_fraction: need two fractions summing below 1, "
                         f"got {val_fraction} and {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    return {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}


class ArrayDataModule(pl.LightningDataModule):
    """Named data set → tensors → splits; the training loader is a ``MinibatchStream``."""

    def __init__(
        self,
        name: str = "mnist5k",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        seed: int = 0,
        data_dir: str = "data",
        limit: int | None = None,
        prepared: str | None = None,
    ):
        super().__init__()
        if name not in DATASETS:
            raise ValueError(f"data.name: unknown data set {name!r}; choose one of {sorted(DATASETS)}")
        self.name = name
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed, self.seed = split_seed, seed
        self.data_dir = Path(data_dir)
        self.limit = limit
        self.prepared = prepared
        split_indices(10, val_fraction, test_fraction, split_seed)  # fail early on bad fractions
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.stream: MinibatchStream | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for split, (x, y) in self.split_arrays().items():
            self.splits[split] = (torch.from_numpy(x), torch.from_numpy(y))
        self.stream = MinibatchStream(*self.splits["train"], self.batch_size, self.seed)

    def split_arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"train"|"val"|"test": (x, y)}``: from the prepared ``.npz`` if given, else from the source."""
        if self.prepared is not None:
            path = Path(self.prepared)
            if not path.is_file():
                raise DataUnavailableError(f"data.prepared: no file {path}; run `dvc repro prepare` (or ggevo-prepare)")
            with np.load(path) as npz:
                if str(npz["name"]) != self.name:
                    raise DataUnavailableError(f"data.prepared: {path} holds {npz['name']}, not {self.name}")
                return {s: (npz[f"{s}_x"], npz[f"{s}_y"]) for s in ("train", "val", "test")}
        x, y = load_arrays(self.name, self.data_dir)
        if self.limit is not None:
            x, y = x[: self.limit], y[: self.limit]
        return {s: (x[idx], y[idx])
                for s, idx in split_indices(len(x), self.val_fraction, self.test_fraction, self.split_seed).items()}

    def save_prepared(self, path: Path) -> None:
        """Write the splits as one ``.npz`` (``<split>_x``, ``<split>_y``, ``name``)."""
        arrays = {f"{s}_{k}": a for s, (x, y) in self.split_arrays().items() for k, a in (("x", x), ("y", y))}
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, name=np.array(self.name), **arrays)

    @property
    def input_dim(self) -> int:
        self.setup()
        return int(self.splits["train"][0].shape[1])

    def batches(self, split: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The whole split in order, in chunks of ``eval_batch_size``."""
        self.setup()
        x, y = self.splits[split]
        return [(x[i : i + self.eval_batch_size], y[i : i + self.eval_batch_size])
                for i in range(0, len(x), self.eval_batch_size)]

    def train_dataloader(self) -> MinibatchStream:
        self.setup()
        return self.stream

    def val_dataloader(self) -> "SplitBatches":
        return SplitBatches(self.batches("val"))

    def test_dataloader(self) -> "SplitBatches":
        return SplitBatches(self.batches("test"))


class SplitBatches:
    """One evaluation loader: a sized iterable of batches (a bare list would read as several loaders)."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]):
        self._batches = batches

    def __iter__(self):
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)
