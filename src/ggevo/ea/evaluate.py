"""Losses and gradients of a whole population on one minibatch (ALGORITHM.md, step 4).

Two strategies compute the same numbers: ``loop`` calls ``torch.func.grad_and_value`` once per
individual; ``vmap`` batches the individuals with ``torch.func.vmap``. ``auto`` is ``vmap``: on
the 2-core CPU ``benchmarks/generation.py`` measured vmap/loop = 0.82-0.95 at the paper's N=50, H=500,
batch 128 and 0.39 at H=100; batching only gains on a GPU. ``chunk_size`` bounds vmap's memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch.func import grad_and_value, vmap

from ggevo.ea.flat import FlatParams

Batch = Sequence[torch.Tensor]
LossFn = Callable[[torch.Tensor, Batch], torch.Tensor]
STRATEGIES = ("auto", "loop", "vmap")


def resolve_strategy(strategy: str, device: torch.device) -> str:
    """``loop`` or ``vmap``; ``auto`` is the faster one measured for ``device`` (vmap on CPU and GPU)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"evaluation strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "auto":
        return "vmap"
    return strategy


class PopulationEvaluator:
    """``evaluator(X, batch) -> (loss (n,), grad (n×D))`` for a population ``X`` (n×D).

    ``loss_fn(output, batch)`` maps the module's output on ``batch[0]`` to a scalar loss.
    """

    def __init__(self, flat: FlatParams, loss_fn: LossFn, strategy: str = "auto", chunk_size: int | None = None):
        resolve_strategy(strategy, torch.device("cpu"))
        self.flat = flat
        self.loss_fn = loss_fn
        self.strategy = strategy
        self.chunk_size = chunk_size
        self._grad_and_value = grad_and_value(self._objective)

    def scoring(self, score_fn: LossFn) -> PopulationEvaluator:
        """An evaluator of the same network and strategy that scores by ``score_fn`` (accuracy, say)."""
        return PopulationEvaluator(self.flat, score_fn, self.strategy, self.chunk_size)

    def _objective(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.loss_fn(self.flat(x, batch[0]), batch)

    def _check(self, X: torch.Tensor) -> None:
        if X.dim() != 2 or X.shape[1] != self.flat.dim:
            raise ValueError(f"population must be (n, {self.flat.dim}), got {tuple(X.shape)}")

    def __call__(self, X: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(X)
        X = X.detach()
        if resolve_strategy(self.strategy, X.device) == "vmap":
            grads, losses = vmap(self._grad_and_value, in_dims=(0, None), chunk_size=self.chunk_size)(X, batch)
            return losses.detach(), grads.detach()
        losses = torch.empty(X.shape[0], dtype=X.dtype, device=X.device)
        grads = torch.empty_like(X)
        for i in range(X.shape[0]):
            g, v = self._grad_and_value(X[i], batch)
            grads[i] = g
            losses[i] = v
        return losses, grads

    @torch.no_grad()
    def losses(self, X: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Losses (n,) only, without gradients (validation and final scoring), by the same strategy."""
        self._check(X)
        if resolve_strategy(self.strategy, X.device) == "vmap":
            return vmap(self._objective, in_dims=(0, None), chunk_size=self.chunk_size)(X, batch)
        return torch.stack([self._objective(x, batch) for x in X])


def dataset_losses(evaluator: PopulationEvaluator, X: torch.Tensor, batches: Callable[[], Iterable[Batch]]) -> torch.Tensor:
    """Mean loss (n,) of each individual over every batch ``batches()`` yields, weighted by batch size."""
    total = torch.zeros(X.shape[0], dtype=torch.float64)
    count = 0
    for batch in batches():
        size = batch[0].shape[0]
        total += evaluator.losses(X, batch).double().cpu() * size
        count += size
    if count == 0:
        raise ValueError("no data to evaluate on")
    return total / count
