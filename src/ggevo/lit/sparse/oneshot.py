"""One-shot magnitude pruning: train dense, prune once to each target density, fine-tune.

A dense network trains for ``dense_fraction`` of the budget. Then, for each target density, a copy
of it is pruned globally by magnitude to that density (``torch.nn.utils.prune``'s global L1 pruning,
as IMP) and fine-tuned with its zeros held, the rest of the budget split evenly across the
densities (``budget_per_density: whole`` gives each copy the whole rest). The front is the dense
network and the fine-tuned ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ggevo.lit.sparse.magnitude import prune_globally
from ggevo.lit.sparse.module import SparseModule
from ggevo.lit.sparse.targets import TARGET_DENSITIES, Plan, check_target_densities, kept, per_density


class OneShotModule(SparseModule):
    """Network 0 trains dense; network ``1 + k`` is it pruned to ``target_densities[k]`` and fine-tuned."""

    def __init__(self, model: nn.Module, optimizer: Callable[..., torch.optim.Optimizer],
                 task: str = "reconstruction", budget: int = 1000, hv_ref: Sequence[float] = (1.1, 0.3),
                 target_densities: Sequence[float] = TARGET_DENSITIES, budget_per_density: str = "split",
                 dense_fraction: float = 0.5):
        densities = check_target_densities(target_densities)
        if not 0 < dense_fraction < 1:
            raise ValueError(f"optimizer.dense_fraction: must lie in (0, 1), got {dense_fraction!r}")
        dense = round(dense_fraction * budget)
        if dense < 1:
            raise ValueError(f"budget: {budget} steps leave no dense training at dense_fraction {dense_fraction}")
        plan = Plan((0,), (dense,)) + per_density(dense, budget - dense, len(densities), budget_per_density)
        super().__init__(model, optimizer, plan, task, hv_ref)
        self.densities = densities

    @torch.no_grad()
    def before_forward(self, i: int, t: int) -> None:
        if i == 0 or t != 0:
            return
        for (m, n), (md, nd) in zip(self.targets[i], self.targets[0]):
            getattr(m, n).copy_(getattr(md, nd))
        size = sum(getattr(m, n).numel() for m, n in self.targets[i])
        prune_globally(self.targets[i], kept(self.densities[i - 1], size))
