"""Lamarckian local search: one masked Adam step per individual from the gradient its evaluation
already gave (beyond the paper; ``optimizer=gemonn_plus``).

Each individual carries its own Adam moments ``M``, ``V`` (n×D) and step count ``T`` (n,), which
travel with it through selection; a child starts from the moments of the parent whose place it
takes. Zeros are held: an entry that is 0 stays 0, so the step never changes an individual's
density (ALGORITHM.md's sparsity is moved only by the evolutionary operators).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def masked_adam_step(
    X: torch.Tensor,
    G: torch.Tensor,
    M: torch.Tensor,
    V: torch.Tensor,
    T: torch.Tensor,
    *,
    lr: float,
    active: torch.Tensor | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    lower: torch.Tensor | None = None,
    upper: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam step on every row of ``X`` (n×D) along ``G`` (n×D), zeros held; returns new
    ``(X, M, V, T)``. ``T`` (n,) counts each row's steps (float, so a checkpoint keeps it exactly
    up to 2**24). Rows where ``active`` (n,) bool is False are returned unchanged (a non-finite
    loss gives no direction)."""
    if not (X.shape == G.shape == M.shape == V.shape) or T.shape != X.shape[:1]:
        raise ValueError(f"shapes disagree: X {tuple(X.shape)}, G {tuple(G.shape)}, M {tuple(M.shape)}, "
                         f"V {tuple(V.shape)}, T {tuple(T.shape)}")
    if lr <= 0:
        raise ValueError(f"local search needs a positive learning rate, got {lr}")
    b1, b2 = betas
    on = torch.ones(X.shape[0], dtype=torch.bool, device=X.device) if active is None else active
    keep = (X != 0) & on.unsqueeze(1)
    g = torch.where(keep, G, 0.0)
    M = torch.where(on.unsqueeze(1), M * b1 + g * (1 - b1), M)
    V = torch.where(on.unsqueeze(1), V * b2 + g * g * (1 - b2), V)
    T = T + on.to(T.dtype)
    t = T.clamp_min(1.0).unsqueeze(1)
    step = (M / (1 - b1**t)) / ((V / (1 - b2**t)).sqrt() + eps)
    Xn = torch.where(keep, X - lr * step, X)
    if lower is not None:
        Xn = torch.clamp(Xn, lower, upper)
    # clamping or rounding may not create a zero the mask did not hold, nor revive one
    return torch.where(keep, Xn, X), M, V, T


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


def local_search(X: torch.Tensor, G: torch.Tensor, moments: Moments, *, lr: float,
                 active: torch.Tensor | None = None, lower: torch.Tensor | None = None,
                 upper: torch.Tensor | None = None) -> tuple[torch.Tensor, Moments]:
    """``masked_adam_step`` on a population with its moments; returns ``(X, moments)`` after it."""
    X, M, V, T = masked_adam_step(X, G, *moments, lr=lr, active=active, lower=lower, upper=upper)
    return X, Moments(M, V, T)


def inherit(moments: Moments, parents: torch.Tensor, children: torch.Tensor, *, enabled: bool = True) -> Moments:
    """The moments children (m×D) start from: those of ``parents`` (m,), the parent whose place each
    child takes, zeroed where the child is 0; fresh zeros when not ``enabled``."""
    if not enabled:
        return Moments.zeros(children)
    got = moments.rows(parents)
    live = children != 0
    return Moments(torch.where(live, got.M, 0.0), torch.where(live, got.V, 0.0), got.T)
