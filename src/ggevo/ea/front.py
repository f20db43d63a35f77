"""The product of a run: the non-dominated front, its knee, its hypervolume (docs/ALGORITHM.md, "After evolution")."""

from __future__ import annotations

import numpy as np
import torch
from pymoo.indicators.hv import HV

from ggevo.ea.selection import fronts


def first_front(F: torch.Tensor) -> torch.Tensor:
    """Indices of the non-dominated members of ``F`` (n×2) with finite objectives, by rising density."""
    finite = torch.isfinite(F).all(dim=1)
    if int(finite.sum()) <= 1:  # a trunk's generations: one network scored, nothing to sort
        return finite.nonzero().squeeze(1)
    idx = torch.as_tensor(fronts(F)[0], dtype=torch.int64)
    idx = idx[finite[idx]]
    return idx[torch.argsort(F[idx, 0], stable=True)]


def knee(F: torch.Tensor) -> int:
    """Index into ``F`` (k×2, one front) of the knee: the point farthest on the ideal side of the line
    through the two extremes, after normalising each objective to [0, 1]; with fewer than three
    points (no trade-off to bend), the lower-loss one."""
    if F.shape[0] == 0:
        raise ValueError("an empty front has no knee")
    if F.shape[0] < 3:
        return int(F[:, 1].argmin())
    f = F.double()
    span = (f.max(0).values - f.min(0).values).clamp_min(1e-12)
    z = (f - f.min(0).values) / span
    first, last = z[z[:, 0].argmin()], z[z[:, 0].argmax()]
    direction = (last - first) / torch.linalg.norm(last - first).clamp_min(1e-12)
    rel = z - first
    dist = rel[:, 0] * direction[1] - rel[:, 1] * direction[0]  # > 0 on the ideal side
    return int(dist.argmax())


def hypervolume(F: torch.Tensor, ref_point) -> float:
    """Exact 2-D hypervolume (pymoo) of the points of ``F`` (n×2) that dominate ``ref_point``."""
    ref = np.asarray(ref_point, dtype=np.float64)
    f = F.detach().cpu().double().numpy()
    f = f[np.isfinite(f).all(axis=1) & (f < ref).all(axis=1)]
    if len(f) == 0:
        return 0.0
    return float(HV(ref_point=ref)(f))


# The density budgets every table and metric reports, and the one rule for "a member within budget B":
# its density at most B·(1 + BUDGET_TOLERANCE). Pruning 393,284 weights to "0.02" leaves 0.0200008, and a
# prune floor at 0.02 of LeNet-5's 61,706 leaves 0.0200143: both are members at 0.02.
BUDGETS = (0.02, 0.05, 0.1, 0.25, 0.5)
BUDGET_TOLERANCE = 1e-3


def within(density, budget: float):
    """Whether ``density`` (a number, or elementwise for a tensor or array) is within the density ``budget``."""
    return density <= budget * (1 + BUDGET_TOLERANCE)


def count_within(count: int, size: int, budget: float) -> int:
    """``count`` entries of ``size``, or one fewer where ``count`` would put the network above ``budget`` (``within``:
    on a network of a few thousand entries one entry is more than the tolerance), so a network pruned for a budget
    competes for it. Every method's rounding of a target density to a count of entries ends here."""
    return count if within(count / size, budget) else count - 1


def best_under_density(F: torch.Tensor, budget: float) -> int | None:
    """Index of the lowest-loss row of ``F`` (n×2) within the density ``budget`` (``within``), or None."""
    ok = within(F[:, 0], budget) & torch.isfinite(F[:, 1])
    if not ok.any():
        return None
    loss = torch.where(ok, F[:, 1], torch.inf)
    return int(loss.argmin())
