"""Gradual magnitude pruning (GMP; Zhu & Gupta 2017, "To prune, or not to prune").

One network, dense at first; from step ``t0`` every ``Δt`` steps its mask is updated to the cubic
schedule ``s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³`` (sparsity; ``s_i = 0``, ``s_f = 1 −``
the last target density), and the ``n`` updates end before the budget does, so the final density
trains too. Each target density is a stop on the way: the update that would pass it lands on it,
and the network is snapshotted at the last step it has that density (after ``Δt`` steps of training
there; the final one at the budget's end). The dense network, snapshotted before the first update,
completes the front.

Library pieces: the cubic is ``torch.ao.pruning``'s ``CubicSL.sparsity_compute_fn``; the pruning is
``torch.nn.utils.prune``'s global L1 pruning (nested masks, zeros held through training).
``torch.ao.pruning``'s ``WeightNormSparsifier`` does not fit: it prunes 2-D tensors one at a time and
recomputes each mask from the unmasked weights, so an entry pruned earlier can return; and neither
its schedulers nor ``prune`` know target densities to land on, which is the hand-written part here
(``gmp_schedule``).

Where this departs from the paper: the paper prunes each layer to the schedule's sparsity; here, as
in this project's IMP and one-shot baselines, the pruning is global over every trainable tensor
(biases too, since density counts them), so the methods differ in their schedules only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.ao.pruning.scheduler.cubic_scheduler import CubicSL

from ggevo.lit.sparse.magnitude import prune_globally
from ggevo.lit.sparse.module import SparseModule
from ggevo.lit.sparse.targets import TARGET_DENSITIES, Plan, check_target_densities, kept

LANDING = 1e-9  # a cubic density within this of a target is on it (1 − (1 − d) is not d in floats)


def cubic_density(t: int, t0: int, update_every: int, updates: int, final: float) -> float:
    """The density ``1 − s_t`` of Zhu & Gupta's cubic schedule from dense to ``final``."""
    return 1.0 - CubicSL.sparsity_compute_fn(0.0, 1.0 - final, t, t0, update_every, updates)


def gmp_schedule(steps: int, targets: Sequence[float], update_every: int = 100, prune_start: float = 0.1,
                 prune_end: float = 0.75) -> list[tuple[int, float]]:
    """The mask updates ``(step, density)`` of a ``steps``-step run: every ``update_every`` steps from
    ``t0 = prune_start · steps`` while ``≤ prune_end · steps``, at the cubic's density, except that an
    update passing the next target density lands on it. The last update lands on the last target."""
    targets = check_target_densities(targets)
    if not (isinstance(update_every, int) and update_every > 0):
        raise ValueError(f"optimizer.update_every: must be a positive number of steps, got {update_every!r}")
    if not 0 <= prune_start < prune_end < 1:
        raise ValueError(f"optimizer.prune_start: need 0 <= prune_start < prune_end < 1, got {prune_start} "
                         f"and {prune_end}")
    t0 = round(prune_start * steps)
    updates = (round(prune_end * steps) - t0) // update_every
    schedule, j = [], 0
    for k in range(1, updates + 1):
        t = t0 + k * update_every
        density = cubic_density(t, t0, update_every, updates, targets[-1])
        if j < len(targets) and density <= targets[j] + LANDING:
            density, j = targets[j], j + 1
        schedule.append((t, density))
    if j < len(targets):
        raise ValueError(f"optimizer.update_every: {updates} mask updates every {update_every} steps between steps "
                         f"{t0} and {round(prune_end * steps)} cannot land on the {len(targets)} target densities; "
                         f"lower optimizer.update_every or raise the budget")
    return schedule


class GMPModule(SparseModule):
    """One network pruned along ``gmp_schedule``; its front is the dense snapshot and one per target."""

    def __init__(self, model: nn.Module, optimizer: Callable[..., torch.optim.Optimizer],
                 task: str = "reconstruction", budget: int = 1000, hv_ref: Sequence[float] = (1.1, 0.3),
                 target_densities: Sequence[float] = TARGET_DENSITIES, update_every: int = 100,
                 prune_start: float = 0.1, prune_end: float = 0.75):
        schedule = gmp_schedule(budget, target_densities, update_every, prune_start, prune_end)
        super().__init__(model, optimizer, Plan((0,), (budget,)), task, hv_ref)
        self.schedule = schedule
        self.updates = dict(schedule)
        targets = set(check_target_densities(target_densities))
        steps = [t for t, _ in schedule]
        # after the last step at a density: the dense one before the first update, each target before the
        # update that leaves it, the last at the budget's end
        self.snapshot_steps = {steps[0], budget} | {after for (_, d), after in zip(schedule, steps[1:]) if d in targets}

    def before_forward(self, i: int, t: int) -> None:
        if t in self.updates:
            size = sum(getattr(m, n).numel() for m, n in self.targets[i])
            prune_globally(self.targets[i], kept(self.updates[t], size))

    def snapshot_due(self, i: int, done: int) -> bool:
        return done in self.snapshot_steps
