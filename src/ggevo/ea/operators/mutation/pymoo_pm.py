"""pymoo's polynomial mutation (``pymoo.operators.mutation.pm.mut_pm``) on torch tensors.

Per mutated coordinate, with ``δ1 = (x − xl) / (xu − xl)``, ``δ2 = (xu − x) / (xu − xl)`` and one
uniform ``u``: ``δq = (2u + (1 − 2u)(1 − δ1)^(η+1))^(1/(η+1)) − 1`` if ``u ≤ 0.5``, else
``1 − (2(1 − u) + 2(u − 0.5)(1 − δ2)^(η+1))^(1/(η+1))``; ``y = x + δq (xu − xl)``, clamped to the
bounds. Each coordinate mutates with probability ``rate`` (pymoo: ``min(0.5, 1/D)``), never where
the bounds coincide. Which coordinates mutate is drawn as in ``sites.mutation_sites`` (a binomial
count per row, then distinct columns), ~1 random number per mutated coordinate instead of pymoo's
one per coordinate. Applying it to an individual at all (pymoo's ``prob``, 0.9) stays with pymoo.
"""

from __future__ import annotations

import torch

from ggevo.ea.operators.mutation.sites import mutation_sites


def pm_values(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, u: torch.Tensor, eta: float) -> torch.Tensor:
    """Mutated values of the coordinates ``x`` (k,) with bounds ``lower``/``upper`` (k,) and uniforms ``u`` (k,)."""
    span = upper - lower
    delta1 = (x - lower) / span
    delta2 = (upper - x) / span
    power = 1.0 / (eta + 1.0)
    low = u <= 0.5
    val_low = 2.0 * u + (1.0 - 2.0 * u) * (1.0 - delta1).pow(eta + 1.0)
    val_high = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * (1.0 - delta2).pow(eta + 1.0)
    deltaq = torch.where(low, val_low.pow(power) - 1.0, 1.0 - val_high.pow(power))
    return torch.clamp(x + deltaq * span, lower, upper)


def pymoo_pm_(
    X: torch.Tensor,
    *,
    lower: torch.Tensor,
    upper: torch.Tensor,
    eta: float,
    rate: float | None = None,
    generator: torch.Generator,
) -> torch.Tensor:
    """In place on ``X`` (n×D), which the caller owns: pymoo's polynomial mutation of each coordinate
    with probability ``rate`` (default ``min(0.5, 1/D)``). Returns ``X``."""
    n, dim = X.shape
    rate = min(0.5, 1.0 / dim) if rate is None else rate
    rows, cols = mutation_sites(n, dim, rate, generator, X.device)
    flat = torch.unique(rows * dim + cols)  # each coordinate mutates once
    rows, cols = flat // dim, flat % dim
    keep = lower[cols] != upper[cols]
    rows, cols = rows[keep], cols[keep]
    u = torch.rand(len(rows), generator=generator, dtype=X.dtype).to(X.device)
    X[rows, cols] = pm_values(X[rows, cols], lower[cols], upper[cols], u, eta)
    return X
