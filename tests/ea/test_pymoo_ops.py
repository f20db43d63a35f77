"""The torch ports of pymoo's SBX and polynomial mutation against pymoo's own functions, given the
same random numbers (the baseline keeps pymoo's operator semantics)."""

import numpy as np
import pytest
import torch
from pymoo.operators.crossover.sbx import cross_sbx
from pymoo.operators.mutation.pm import mut_pm

from ggevo.compiling import compile_available
from ggevo.ea.operators.crossover.pymoo_sbx import pymoo_sbx, sbx_children
from ggevo.ea.operators.mutation.pymoo_pm import pm_values, pymoo_pm_

ETA = 20.0


def _parents(rng: np.random.Generator, n_matings: int, n_var: int):
    xl, xu = np.full(n_var, -2.0), np.full(n_var, 3.0)
    xl[1] = xu[1] = 0.5  # a fixed coordinate is never crossed
    X = rng.uniform(xl, xu, size=(2, n_matings, n_var))
    X[1, 0, :4] = X[0, 0, :4]  # identical parents on a few coordinates: too close to cross
    X[:, 2, 5] = (xl[5], xu[5])  # parents at the bounds
    return X, xl, xu


def test_sbx_children_are_pymoos_given_its_draws():
    X, xl, xu = _parents(np.random.default_rng(0), n_matings=6, n_var=50)
    col = lambda v: np.full((6, 1), v)  # noqa: E731
    Q = cross_sbx(X.copy(), xl, xu, col(ETA), col(0.5), col(0.5), random_state=np.random.default_rng(7))
    # the same draws, in pymoo's order: which coordinates cross, then one spread and one coin per crossed one
    rs = np.random.default_rng(7)
    u_var = rs.random((6, 50))
    cross = (u_var < 0.5) & (np.abs(X[0] - X[1]) > 1e-14) & (xl != xu)
    u_spread, u_exchange = np.full((6, 50), 0.5), np.full((6, 50), 0.5)
    u_spread[cross] = rs.random(cross.sum())
    u_exchange[cross] = rs.random(cross.sum())
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    cp, cq = sbx_children(t(X[0]), t(X[1]), t(xl), t(xu), t(u_var), t(u_spread), t(u_exchange), ETA, 0.5, 0.5)
    np.testing.assert_allclose(cp.numpy(), Q[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cq.numpy(), Q[1], rtol=1e-12, atol=1e-12)
    assert (Q[0] != X[0]).any() and (Q[0] == X[0]).any()  # some coordinates crossed, some kept


def test_pm_values_are_pymoos_given_its_draws():
    rng = np.random.default_rng(1)
    xl, xu = np.full(40, -1.0), np.full(40, 4.0)
    X = rng.uniform(xl, xu, size=(8, 40))
    X[0, :3] = xl[:3]
    Y = mut_pm(X.copy(), xl, xu, np.full(8, ETA), np.full(8, 0.3), at_least_once=False,
               random_state=np.random.default_rng(3))
    rs = np.random.default_rng(3)
    mut = rs.random((8, 40)) < 0.3
    u = rs.random(mut.sum())
    rows, cols = np.nonzero(mut)
    t = torch.from_numpy
    got = pm_values(t(X[rows, cols]), t(xl[cols]), t(xu[cols]), t(u), ETA).numpy()
    np.testing.assert_allclose(got, Y[rows, cols], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(Y[~mut], X[~mut])


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.skipif(
    not compile_available(torch.device("cpu")), reason="torch.compile needs a C++ compiler"))])
def test_pymoo_sbx_on_a_population_stays_in_bounds_and_crosses_about_half(compiled):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(8, 5000, generator=g) * 4 - 2
    lo, hi = torch.full((5000,), -2.0), torch.full((5000,), 2.0)
    pairs = torch.arange(8).view(2, 4)
    C = pymoo_sbx(X, pairs, lower=lo, upper=hi, eta=ETA, generator=g, compiled=compiled)
    assert C.shape == (2, 4, 5000) and (C >= -2).all() and (C <= 2).all()
    changed = (C[0] != X[pairs[0]]).float().mean()
    assert 0.45 < changed < 0.55  # prob_var 0.5
    # a child's coordinate is its own parent's, or its partner's after pymoo's exchange, or in between
    lo_p, hi_p = torch.minimum(X[pairs[0]], X[pairs[1]]), torch.maximum(X[pairs[0]], X[pairs[1]])
    assert ((C[0] < lo_p) | (C[0] > hi_p)).any()  # SBX also spreads beyond the parents


def test_pymoo_pm_mutates_about_one_coordinate_a_row_within_bounds():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(200, 1000, generator=g)
    lo, hi = torch.zeros(1000), torch.ones(1000)
    lo[0] = hi[0] = 0.5
    X[:, 0] = 0.5
    Y = pymoo_pm_(X.clone(), lower=lo, upper=hi, eta=ETA, generator=g)
    per_row = (Y != X).sum(dim=1).float()
    assert 0.8 < per_row.mean() < 1.2  # rate 1/D
    assert (Y[:, 0] == 0.5).all() and (Y >= 0).all() and (Y <= 1).all()
