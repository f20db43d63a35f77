"""The population-wide elementwise kernels, compiled where the machine can build them (``ggevo.compiling``).

Eager torch runs each elementwise op as its own pass over N×D memory, and its row reductions
are slow on CPU (counting the nonzeros of 50 rows of 393k takes ~20× longer eager than compiled,
benchmarks/generation.py). Compiled, each function below is one fused loop.
"""

from __future__ import annotations

import torch


def row_density(X: torch.Tensor) -> torch.Tensor:
    """Fraction of nonzero entries of each row of ``X`` (n×D) — the objective f1."""
    return (X != 0).sum(dim=1, dtype=torch.int64).to(X.dtype) / X.shape[1]


def row_density_and_finite(X: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``row_density(X)`` and whether each row of ``G`` (n×D) is all finite, in one pass over both.

    A row is finite exactly when its largest magnitude is (``amax`` propagates NaN); compiled, that
    max reduction takes half the time of reducing ``isfinite`` with ``all``.
    """
    return row_density(X), torch.isfinite(G.abs().amax(dim=1))


def replace_rows_(X: torch.Tensor, G: torch.Tensor, C: torch.Tensor, GC: torch.Tensor,
                  rows: torch.Tensor, born: torch.Tensor) -> None:
    """In place: rows ``rows`` of ``X`` and ``G`` (n×D) become rows ``born`` of ``C`` and ``GC`` (m×D).

    ``rows`` are distinct. Compiled, each row is copied straight across (eager torch gathers the
    rows into a temporary first: three times the time at the paper's size).
    """
    X[rows] = C[born]
    G[rows] = GC[born]
