"""Magnitude mutation: a child's smallest prunable weights zeroed, never below its floor."""

import torch

from ggevo.ea.operators.mutation.magnitude_prune import _prune_row, kth_smallest, magnitude_prune_


def test_magnitude_pruning_drops_the_smallest_weights_only():
    X = torch.tensor([[0.5, -0.1, 0.0, 0.3, -0.9, 0.2, 0.05, 1.0, 0.4, -0.6, 7.0]])
    prunable = torch.ones(11, dtype=torch.bool)
    prunable[10] = False
    Y = magnitude_prune_(X.clone(), probability=1.0, fraction=0.3, prunable=prunable,
                         generator=torch.Generator().manual_seed(0))
    # 9 live prunable entries, 30% -> the 2 smallest (0.05 and -0.1) go; the exempt 7.0 stays
    assert torch.equal(Y != 0, (X != 0) & (X.abs() > 0.1))


def test_magnitude_pruning_stops_at_its_floor():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(3, 100, generator=g)
    X[1, 50:] = 0  # 50 nonzero
    X[2, 20:] = 0  # 20 nonzero: already below the floor
    prunable = torch.arange(100) >= 10  # the first 10 entries are never pruned, and count
    magnitude_prune_(X, probability=1.0, fraction=0.5, prunable=prunable, generator=g, min_nonzero=40)
    assert (X != 0).sum(dim=1).tolist() == [55, 40, 20]  # half of the 90 prunable; down to the floor; none
    assert bool((X[:, :10] != 0).all())


def test_kth_smallest_is_kthvalue_with_ties_in_every_dtype():
    g = torch.Generator().manual_seed(1)
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        for n in (1, 2, 9, 4096):
            v = torch.randn(n, generator=g).abs().to(dtype)
            v[::3] = v[0]  # ties
            for k in sorted({1, n // 2 + 1, n}):
                want = v.kthvalue(k).values
                got = kth_smallest(v, k)
                assert got.dtype == want.dtype and got.shape == want.shape
                assert torch.equal(got, want), (dtype, n, k)


def test_a_cpu_rows_prune_by_numpy_is_the_torch_one_bit_for_bit():
    """CPU rows of float16/32/64 are pruned through NumPy; the torch steps (any other device or dtype) zero the same
    entries, to +0.0, with ties at the threshold, negative zeros, NaN, exempt entries and every kind of floor."""
    g = torch.Generator().manual_seed(2)
    for dtype, ints in ((torch.float16, torch.int16), (torch.float32, torch.int32), (torch.float64, torch.int64)):
        for trial, floor in enumerate((0, 30, 700, 1100)):
            X = torch.randn(5, 2000, generator=g).to(dtype)
            X[torch.rand(5, 2000, generator=g) < 0.4] = 0
            X[0, :300] = 0.25  # ties at the threshold
            X[1, :40] = -0.0
            X[2, 7] = float("nan")
            prunable = torch.rand(2000, generator=g) < 0.9
            by_numpy = magnitude_prune_(X.clone(), probability=0.7, fraction=0.3, prunable=prunable,
                                        generator=torch.Generator().manual_seed(trial), min_nonzero=floor)
            by_torch = X.clone()
            chosen = (torch.rand(5, generator=torch.Generator().manual_seed(trial)) < 0.7).nonzero().squeeze(1)
            for i in chosen.tolist():
                _prune_row(by_torch[i], prunable, 0.3, floor)
            assert torch.equal(by_numpy.view(ints), by_torch.view(ints)), (dtype, floor)
            assert not torch.equal(by_numpy.view(ints), X.view(ints))  # something was pruned
