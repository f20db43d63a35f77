"""Magnitude mutation: a child's smallest prunable weights zeroed, never below its floor."""

import torch

from ggevo.ea.operators.magnitude_prune import kth_smallest, magnitude_prune_


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
