"""Bounded polynomial mutation (Deb), the plain NSGA-II ablation's mutation (docs/ALGORITHM.md, "Ablations")."""

from __future__ import annotations

import torch

from ggevo.ea.operators.mutation.sites import mutation_sites


def polynomial_mutation_(
    x: torch.Tensor,
    *,
    lower: torch.Tensor,
    upper: torch.Tensor,
    eta: float = 20.0,
    rate: float | None = None,
    generator: torch.Generator,
) -> torch.Tensor:
    """In place on ``x`` (N×D), which the caller owns; ``lower``/``upper`` (D,) must be finite."""
    n, dim = x.shape
    if not (torch.isfinite(lower).all() and torch.isfinite(upper).all()):
        raise ValueError("polynomial mutation needs finite bounds")
    rows, cols = mutation_sites(n, dim, 1.0 / dim if rate is None else rate, generator, x.device)
    if rows.numel() == 0:
        return x
    r = torch.rand(rows.numel(), generator=generator).to(device=x.device, dtype=x.dtype)
    y, lo, hi = x[rows, cols], lower[cols], upper[cols]
    span = hi - lo
    power = 1.0 / (eta + 1.0)
    below = r < 0.5
    xy = torch.where(below, 1.0 - (y - lo) / span, 1.0 - (hi - y) / span)
    val = torch.where(
        below,
        2.0 * r + (1.0 - 2.0 * r) * xy ** (eta + 1.0),
        2.0 * (1.0 - r) + 2.0 * (r - 0.5) * xy ** (eta + 1.0),
    )
    deltaq = torch.where(below, val**power - 1.0, 1.0 - val**power)
    x[rows, cols] = torch.clamp(y + deltaq * span, lo, hi)
    return x


def polynomial_mutation(
    x: torch.Tensor,
    *,
    lower: torch.Tensor,
    upper: torch.Tensor,
    eta: float = 20.0,
    rate: float | None = None,
    generator: torch.Generator,
) -> torch.Tensor:
    """A copy of ``x`` (N×D) with each entry mutated with probability ``rate`` (default 1/D)."""
    return polynomial_mutation_(x.clone(), lower=lower, upper=upper, eta=eta, rate=rate, generator=generator)
