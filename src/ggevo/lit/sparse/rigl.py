"""RigL, dynamic sparse training (Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners").

One network per target density, sparse from the start (ERK masks, ``erk.py``) and held at its
density. Every ``ΔT`` of its steps until ``T_end`` (``drop_until`` of its steps) each tensor drops
the fraction ``α_t = α/2 · (1 + cos(π t / T_end))`` of its active entries with the smallest magnitude
and grows as many with the largest gradient magnitude on that step's minibatch, among the entries
not kept (``drop_and_grow``). As the paper's reference code: a newly grown entry starts at zero (and
its optimizer moments are reset), an entry dropped and grown back in the same update keeps its
value, and a mask-update step changes no weight (its gradient chose the growth).

Hand-written: neither ``torch.ao.pruning`` nor ``torch.nn.utils.prune`` grows connections back, and
``prune``'s masked reparametrization hides the dense gradient that growing ranks (its masked entries
get gradient zero). So the masks are buffers here, the weights plain parameters whose inactive
entries are zero, and the zeros are held by masking the gradient before each step and the weights
after it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ggevo.lit.sparse.erk import random_masks
from ggevo.lit.sparse.module import SparseModule
from ggevo.lit.sparse.targets import TARGET_DENSITIES, check_target_densities, per_density


def update_fraction(t: int, alpha: float, t_end: int) -> float:
    """RigL's cosine decay of the fraction updated at step ``t``: ``α/2 · (1 + cos(π t / T_end))``."""
    return alpha / 2 * (1 + math.cos(math.pi * t / t_end))


def drop_and_grow(weight: torch.Tensor, mask: torch.Tensor, grad: torch.Tensor,
                  count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One tensor's RigL update: of its active entries keep all but the ``count`` of smallest ``|weight|``,
    then activate the ``count`` entries of largest ``|grad|`` among those not kept (a just-dropped entry
    may return). Returns the new mask and ``grown``, the entries active now and inactive before; the
    number active is unchanged. Pure: ``weight``, ``mask`` (bool) and ``grad`` are not modified."""
    w, m, g = weight.detach().reshape(-1), mask.reshape(-1), grad.detach().reshape(-1)
    active = int(m.sum())
    count = min(count, active)
    low = torch.finfo(w.dtype).min
    keep = torch.zeros_like(m)
    keep[torch.topk(torch.where(m, w.abs(), low), active - count).indices] = True
    new = keep.clone()
    new[torch.topk(torch.where(keep, low, g.abs()), count).indices] = True
    return new.view_as(mask), (new & ~m).view_as(mask)


class RigLModule(SparseModule):
    """One RigL network per target density (ERK masks from ``seed``); the front is their final weights."""

    def __init__(self, model: nn.Module, optimizer: Callable[..., torch.optim.Optimizer],
                 task: str = "reconstruction", budget: int = 1000, hv_ref: Sequence[float] = (1.1, 0.3),
                 target_densities: Sequence[float] = TARGET_DENSITIES, budget_per_density: str = "split",
                 update_every: int = 100, drop_fraction: float = 0.3, drop_until: float = 0.75, seed: int = 0):
        densities = check_target_densities(target_densities)
        plan = per_density(0, budget, len(densities), budget_per_density)
        if not 0 < drop_fraction < 1:
            raise ValueError(f"optimizer.drop_fraction: must lie in (0, 1), got {drop_fraction!r}")
        if not 0 < drop_until <= 1:
            raise ValueError(f"optimizer.drop_until: must lie in (0, 1], got {drop_until!r}")
        shortest = min(e - b for b, e in zip(plan.begin, plan.end))
        if not (isinstance(update_every, int) and 0 < update_every < round(drop_until * shortest)):
            raise ValueError(f"optimizer.update_every: must be a positive number of steps below T_end = "
                             f"{round(drop_until * shortest)} (drop_until of a network's {shortest} steps), "
                             f"got {update_every!r}")
        super().__init__(model, optimizer, plan, task, hv_ref)
        self.densities = densities
        self.update_every, self.alpha = update_every, drop_fraction
        self.t_end = [round(drop_until * (e - b)) for b, e in zip(plan.begin, plan.end)]
        self.mask_updates: list[dict] = []  # (network, step, fraction, dropped): what each update did
        generator = torch.Generator().manual_seed(seed)
        self.masks = nn.ModuleList()
        for net, density in zip(self.networks, densities):
            params = list(net.parameters())
            holder = nn.Module()
            for j, m in enumerate(random_masks([p.shape for p in params], density, generator)):
                holder.register_buffer(f"m{j}", m)
            self.masks.append(holder)
            with torch.no_grad():
                for p, m in zip(params, holder.buffers()):
                    p.mul_(m)

    def params_and_masks(self, i: int) -> list[tuple[nn.Parameter, torch.Tensor]]:
        return list(zip(self.networks[i].parameters(), self.masks[i].buffers()))

    def updates_at(self, i: int, t: int) -> bool:
        return t > 0 and t % self.update_every == 0 and t < self.t_end[i]

    @torch.no_grad()
    def after_backward(self, i: int, t: int) -> None:
        if not self.updates_at(i, t):
            for p, m in self.params_and_masks(i):
                if p.grad is not None:
                    p.grad.mul_(m)
            return
        fraction, dropped = update_fraction(t, self.alpha, self.t_end[i]), 0
        state = self.optimizers().optimizer.state
        for p, m in self.params_and_masks(i):
            count = math.floor(fraction * int(m.sum()))
            new, grown = drop_and_grow(p, m, p.grad if p.grad is not None else torch.zeros_like(p), count)
            p.mul_(new)
            p[grown] = 0
            for moment in state.get(p, {}).values():  # Adam's moments, SGD's momentum: start afresh
                if torch.is_tensor(moment) and moment.shape == p.shape:
                    moment[grown] = 0
            m.copy_(new)
            p.grad = None  # the reference's mask-update step moves no weight
            dropped += count
        self.mask_updates.append({"network": i, "step": t, "fraction": fraction, "dropped": dropped})

    @torch.no_grad()
    def after_step(self, i: int, t: int) -> None:
        for p, m in self.params_and_masks(i):
            p.mul_(m)  # momentum moves inactive entries; they stay zero
