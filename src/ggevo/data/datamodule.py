"""A LightningDataModule over an in-memory data set with fixed train/val/test splits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from ggevo.data.sources import DATASETS, PUBLISHED_TEST, DataConfigError, DataUnavailableError, load_arrays
from ggevo.data.stream import MinibatchStream


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Disjoint train/val/test index arrays covering ``range(n)``, from a permutation fixed by ``seed``."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataConfigError(f"data.val_fraction/test_fraction: need two fractions summing below 1, "
                         f"got {val_fraction} and {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    return {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}


def published_split_indices(labels: np.ndarray, n_test: int, val_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """The data set's own test set (its last ``n_test`` rows) and validation carved from its training set,
    stratified: ``round(val_fraction · count)`` examples of each class, drawn with ``seed``."""
    if not 0 <= val_fraction < 1:
        raise DataConfigError(f"data.val_fraction: need a fraction below 1, got {val_fraction}")
    n_train = len(labels) - n_test
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels[:n_train]):
        members = np.flatnonzero(labels[:n_train] == c)
        val.append(rng.permutation(members)[: int(round(len(members) * val_fraction))])
    val = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(n_train), val)
    return {"val": val, "test": np.arange(n_train, len(labels)), "train": train}


NORMALIZATIONS = ("none", "standard")
TEST_SPLITS = ("random", "published")


def standardizer(train_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(mean, std)`` (d,) of the training features; a constant feature gets std 1."""
    mean = train_x.mean(axis=0, dtype=np.float64)
    std = train_x.std(axis=0, dtype=np.float64)
    return mean, np.where(std > 0, std, 1.0)


def short_sha1(*arrays: np.ndarray) -> str:
    """The first 12 hex digits of the SHA-1 of the arrays' bytes (dtype and shape included)."""
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:12]


class ArrayDataModule(pl.LightningDataModule):
    """Named data set → tensors → splits; the training loader is a ``MinibatchStream``.

    ``normalize="standard"`` standardises each feature by the training split's mean and std
    (applied to every split); ``features``/``classes``, when given, are checked against the data.
    ``test_split="published"`` keeps a data set's own test set (MNIST, Fashion-MNIST, CIFAR-10) and
    carves validation from its training set, stratified; ``"random"`` splits everything at random.
    """

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
        normalize: str = "none",
        features: int | None = None,
        classes: int | None = None,
        test_split: str = "random",
    ):
        super().__init__()
        if name not in DATASETS:
            raise DataConfigError(f"data.name: unknown data set {name!r}; choose one of {sorted(DATASETS)}")
        self.name = name
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed, self.seed = split_seed, seed
        self.data_dir = Path(data_dir)
        self.limit = limit
        self.prepared = prepared
        if normalize not in NORMALIZATIONS:
            raise DataConfigError(f"data.normalize: must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.normalize = normalize
        self.features, self.classes = features, classes
        if test_split not in TEST_SPLITS:
            raise DataConfigError(f"data.test_split: must be one of {TEST_SPLITS}, got {test_split!r}")
        if test_split == "published" and name not in PUBLISHED_TEST:
            raise DataConfigError(f"data.test_split: {name} has no published test set; use random "
                                  f"(published: {', '.join(sorted(PUBLISHED_TEST))})")
        self.test_split = test_split
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        split_indices(10, val_fraction, test_fraction, split_seed)  # fail early on bad fractions
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._split_idx: dict[str, np.ndarray] = {}
        self._published_test: int | None = None  # the published test set's size after ``limit``
        self.stream: MinibatchStream | None = None
        self._selection: MinibatchStream | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        arrays = self.split_arrays()
        self._check(arrays)
        if self.normalize == "standard":
            self.mean, self.std = standardizer(arrays["train"][0])
        for split, (x, y) in arrays.items():
            if self.normalize == "standard":
                x = ((x - self.mean) / self.std).astype(np.float32)
            self.splits[split] = (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y))
        self.stream = MinibatchStream(*self.splits["train"], self.batch_size, self.seed)

    def selection_stream(self) -> MinibatchStream:
        """Batches of ``eval_batch_size`` of the validation split (all of it when it is smaller), one per
        generation (``optimizer.select_on``), drawn with their own seed; generation ``t`` always gets
        the same one, resumed or not."""
        if self._selection is None:
            x, y = self.splits["val"]
            if len(x) == 0:
                raise DataConfigError("optimizer.select_on: val needs a validation split (data.val_fraction > 0)")
            self._selection = MinibatchStream(x, y, min(self.eval_batch_size, len(x)), self.seed + 1_000_000)
        return self._selection

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
        x, y = self._loaded()
        self._split_idx = self.split_index_arrays(y)
        return {s: (x[idx], y[idx]) for s, idx in self._split_idx.items()}

    def _loaded(self) -> tuple[np.ndarray, np.ndarray]:
        """The source's arrays, cut to ``limit`` at random (sources may be sorted by label: mnist5k is); with
        the published test set, the cut keeps the training and test parts in proportion, in their order."""
        x, y = load_arrays(self.name, self.data_dir)
        if self.limit is None:
            return x, y
        rng = np.random.default_rng(self.split_seed)
        if self.test_split == "published":
            n_test = PUBLISHED_TEST[self.name]
            n_train = len(x) - n_test
            k_train = int(round(self.limit * n_train / len(x)))
            keep = np.concatenate([np.sort(rng.permutation(n_train)[:k_train]),
                                   n_train + np.sort(rng.permutation(n_test)[: self.limit - k_train])])
            self._published_test = self.limit - k_train
        else:
            keep = np.sort(rng.permutation(len(x))[: self.limit])
        return x[keep], y[keep]

    def split_index_arrays(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """``{"train"|"val"|"test": indices}`` into the loaded arrays (``test_split`` decides how)."""
        if self.test_split == "published":
            n_test = PUBLISHED_TEST[self.name] if self._published_test is None else self._published_test
            return published_split_indices(labels, n_test, self.val_fraction, self.split_seed)
        return split_indices(len(labels), self.val_fraction, self.test_fraction, self.split_seed)

    def _check(self, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """``features``/``classes`` against the loaded arrays (labels may miss classes when ``limit`` cuts the set)."""
        d = arrays["train"][0].shape[1]
        if self.features is not None and d != self.features:
            raise DataConfigError(f"data.features: {self.name} has {d} features per example, "
                             f"the config says {self.features}")
        if self.classes is not None:
            seen = max(int(y.max()) + 1 for _, y in arrays.values() if len(y))
            if seen > self.classes or (self.limit is None and seen != self.classes):
                raise DataConfigError(f"data.classes: {self.name} has labels 0..{seen - 1}, "
                                 f"the config says {self.classes} classes")

    def summary(self) -> dict[str, str]:
        """What fixes the data a run sees (sizes, normalisation, content hashes), as strings for MLflow tags."""
        self.setup()
        out = {"name": self.name, "source": f"prepared {Path(self.prepared).name}" if self.prepared else "loader",
               "splits": ",".join(f"{s}={len(self.splits[s][1])}" for s in ("train", "val", "test")),
               "normalize": self.normalize, "features": str(self.input_dim)}
        if self.prepared is None:
            out["test_split"] = self.test_split
            idx = self._split_idx
            out["split_sha1"] = short_sha1(*(idx[s] for s in ("train", "val", "test")))
        out["data_sha1"] = short_sha1(*(a.numpy() for s in ("train", "val", "test") for a in self.splits[s]))
        return out

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
