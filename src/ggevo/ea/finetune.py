"""Sparse fine-tuning of front members: masked Adam that keeps every zero at zero (docs/ALGORITHM.md,
"After evolution": the reference README's sparse-SGD / sparse-Adam).

All members are tuned at once: each step scores the whole set (k×D) on one minibatch with the
population evaluator (k gradient evaluations) and applies Adam's update only where the member's
entry is nonzero, so each member keeps its density exactly. The step is local search's
(``operators.lamarck.masked_adam_step``): one masked-Adam kernel for both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from ggevo.ea.operators.lamarck import Moments, masked_adam_step

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def masked_adam(
    X: torch.Tensor,
    evaluations: Iterator[Evaluate],
    steps: int,
    *,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    lower: torch.Tensor | None = None,
    upper: torch.Tensor | None = None,
) -> torch.Tensor:
    """``steps`` Adam steps on every row of ``X`` (k×D), each on the next ``evaluate`` of ``evaluations``
    (one per minibatch, ``evaluate(X) -> (loss (k,), grad (k×D))``); zeros of ``X`` stay zero.
    Returns a new tensor; rows whose loss turns non-finite are left as they were."""
    if steps < 0 or lr <= 0:
        raise ValueError(f"finetune: need steps >= 0 and lr > 0, got {steps} and {lr}")
    moments = Moments.zeros(X)
    for _ in range(steps):
        loss, grad = next(evaluations)(X)
        ok = torch.isfinite(loss)
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        X, *moments = masked_adam_step(X, grad, *moments, lr=lr, active=ok, betas=betas, eps=eps,
                                       lower=lower, upper=upper)
    return X
