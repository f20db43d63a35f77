"""GEMONN's gradient-guided simulated binary crossover (docs/ALGORITHM.md, step 2)."""

from __future__ import annotations

import torch

from ggevo.ea.operators.crossover.sbx_kernel import pair_rows, run_kernel


def grad_guided_sbx(
    parents: torch.Tensor,
    grads: torch.Tensor,
    *,
    eta: float = 20.0,
    sparsity_preservation: float = 0.5,
    exchange: bool = True,
    lower: torch.Tensor | None = None,
    upper: torch.Tensor | None = None,
    generator: torch.Generator,
    compiled: bool = False,
) -> torch.Tensor:
    """Children (2×P×D) of ``P`` parent pairs ``parents`` (2×P×D) with gradients ``grads`` (2×P×D).

    Each child moves down its parent pair's gradient: the SBX spread half is chosen by the
    gradient's sign; with probability ``sparsity_preservation`` per pair, zeros of the parent on
    a child's side are inherited; with ``exchange``, a random half of the coordinates swap values
    between the children where the gradient says the other child's value is lower-loss.
    Returns new tensors; the inputs are not modified.
    """
    X, pairs = pair_rows(parents)
    if grads.shape != parents.shape:
        raise ValueError(f"grads {tuple(grads.shape)} must match parents {tuple(parents.shape)}")
    G = pair_rows(grads)[0]
    return run_kernel(
        X,
        G,
        pairs,
        eta=eta,
        sparsity_preservation=sparsity_preservation,
        guided=True,
        exchange=exchange,
        lower=lower,
        upper=upper,
        generator=generator,
        compiled=compiled,
    )
