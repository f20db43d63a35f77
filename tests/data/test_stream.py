"""The minibatch stream and the data splits."""

import pytest
import torch

from ggevo.data.datamodule import ArrayDataModule, split_indices
from ggevo.data.sources import DataUnavailableError, load_arrays
from ggevo.data.stream import MinibatchStream


def _stream(seed=0):
    x = torch.arange(100, dtype=torch.float32).unsqueeze(1)
    return MinibatchStream(x, torch.arange(100), batch_size=30, seed=seed)


def test_batches_cover_each_epoch_once_and_depend_on_the_seed():
    s = _stream()
    epoch = torch.cat([s.batch(t)[1] for t in range(3)])
    assert len(set(epoch.tolist())) == 90
    assert not torch.equal(s.batch(0)[1], s.batch(3)[1])  # next epoch, new permutation
    assert torch.equal(s.batch(4)[1], _stream().batch(4)[1])
    assert not torch.equal(s.batch(0)[1], _stream(seed=1).batch(0)[1])
    x, y, _ = s.batch(4)
    assert x.shape == (30, 1) and torch.equal(x[:, 0], y.float())  # each label beside its own example


def test_iteration_starts_where_seek_says():
    s = _stream()
    it = iter(s)
    assert [int(next(it)[2]) for _ in range(5)] == [0, 1, 2, 3, 4]
    r = _stream()
    r.seek(4)
    x, y, t = next(iter(r))
    assert int(t) == 4 and torch.equal(y, s.batch(4)[1])


def test_splits_are_disjoint_and_fixed():
    a = split_indices(1000, 0.1, 0.2, seed=3)
    b = split_indices(1000, 0.1, 0.2, seed=3)
    assert all((a[k] == b[k]).all() for k in a)
    assert len(a["val"]) == 100 and len(a["test"]) == 200 and len(a["train"]) == 700
    assert len(set(a["train"]) | set(a["val"]) | set(a["test"])) == 1000


def test_mnist5k_loads_offline_in_unit_range():
    x, y = load_arrays("mnist5k")
    assert x.shape == (5000, 784) and x.min() == 0.0 and x.max() == 1.0
    assert sorted(set(y.tolist())) == list(range(10))


def test_unknown_or_unavailable_data_fail_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="data.name"):
        ArrayDataModule(name="imagenet")
    with pytest.raises(DataUnavailableError) as err:
        load_arrays("mnist", tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte.gz" in message


def test_mnist_reads_idx_files_placed_in_the_data_dir(tmp_path):
    import gzip
    import struct

    import numpy as np

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem, n, images in (("train", 3, True), ("train", 3, False), ("t10k", 2, True), ("t10k", 2, False)):
        if images:
            arr = np.full((n, 28, 28), 255, dtype=np.uint8)
            header = struct.pack(">4B3I", 0, 0, 8, 3, n, 28, 28)
            name = f"{stem}-images-idx3-ubyte.gz"
        else:
            arr = np.arange(n, dtype=np.uint8)
            header = struct.pack(">4BI", 0, 0, 8, 1, n)
            name = f"{stem}-labels-idx1-ubyte.gz"
        with gzip.open(raw / name, "wb") as fh:
            fh.write(header + arr.tobytes())
    x, y = load_arrays("mnist", tmp_path)
    assert x.shape == (5, 784) and float(x.max()) == 1.0
    assert y.tolist() == [0, 1, 2, 0, 1]
