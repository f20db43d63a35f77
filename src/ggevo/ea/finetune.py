"""Sparse fine-tuning of front members: masked Adam that keeps every zero at zero (docs/ALGORITHM.md,
"After evolution": the reference README's sparse-SGD / sparse-Adam).

All members are tuned at once: each step scores the whole set (k×D) on one minibatch with the
population evaluator (k gradient evaluations) and applies Adam's update only where the member's
entry is nonzero, so each member keeps its density exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

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
    keep = (X != 0).to(X.dtype)
    X = X.clone()
    m = torch.zeros_like(X)
    v = torch.zeros_like(X)
    b1, b2 = betas
    for t in range(1, steps + 1):
        loss, grad = next(evaluations)(X)
        row_ok = torch.isfinite(loss).to(X.dtype).unsqueeze(1)
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0).mul_(keep).mul_(row_ok)
        m.mul_(b1).add_(grad, alpha=1 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = v.div(1 - b2**t).sqrt_().add_(eps)
        # in place where it can be: two k×D temporaries a step, not ten
        X.addcdiv_(m.mul(row_ok), denom, value=-lr / (1 - b1**t)).mul_(keep)
        if lower is not None:
            X.clamp_(lower, upper)
    return X
