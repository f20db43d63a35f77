"""A trunk's branching and gradual pruning (``optimizer.trunk``, ``trunk_prune``; beyond the paper).

One network, the trunk, trains alone; the others restart as it, each keeping the trunk's largest
prunable entries up to its own count. With ``trunk_prune: gradual`` the trunk is itself pruned as it
trains, along gradual magnitude pruning's cubic schedule (Zhu & Gupta 2017), and each other network
branches off when the trunk passes its density. Pure in-place functions of the population.
"""

from __future__ import annotations

import torch

from ggevo.ea.compiling import row_density
from ggevo.ea.operators.lamarck import Moments

MASK_UPDATES = 100  # a gradual trunk's mask changes this many times (GMP's Δt = the pruning span / 100)
# The trunk's status is recorded this many times over the trunk (and at its first and last generation), and
# with selection on held-out data its held-out score is taken then: the trunk selects nothing, so the score
# only feeds the status. A forward pass over a validation batch each generation cost more than the trunk's
# training step, and a status each generation (computed, then stored in MLflow) a fifth of it; the gradient
# baselines record one every 50 steps (``lit.sparse.module.STATUS_EVERY``).
TRUNK_RECORDS = 100


def record_due(done: int, total: int, records: int) -> bool:
    """Whether generation ``done`` (1-based) of a phase of ``total`` generations that records its status
    ``records`` times records it (and takes its held-out score): the first, the last and every
    ``total / records``-th."""
    return done == 1 or done == total or done % max(1, total // records) == 0


def trunk_record_due(done: int, total: int) -> bool:
    """Whether trunk generation ``done`` (1-based) of ``total`` records its status (``record_due``, ``TRUNK_RECORDS``)."""
    return record_due(done, total, TRUNK_RECORDS)


def kept_by_magnitude(trunk: torch.Tensor, prunable: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """(n×D) bool: the entries of ``trunk`` (D,) that a copy keeping ``counts`` (n, 1) of its largest-magnitude
    ``prunable`` entries keeps (every entry that is not prunable is kept)."""
    cols = prunable.nonzero().squeeze(1)
    order = cols[torch.argsort(trunk[cols].abs(), descending=True, stable=True)]
    rank = torch.full(trunk.shape, trunk.shape[0], dtype=torch.int64, device=trunk.device)
    rank[order] = torch.arange(len(order), device=trunk.device)
    return ~prunable | (rank < counts)


def branch_(X: torch.Tensor, F: torch.Tensor, moments: Moments, t: int, prunable: torch.Tensor,
            rows: torch.Tensor) -> None:
    """In place: the rows of the mask ``rows`` become row ``t`` keeping as many of its largest-magnitude
    ``prunable`` entries as each has nonzero prunable entries now, with row ``t``'s moments (zero where
    pruned); their losses become +inf until they are scored."""
    counts = (X[:, prunable] != 0).sum(dim=1, keepdim=True)
    branches = torch.where(kept_by_magnitude(X[t], prunable, counts), X[t], 0.0)[rows]
    live = branches != 0
    X[rows] = branches
    moments.M[rows] = torch.where(live, moments.M[t], 0.0)
    moments.V[rows] = torch.where(live, moments.V[t], 0.0)
    moments.T[rows] = moments.T[t]
    F[rows, 0] = row_density(branches)
    F[rows, 1] = torch.inf


def mask_update(done: int, total: int, start: int) -> bool:
    """Whether a gradual trunk's mask changes after generation ``done`` (1-based) of ``total``: every
    ``(total - start) / MASK_UPDATES`` generations after ``start``, and at the last."""
    every = max(1, (total - start) // MASK_UPDATES)
    return done > start and (done == total or (done - start) % every == 0)


def schedule_span(total: int, start_share: float, end_share: float = 1.0) -> tuple[int, int]:
    """The generations ``(start, end)`` between which a gradual trunk of ``total`` generations prunes, from the
    shares ``trunk_prune_start`` and ``trunk_prune_end`` of it: a span of one mask update at least, however short
    the trunk, and ``end`` the trunk's last generation at a share of 1."""
    start = round(start_share * total)
    return start, min(total, max(start + 1, round(end_share * total)))


def cubic_count(done: int, total: int, start: int, dense: int, final: int) -> int:
    """The trunk's count of prunable nonzeros after generation ``done``: the cubic schedule from ``dense``
    at ``start`` down to ``final`` at ``total``."""
    return final + int(round((dense - final) * (1.0 - (done - start) / (total - start)) ** 3))


def rebase_(X: torch.Tensor, moments: Moments, t: int, rows: torch.Tensor, extras: float = 1.0) -> None:
    """In place: on row ``t``'s nonzero entries, the rows of the mask ``rows`` take its values and moments;
    elsewhere they keep their own, scaled by ``extras`` (with ``extras`` < 1 their moments restart at zero). A row
    branched from a gradual trunk holds every entry the trunk still holds (pruning only removes), so its density
    is unchanged: an early, dense branch gets the trunk's most trained weights back under its own extra ones, which
    were tuned to the trunk as it stood when the branch left; scaled down, the branch starts as nearly the trunk's
    final network and grows them again, as a weight regrown at zero would."""
    core = (X[t] != 0) & rows.unsqueeze(1)
    if extras != 1.0:
        own = (X != 0) & rows.unsqueeze(1) & ~core
        X.copy_(torch.where(own, X * extras, X))
        moments.M.masked_fill_(own, 0.0)
        moments.V.masked_fill_(own, 0.0)
    X.copy_(torch.where(core, X[t], X))
    moments.M.copy_(torch.where(core, moments.M[t], moments.M))
    moments.V.copy_(torch.where(core, moments.V[t], moments.V))


def prune_trunk_(X: torch.Tensor, F: torch.Tensor, moments: Moments, t: int, prunable: torch.Tensor, *,
                 done: int, total: int, start: int, end: int | None = None, rebase: bool = False,
                 extras: float = 1.0) -> None:
    """In place, after trunk generation ``done`` of a gradual trunk of ``total`` generations that prunes from
    ``start`` to ``end`` (default ``total``): on a mask update, the rows whose density the trunk passes branch
    from it (``branch_``; at the last update every row not yet branched), then the trunk drops its smallest
    prunable entries down to the schedule's count; from ``end`` to ``total`` it trains on at the sparsest density.
    With ``rebase``, after the trunk's last generation, every other row takes the trunk's final weights where the
    trunk has any, its own elsewhere scaled by ``extras`` (``rebase_``)."""
    end = total if end is None else end
    if done <= end and mask_update(done, end, start):
        _prune_on_schedule_(X, F, moments, t, prunable, done=done, end=end, start=start)
    if rebase and done == total:
        others = torch.arange(X.shape[0], device=X.device) != t
        rebase_(X, moments, t, others, extras)
        if extras != 1.0:  # a weight scaled below float32's range is pruned: each density as it now is
            F[others, 0] = row_density(X[others])


def _prune_on_schedule_(X: torch.Tensor, F: torch.Tensor, moments: Moments, t: int, prunable: torch.Tensor, *,
                        done: int, end: int, start: int) -> None:
    """One mask update of the trunk's cubic schedule from ``start`` to ``end`` (``prune_trunk_``)."""
    counts = (X[:, prunable] != 0).sum(dim=1)
    final, current = int(counts.min()), int(counts[t])
    target = cubic_count(done, end, start, int(prunable.sum()), final)
    last = done == end
    if target >= current and not last:
        return
    others = torch.arange(X.shape[0], device=X.device) != t
    due = others & (counts <= current) & ((counts > target) | last)
    if due.any():
        branch_(X, F, moments, t, prunable, due)
    if target < current:
        pruned = ~kept_by_magnitude(X[t], prunable, torch.tensor([[target]], device=X.device))[0]
        X[t, pruned] = 0.0
        moments.M[t, pruned] = 0.0
        moments.V[t, pruned] = 0.0
        F[t, 0] = row_density(X[t : t + 1])[0]
