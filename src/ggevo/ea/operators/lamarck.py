"""Lamarckian local search: one masked Adam step per individual from the gradient its evaluation
already gave (beyond the paper; ``optimizer=gemonn_plus``).

Each individual carries its own Adam moments ``M``, ``V`` (n×D) and step count ``T`` (n,), which
travel with it through selection; a child starts from the moments of the parent whose place it
takes. Zeros are held: an entry that is 0 stays 0, so the step never changes an individual's
density (docs/ALGORITHM.md's sparsity is moved only by the evolutionary operators).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ggevo.compiling import maybe_compiled


def correctly_rounded_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` rounded once to x's dtype, on every machine and in compiled code alike.

    Eager torch's float32 square root can differ from the correctly rounded one in the last bit
    (vendor math libraries), while compiled code rounds correctly; the square root taken in double
    precision and rounded to float32 is the correctly rounded one (double has more than twice
    float32's precision), so eager and compiled local search give the same numbers. Compiled code
    takes the float32 square root itself (the vector unit's, correctly rounded by IEEE 754): the same
    bits without the round trip through double.
    """
    if x.dtype == torch.float64 or torch.compiler.is_compiling():  # compiled: the IEEE square root
        return x.sqrt()
    return x.double().sqrt().to(x.dtype)


def adam_kernel(
    X: torch.Tensor, G: torch.Tensor, M: torch.Tensor, V: torch.Tensor, on: torch.Tensor,
    c1: torch.Tensor, c2: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
    lr: torch.Tensor, b1: torch.Tensor, one_minus_b1: torch.Tensor, b2: torch.Tensor,
    one_minus_b2: torch.Tensor, eps: torch.Tensor, decay: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """New ``(X, M, V)`` (n×D): the moments of the rows ``on`` (n×1 bool) from the gradient on the
    nonzero entries, then the step ``lr · (M / c1) / (sqrt(V / c2) + eps)`` on those entries, clamped
    to the bounds; ``c1 = 1 - b1**t``, ``c2 = 1 - b2**t`` (n×1) are the bias corrections. ``decay``
    (a 0-d weight decay λ, or None for none) also takes ``lr · λ · X`` from those entries: decoupled
    weight decay, as AdamW (Loshchilov & Hutter 2019)."""
    keep = (X != 0) & on
    g = torch.where(keep, G, 0.0)
    M = torch.where(on, M * b1 + g * one_minus_b1, M)
    V = torch.where(on, V * b2 + g * g * one_minus_b2, V)
    step = (M / c1) / (correctly_rounded_sqrt(V / c2) + eps)
    moved = X - lr * step if decay is None else X - lr * step - lr * decay * X
    Xn = torch.clamp(torch.where(keep, moved, X), lower, upper)
    # clamping or rounding may not create a zero the mask did not hold, nor revive one
    return torch.where(keep, Xn, X), M, V


def masked_adam_step(
    X: torch.Tensor,
    G: torch.Tensor,
    M: torch.Tensor,
    V: torch.Tensor,
    T: torch.Tensor,
    *,
    lr: float | torch.Tensor,
    active: torch.Tensor | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    lower: torch.Tensor | None = None,
    upper: torch.Tensor | None = None,
    compiled: bool = False,
    inplace: bool = False,
    weight_decay: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam step on every row of ``X`` (n×D) along ``G`` (n×D), zeros held; returns new
    ``(X, M, V, T)``. ``T`` (n,) counts each row's steps (float, so a checkpoint keeps it exactly
    up to 2**24). Rows where ``active`` (n,) bool is False are returned unchanged (a non-finite
    loss gives no direction). ``lr`` is one step size, or one per row ((n,), positive).

    ``compiled`` runs ``adam_kernel`` compiled: one loop over n×D memory where eager torch makes a
    dozen passes, with the same numbers bit for bit (its operations are correctly rounded IEEE ones
    in X's dtype, its constants 0-d tensors of that dtype rounded as eager torch rounds a Python
    float; compiled code would keep a Python float in double precision). ``inplace`` writes the new
    ``X``, ``M`` and ``V`` into the tensors given (views of a population's rows, say) and returns them.
    ``weight_decay`` λ > 0 shrinks each live entry by ``lr · λ`` of itself as well (AdamW's decoupled
    decay); 0 leaves the step exactly as without it.
    """
    if not (X.shape == G.shape == M.shape == V.shape) or T.shape != X.shape[:1]:
        raise ValueError(f"shapes disagree: X {tuple(X.shape)}, G {tuple(G.shape)}, M {tuple(M.shape)}, "
                         f"V {tuple(V.shape)}, T {tuple(T.shape)}")
    per_row = isinstance(lr, torch.Tensor)
    if per_row and lr.shape != X.shape[:1]:
        raise ValueError(f"a step size per row needs shape {tuple(X.shape[:1])}, got {tuple(lr.shape)}")
    if not bool((torch.as_tensor(lr) > 0).all()):
        raise ValueError(f"local search needs a positive learning rate, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight decay must be >= 0, got {weight_decay}")
    b1, b2 = betas
    on = torch.ones(X.shape[0], dtype=torch.bool, device=X.device) if active is None else active
    T = T + on.to(T.dtype)
    t = T.clamp_min(1.0).unsqueeze(1)
    inf = torch.tensor(float("inf"), dtype=X.dtype, device=X.device)
    lower = (-inf).expand(X.shape[1]) if lower is None else lower
    upper = inf.expand(X.shape[1]) if upper is None else upper
    step = lr.to(X.dtype).unsqueeze(1) if per_row else torch.tensor(lr, dtype=X.dtype)
    scalars = torch.tensor([b1, 1 - b1, b2, 1 - b2, eps], dtype=X.dtype).to(X.device)
    decay = torch.tensor(weight_decay, dtype=X.dtype).to(X.device) if weight_decay else None
    args = (X, G, M, V, on.unsqueeze(1), 1 - b1**t, 1 - b2**t, lower, upper, step.to(X.device), *scalars, decay)
    if inplace:
        maybe_compiled(adam_kernel_, compiled)(*args)
        return X, M, V, T
    Xn, M, V = maybe_compiled(adam_kernel, compiled)(*args)
    return Xn, M, V, T


def adam_kernel_(X: torch.Tensor, G: torch.Tensor, M: torch.Tensor, V: torch.Tensor, *rest: torch.Tensor | None) -> None:
    """``adam_kernel`` written into ``X``, ``M`` and ``V`` themselves (compiled, one loop that stores in place)."""
    Xn, Mn, Vn = adam_kernel(X, G, M, V, *rest)
    X.copy_(Xn)
    M.copy_(Mn)
    V.copy_(Vn)


class Moments(NamedTuple):
    """Each individual's Adam state: ``M``, ``V`` (n×D) and step count ``T`` (n,)."""

    M: torch.Tensor
    V: torch.Tensor
    T: torch.Tensor

    @classmethod
    def zeros(cls, X: torch.Tensor) -> Moments:
        return cls(torch.zeros_like(X), torch.zeros_like(X), torch.zeros(X.shape[0], dtype=X.dtype, device=X.device))

    def rows(self, index: torch.Tensor) -> Moments:
        return Moments(self.M[index], self.V[index], self.T[index])


def local_search(X: torch.Tensor, G: torch.Tensor, moments: Moments, *, lr: float | torch.Tensor,
                 active: torch.Tensor | None = None, lower: torch.Tensor | None = None,
                 upper: torch.Tensor | None = None, compiled: bool = False,
                 inplace: bool = False, weight_decay: float = 0.0) -> tuple[torch.Tensor, Moments]:
    """``masked_adam_step`` on a population with its moments; returns ``(X, moments)`` after it
    (``inplace``: ``X`` and the moments' ``M``, ``V`` themselves, written; ``T`` is new either way)."""
    X, M, V, T = masked_adam_step(X, G, *moments, lr=lr, active=active, lower=lower, upper=upper,
                                  compiled=compiled, inplace=inplace, weight_decay=weight_decay)
    return X, Moments(M, V, T)


def inherit(moments: Moments, parents: torch.Tensor, children: torch.Tensor, *, enabled: bool = True,
            compiled: bool = False) -> Moments:
    """The moments children (m×D) start from: those of ``parents`` (m,), the parent whose place each
    child takes, zeroed where the child is 0; fresh zeros when not ``enabled``. ``compiled`` gathers and
    zeroes in one vectorised loop, where eager torch's select takes a branch per entry: 0.11 ms against 3.0 ms
    for two children of the paper's 393,284 entries (``benchmarks/population_ops.py``), the same numbers."""
    if not enabled:
        return Moments.zeros(children)
    M, V = maybe_compiled(inherited_rows, compiled)(moments.M, moments.V, parents, children)
    return Moments(M, V, moments.T[parents])


def inherited_rows(M: torch.Tensor, V: torch.Tensor, parents: torch.Tensor,
                   children: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``parents`` of ``M`` and ``V`` (n×D), +0.0 where ``children`` (m×D) is 0 (``inherit``)."""
    dead = children == 0
    return torch.where(dead, 0.0, M[parents]), torch.where(dead, 0.0, V[parents])
