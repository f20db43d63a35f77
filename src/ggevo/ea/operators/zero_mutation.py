"""GEMONN's mutation: set entries to zero (ALGORITHM.md, step 3)."""

from __future__ import annotations

import torch

from ggevo.ea.operators.sites import mutation_sites


def zero_mutation_(x: torch.Tensor, *, rate: float | None = None, generator: torch.Generator) -> torch.Tensor:
    """In place on ``x`` (N×D), which the caller owns: each entry becomes 0 with probability ``rate`` (1/D)."""
    n, dim = x.shape
    rows, cols = mutation_sites(n, dim, 1.0 / dim if rate is None else rate, generator, x.device)
    x[rows, cols] = 0
    return x


def zero_mutation(x: torch.Tensor, *, rate: float | None = None, generator: torch.Generator) -> torch.Tensor:
    """A copy of ``x`` (N×D) with each entry set to 0 with probability ``rate`` (default 1/D)."""
    return zero_mutation_(x.clone(), rate=rate, generator=generator)
