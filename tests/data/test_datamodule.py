"""Splits: the published test set of MNIST-format data kept whole, validation carved from training, stratified."""

import gzip
import struct
import sys

import numpy as np
import pytest

from ggevo.data.datamodule import ArrayDataModule, published_split_indices
from ggevo.data.sources import DataConfigError

N_TRAIN, N_TEST = 200, 60


def _write_mnist(folder, rng):
    """MNIST's own four IDX files with N_TRAIN training and N_TEST test images, each image's first
    pixel its row number (mod 256) and its label cycling unevenly over 10 classes."""
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    labels = {"train": (np.arange(N_TRAIN) * 7 % 13 % 10).astype(np.uint8), "t10k": rng.integers(0, 10, N_TEST).astype(np.uint8)}
    for stem, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = (np.arange(n) + (0 if stem == "train" else N_TRAIN)) % 256
        images[:, 0, 1] = 255 if stem == "t10k" else 0  # marks the published test images
        with gzip.open(raw / f"{stem}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">4B3I", 0, 0, 8, 3, n, 28, 28) + images.tobytes())
        with gzip.open(raw / f"{stem}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">4BI", 0, 0, 8, 1, n) + labels[stem].tobytes())
    return labels


@pytest.fixture
def mnist_dir(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # read the files placed there, never download
    monkeypatch.setitem(__import__("ggevo.data.sources", fromlist=["PUBLISHED_TEST"]).PUBLISHED_TEST, "mnist", N_TEST)
    labels = _write_mnist(tmp_path, np.random.default_rng(0))
    return tmp_path, labels


def test_the_published_test_set_is_the_test_split_and_validation_is_stratified(mnist_dir):
    folder, labels = mnist_dir
    data = ArrayDataModule("mnist", data_dir=str(folder), val_fraction=0.2, test_split="published")
    data.setup()
    test_x, test_y = data.splits["test"]
    assert len(test_y) == N_TEST and bool((test_x[:, 1] == 1.0).all())  # every published test image, in order
    assert test_y.tolist() == labels["t10k"].tolist()
    val_y, train_y = data.splits["val"][1].numpy(), data.splits["train"][1].numpy()
    assert not bool((data.splits["val"][0][:, 1] == 1.0).any()) and not bool((data.splits["train"][0][:, 1] == 1.0).any())
    counts = np.bincount(labels["train"], minlength=10)
    assert np.bincount(val_y, minlength=10).tolist() == [int(round(c * 0.2)) for c in counts]  # each class in proportion
    assert len(val_y) + len(train_y) == N_TRAIN
    rows = lambda s: set((data.splits[s][0][:, 0] * 255).round().int().tolist())  # noqa: E731
    assert not rows("val") & rows("train") and rows("val") | rows("train") == set(range(N_TRAIN))
    assert data.summary()["test_split"] == "published"


def test_random_splits_are_unchanged_and_sets_without_a_test_set_refuse_published(mnist_dir):
    folder, _ = mnist_dir
    data = ArrayDataModule("mnist", data_dir=str(folder), val_fraction=0.1, test_fraction=0.2, test_split="random")
    data.setup()
    assert [len(data.splits[s][1]) for s in ("train", "val", "test")] == [182, 26, 52]
    with pytest.raises(DataConfigError, match="data.test_split: mnist5k has no published test set"):
        ArrayDataModule("mnist5k", test_split="published")
    with pytest.raises(DataConfigError, match="data.test_split: must be one of"):
        ArrayDataModule("mnist", test_split="canonical")


def test_a_limit_keeps_both_published_parts_in_proportion(mnist_dir):
    folder, _ = mnist_dir
    data = ArrayDataModule("mnist", data_dir=str(folder), batch_size=16, val_fraction=0.25, test_split="published",
                           limit=130)
    data.setup()
    assert len(data.splits["test"][1]) == 30 and bool((data.splits["test"][0][:, 1] == 1.0).all())
    assert len(data.splits["train"][1]) + len(data.splits["val"][1]) == 100


def test_published_indices_are_fixed_by_the_seed():
    y = np.arange(100) % 4
    a, b = published_split_indices(y, 20, 0.1, 3), published_split_indices(y, 20, 0.1, 3)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert not np.array_equal(a["val"], published_split_indices(y, 20, 0.1, 4)["val"])
