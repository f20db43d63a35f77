"""Gradient-guided SBX, plain SBX and the mutations: the method's claims, and the kernel against the reference."""

import numpy as np
import pytest
import torch

from ggevo.ea.operators import grad_guided_sbx, polynomial_mutation, sbx, zero_mutation
from ggevo.ea.operators.counter_rng import counter_hash, remix
from ggevo.ea.operators.crossover.sbx_kernel import run_kernel, sbx_kernel, spread, spreads
from tests.ea.reference import reference_children


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _quadratic_parents(n_pairs=20, dim=2000, seed=0):
    """Parents in [-1, 1]; the quadratic Σ (x - t)² with targets t = ±5 far outside, so each
    coordinate's descent direction is the sign of t for both parents."""
    g = _gen(seed)
    parents = torch.rand(2, n_pairs, dim, generator=g) * 2 - 1
    target = torch.where(torch.rand(dim, generator=g) < 0.5, -5.0, 5.0)
    grads = 2 * (parents - target)
    return parents, grads, target


def _descent_fraction(parents, children, grads):
    moved = children - parents
    differ = (parents[0] != parents[1]).unsqueeze(0).expand_as(parents)
    descent = torch.sign(moved) == -torch.sign(grads)
    return float(descent[differ].float().mean())


def test_children_move_down_the_gradient():
    parents, grads, _ = _quadratic_parents()
    children = grad_guided_sbx(parents, grads, sparsity_preservation=0.0, generator=_gen(1))
    assert _descent_fraction(parents, children, grads) >= 0.9


def test_plain_sbx_moves_down_only_half_the_time():
    parents, grads, _ = _quadratic_parents()
    children = sbx(parents, generator=_gen(1))
    assert abs(_descent_fraction(parents, children, grads) - 0.5) < 0.03


def test_guided_children_lower_the_quadratic():
    parents, grads, target = _quadratic_parents()
    children = grad_guided_sbx(parents, grads, sparsity_preservation=0.0, generator=_gen(2))
    loss = lambda x: ((x - target) ** 2).sum(-1)  # noqa: E731
    assert (loss(children) < loss(parents)).float().mean() == 1.0


def test_sparsity_preservation_keeps_every_parent_zero():
    g = _gen(3)
    parents = torch.randn(2, 16, 500, generator=g) * (torch.rand(2, 16, 500, generator=g) < 0.5)
    grads = torch.randn(2, 16, 500, generator=g)
    children = grad_guided_sbx(parents, grads, sparsity_preservation=1.0, exchange=False, generator=g)
    zeros = parents == 0
    assert zeros.sum() > 1000
    assert bool((children[zeros] == 0).all())
    # without preservation most of those zeros are lost: the check above can fail
    free = grad_guided_sbx(parents, grads, sparsity_preservation=0.0, exchange=False, generator=g)
    assert float((free[zeros] == 0).float().mean()) < 0.6


def test_sparsity_preservation_probability_is_per_pair():
    g = _gen(4)
    parents = torch.randn(2, 400, 50, generator=g) * (torch.rand(2, 400, 50, generator=g) < 0.5)
    grads = torch.randn(2, 400, 50, generator=g)
    children = grad_guided_sbx(parents, grads, sparsity_preservation=0.5, exchange=False, generator=g)
    zeros = parents == 0
    kept_all = ((children == 0) | ~zeros).all(dim=2).all(dim=0)  # pair kept every zero
    assert abs(float(kept_all.float().mean()) - 0.5) < 0.1


def test_inputs_are_not_modified():
    parents, grads, _ = _quadratic_parents(4, 100)
    before = parents.clone(), grads.clone()
    grad_guided_sbx(parents, grads, generator=_gen())
    assert torch.equal(parents, before[0]) and torch.equal(grads, before[1])


@pytest.mark.parametrize("guided,exchange", [(True, True), (True, False), (False, False)])
def test_kernel_matches_reference_transcription(guided, exchange):
    g = _gen(5)
    X = torch.randn(8, 300, generator=g) * (torch.rand(8, 300, generator=g) < 0.7)
    G = torch.randn(8, 300, generator=g) * (torch.rand(8, 300, generator=g) < 0.8)  # some exact zeros
    pairs = torch.randperm(8, generator=g).view(2, 4)
    keep = torch.tensor([[True], [False], [True], [False]])
    lower, upper = torch.full((300,), -1.5), torch.full((300,), 1.5)
    key = torch.tensor([123456789, 987654321])
    got = sbx_kernel(X, G, pairs, keep, lower, upper, key, 20.0, guided, exchange)
    want = reference_children(X, G, pairs, keep.squeeze(1).numpy(), lower, upper, key, 20.0, guided, exchange)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_one_spread_per_child_is_exactly_the_selected_half():
    """The kernel's single log/exp per child gives the very bits of computing both halves and selecting."""
    h = counter_hash(torch.arange(100_000, dtype=torch.int64), torch.tensor([42, 4242]))
    high = (remix(h) & 4) != 0
    low_half, high_half = spreads(h, remix(h), 20.0, torch.float32)
    assert torch.equal(spread(h, high, 20.0, torch.float32), torch.where(high, high_half, low_half))
    assert high.any() and (~high).any()


@pytest.mark.slow
def test_compiled_kernel_matches_eager():
    parents, grads, _ = _quadratic_parents(6, 4000)
    X, G = parents.reshape(12, -1), grads.reshape(12, -1)
    pairs = torch.arange(12).view(2, 6)
    lo, hi = torch.full((4000,), -10.0), torch.full((4000,), 10.0)
    eager = run_kernel(X, G, pairs, eta=20.0, sparsity_preservation=0.5, guided=True, exchange=True,
                       lower=lo, upper=hi, generator=_gen(7))
    compiled = run_kernel(X, G, pairs, eta=20.0, sparsity_preservation=0.5, guided=True, exchange=True,
                          lower=lo, upper=hi, generator=_gen(7), compiled=True)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)


def test_children_respect_bounds():
    g = _gen(8)
    parents = torch.rand(2, 10, 1000, generator=g) * 1.8 - 0.9
    grads = torch.randn(2, 10, 1000, generator=g)
    lo, hi = torch.full((1000,), -1.0), torch.full((1000,), 1.0)
    children = grad_guided_sbx(parents, grads, eta=0.5, lower=lo, upper=hi, generator=g)
    assert children.min() >= -1.0 and children.max() <= 1.0
    assert (children.abs() == 1.0).any()  # a wide spread (eta 0.5) does hit the bounds


def test_zero_mutation_rate_is_one_over_d():
    n, dim = 400, 5000
    x = torch.ones(n, dim)
    y = zero_mutation(x, generator=_gen(9))
    zeros = int((y == 0).sum())
    expected, sd = n, n**0.5  # n·D·(1/D), Poisson
    assert abs(zeros - expected) < 4 * sd
    assert torch.equal(x, torch.ones(n, dim))
    assert int((zero_mutation(x, rate=0.01, generator=_gen(9)) == 0).sum()) == pytest.approx(n * dim * 0.01, rel=0.05)


def test_polynomial_mutation_changes_few_entries_within_bounds():
    n, dim = 200, 3000
    x = torch.rand(n, dim) - 0.5
    lo, hi = torch.full((dim,), -1.0), torch.full((dim,), 1.0)
    y = polynomial_mutation(x, lower=lo, upper=hi, generator=_gen(10))
    changed = int((y != x).sum())
    assert abs(changed - n) < 4 * n**0.5
    assert y.min() >= -1 and y.max() <= 1


def test_bad_arguments_fail_clearly():
    parents, grads, _ = _quadratic_parents(2, 10)
    with pytest.raises(ValueError, match="eta"):
        grad_guided_sbx(parents, grads, eta=-1.0, generator=_gen())
    with pytest.raises(ValueError, match="sparsity_preservation"):
        grad_guided_sbx(parents, grads, sparsity_preservation=1.5, generator=_gen())
    with pytest.raises(ValueError, match="grads"):
        grad_guided_sbx(parents, grads[:, :1], generator=_gen())
