"""GEMONN's mutation: set entries to zero (docs/ALGORITHM.md, step 3)."""

from __future__ import annotations

import torch

from ggevo.ea.operators.mutation.sites import mutation_sites


def zero_mutation_(x: torch.Tensor, *, rate: float | None = None, generator: torch.Generator,
                   columns: torch.Tensor | None = None) -> torch.Tensor:
    """In place on ``x`` (N×D), which the caller owns: each entry becomes 0 with probability ``rate``
    (1/D). With ``columns`` (k,) given, only those columns can be zeroed (each with ``rate``,
    default 1/k): biases exempt from zeroing, say."""
    n = x.shape[0]
    dim = x.shape[1] if columns is None else len(columns)
    rows, cols = mutation_sites(n, dim, 1.0 / dim if rate is None else rate, generator, x.device)
    x[rows, cols if columns is None else columns.to(x.device)[cols]] = 0
    return x


def zero_mutation(x: torch.Tensor, *, rate: float | None = None, generator: torch.Generator) -> torch.Tensor:
    """A copy of ``x`` (N×D) with each entry set to 0 with probability ``rate`` (default 1/D)."""
    return zero_mutation_(x.clone(), rate=rate, generator=generator)
