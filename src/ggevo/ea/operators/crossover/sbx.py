"""Plain simulated binary crossover, the gradient-free NSGA-II ablation (docs/ALGORITHM.md, "Ablations")."""

from __future__ import annotations

import torch

from ggevo.ea.operators.crossover.sbx_kernel import pair_rows, run_kernel


def sbx(
    parents: torch.Tensor,
    *,
    eta: float = 20.0,
    lower: torch.Tensor | None = None,
    upper: torch.Tensor | None = None,
    generator: torch.Generator,
    compiled: bool = False,
) -> torch.Tensor:
    """Children (2×P×D) of parent pairs (2×P×D): ``u ~ U(0, 1)``, symmetric spread, no gradient."""
    X, pairs = pair_rows(parents)
    return run_kernel(
        X,
        None,
        pairs,
        eta=eta,
        sparsity_preservation=0.0,
        guided=False,
        exchange=False,
        lower=lower,
        upper=upper,
        generator=generator,
        compiled=compiled,
    )
