"""The Lamarckian step of ``optimizer=gemonn_plus``: a masked Adam step that holds zeros, its moments
inherited by children, and torch's Adam on a dense individual; compiled and per-row steps as eager ones."""

import pytest
import torch

from ggevo.compiling import compile_available
from ggevo.ea.operators.lamarck import Moments, inherit, masked_adam_step


def test_lamarckian_step_holds_zeros_and_moves_the_rest_down_the_gradient():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(4, 50, generator=g) * (torch.rand(4, 50, generator=g) < 0.5)
    G = torch.randn(4, 50, generator=g)
    Xn, M, V, T = masked_adam_step(X, G, *Moments.zeros(X), lr=0.01)
    assert torch.equal(Xn == 0, X == 0)
    live = X != 0
    # Adam's first step moves each live entry by lr against the sign of its gradient
    assert torch.allclose((Xn - X)[live], -0.01 * G.sign()[live], atol=1e-6)
    assert torch.equal(M == 0, ~live | (G == 0)) and torch.equal(T, torch.ones(4))


def test_lamarckian_step_leaves_inactive_rows_alone():
    X = torch.ones(3, 5)
    active = torch.tensor([True, False, True])
    Xn, M, V, T = masked_adam_step(X, torch.ones(3, 5), *Moments.zeros(X), lr=0.1, active=active)
    assert torch.equal(Xn[1], X[1]) and not torch.equal(Xn[0], X[0])
    assert T.tolist() == [1.0, 0.0, 1.0] and M[1].abs().sum() == 0


def test_children_inherit_the_moments_of_the_parent_in_whose_place_they_stand():
    X = torch.arange(1.0, 13.0).view(3, 4)
    moments = Moments(X * 10, X * 100, torch.tensor([1.0, 2.0, 3.0]))
    children = torch.ones(2, 4)
    children[0, 1] = 0
    got = inherit(moments, torch.tensor([2, 0]), children)
    assert got.T.tolist() == [3.0, 1.0]
    assert got.M[0].tolist() == [90.0, 0.0, 110.0, 120.0] and torch.equal(got.M[1], moments.M[0])
    assert torch.equal(inherit(moments, torch.tensor([2, 0]), children, enabled=False).M, torch.zeros(2, 4))


@pytest.mark.skipif(not compile_available(torch.device("cpu")), reason="torch.compile needs a C++ compiler")
def test_compiled_inheritance_gives_the_masked_fill_moments_bit_for_bit():
    """Compiled, a child's moments are its parent's rows with +0.0 where the child is 0, as a masked fill gives them
    (negative moments zeroed to +0.0, not -0.0)."""
    g = torch.Generator().manual_seed(4)
    M, V = torch.randn(6, 3000, generator=g), torch.rand(6, 3000, generator=g)
    moments = Moments(M, V, torch.arange(6.0))
    children = torch.randn(4, 3000, generator=g) * (torch.rand(4, 3000, generator=g) < 0.5)
    parents = torch.tensor([5, 0, 5, 2])
    for compiled in (False, True):
        got = inherit(moments, parents, children, compiled=compiled)
        dead = children == 0
        assert torch.equal(got.M.view(torch.int32), M[parents].masked_fill(dead, 0.0).view(torch.int32))
        assert torch.equal(got.V.view(torch.int32), V[parents].masked_fill(dead, 0.0).view(torch.int32))
        assert torch.equal(got.T, torch.tensor([5.0, 0.0, 5.0, 2.0]))


def test_lamarckian_steps_on_a_dense_individual_are_torch_adam():
    g = torch.Generator().manual_seed(1)
    w = torch.nn.Parameter(torch.randn(30, generator=g))
    X = w.detach().clone().unsqueeze(0)
    moments = Moments.zeros(X)
    adam = torch.optim.Adam([w], lr=0.05)
    for _ in range(20):
        target = torch.randn(30, generator=g)
        adam.zero_grad()
        ((w - target) ** 2).sum().backward()
        X, M, V, T = masked_adam_step(X, 2 * (X - target), *moments, lr=0.05)
        moments = Moments(M, V, T)
        adam.step()
    assert torch.allclose(X[0], w.detach(), atol=1e-5)


@pytest.mark.skipif(not compile_available(torch.device("cpu")), reason="torch.compile needs a C++ compiler")
def test_compiled_lamarckian_step_gives_the_eager_numbers_bit_for_bit():
    g = torch.Generator().manual_seed(3)
    n, dim = 7, 4099
    X = torch.randn(n, dim, generator=g)
    X[torch.rand(n, dim, generator=g) < 0.4] = 0
    G = 3 * torch.randn(n, dim, generator=g)
    M, V = 0.1 * torch.randn(n, dim, generator=g), 0.01 * torch.rand(n, dim, generator=g)
    T = torch.arange(n, dtype=torch.float32)
    active = torch.tensor([True, True, False, True, True, True, False])
    bounds = torch.full((dim,), -1.5), torch.full((dim,), 1.5)
    for (lower, upper), decay in ((bounds, 0.0), ((None, None), 0.0), (bounds, 0.3)):
        eager = masked_adam_step(X, G, M, V, T, lr=0.02, active=active, lower=lower, upper=upper, weight_decay=decay)
        compiled = masked_adam_step(X, G, M, V, T, lr=0.02, active=active, lower=lower, upper=upper, compiled=True,
                                    weight_decay=decay)
        for name, a, b in zip("XMVT", eager, compiled):
            assert torch.equal(a, b), name
        for on in (False, True):  # written in place into rows of a bigger tensor: the same numbers
            rows = [torch.cat((t, t[:2])).clone() for t in (X, M, V)]
            Xi, Mi, Vi = (r[:n] for r in rows)
            out = masked_adam_step(Xi, G, Mi, Vi, T, lr=0.02, active=active, lower=lower, upper=upper,
                                   compiled=on, inplace=True, weight_decay=decay)
            assert out[0] is Xi and out[1] is Mi and out[2] is Vi
            for name, a, b in zip("XMVT", eager, out):
                assert torch.equal(a, b), name
            assert all(torch.equal(r[n:], t[:2]) for r, t in zip(rows, (X, M, V)))  # the rest untouched


def test_compiled_and_eager_square_roots_agree_over_float32s_range():
    g = torch.Generator().manual_seed(11)
    n, dim = 3, 20011
    X, G = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
    M = torch.randn(n, dim, generator=g)
    V = torch.rand(n, dim, generator=g) * torch.pow(10.0, torch.empty(n, dim).uniform_(-30, 30, generator=g))
    T = torch.full((n,), 3.0)
    eager = masked_adam_step(X, G, M, V, T, lr=0.01)
    compiled = masked_adam_step(X, G, M, V, T, lr=0.01, compiled=True)
    for name, a, b in zip("XMVT", eager, compiled):
        assert torch.equal(a, b), name


def test_a_step_size_per_row_is_each_rows_own_step():
    g = torch.Generator().manual_seed(5)
    X = torch.randn(4, 257, generator=g)
    X[torch.rand(4, 257, generator=g) < 0.5] = 0
    G, M, V = torch.randn(4, 257, generator=g), 0.1 * torch.randn(4, 257, generator=g), torch.rand(4, 257, generator=g)
    T = torch.tensor([0.0, 3.0, 7.0, 1.0])
    lr = torch.tensor([0.001, 0.01, 0.02, 0.3])
    together = masked_adam_step(X, G, M, V, T, lr=lr)
    for i in range(4):
        alone = masked_adam_step(X[i:i + 1], G[i:i + 1], M[i:i + 1], V[i:i + 1], T[i:i + 1], lr=float(lr[i]))
        for a, b in zip(together, alone):
            assert torch.equal(a[i:i + 1], b)
    with pytest.raises(ValueError, match="per row"):
        masked_adam_step(X, G, M, V, T, lr=lr[:3])


def test_weight_decay_is_torchs_adamw_on_a_dense_row_and_holds_zeros():
    """``weight_decay`` makes the step AdamW's (decoupled decay): a dense row follows torch.optim.AdamW
    step for step (float64, so the two orders of the same arithmetic agree to rounding), and a row with
    zeros keeps them while its other entries shrink by ``lr · λ`` of themselves when the gradient is 0."""
    g = torch.Generator().manual_seed(8)
    x0 = torch.randn(1, 50, generator=g, dtype=torch.float64)
    target = torch.randn(1, 50, generator=g, dtype=torch.float64)
    p = torch.nn.Parameter(x0[0].clone())
    ref = torch.optim.AdamW([p], lr=0.05, weight_decay=0.4)
    X, moments = x0.clone(), Moments.zeros(x0)
    for _ in range(30):
        grad = 2 * (X - target)
        X, *moments = masked_adam_step(X, grad, *moments, lr=0.05, weight_decay=0.4)
        ref.zero_grad()
        ((p - target[0]) ** 2).sum().backward()
        ref.step()
    torch.testing.assert_close(X[0], p.detach(), rtol=1e-12, atol=1e-12)

    Y = torch.tensor([[0.0, 2.0, -4.0, 0.0]])
    Yn, *_ = masked_adam_step(Y, torch.zeros_like(Y), *Moments.zeros(Y), lr=0.1, weight_decay=0.5)
    torch.testing.assert_close(Yn, torch.tensor([[0.0, 2.0 * 0.95, -4.0 * 0.95, 0.0]]))
    with pytest.raises(ValueError, match="weight decay"):
        masked_adam_step(Y, torch.zeros_like(Y), *Moments.zeros(Y), lr=0.1, weight_decay=-0.1)
