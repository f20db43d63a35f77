"""NSGA-II ranking, crowding, environmental selection and binary tournament (docs/ALGORITHM.md, steps 1 and 5).

Non-dominated sorting and crowding distance come from pymoo; this module only adapts
tensors to it and threads the explicit ``torch.Generator``.
"""

from __future__ import annotations

import numpy as np
import torch
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

_WORST = 1e30  # stands in for +inf so that pymoo's crowding normalisation stays finite


def _objectives(F: torch.Tensor) -> np.ndarray:
    if F.dim() != 2:
        raise ValueError(f"objectives must be (n, M), got {tuple(F.shape)}")
    return np.nan_to_num(F.detach().cpu().double().numpy(), nan=_WORST, posinf=_WORST)


def fronts(F: torch.Tensor) -> list[np.ndarray]:
    """Indices of each non-domination front of ``F`` (n×M), best first (pymoo)."""
    return NonDominatedSorting().do(_objectives(F))


def floored(F: torch.Tensor, floor: float | None) -> torch.Tensor:
    """``F`` (n×2, density first) with every density below ``floor`` raised to it (a copy), or ``F``
    itself when ``floor`` is None: the objectives selection ranks with a density floor."""
    if floor is None:
        return F
    return torch.stack((F[:, 0].clamp(min=floor), F[:, 1]), dim=1)


def rank_and_crowding(F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-domination rank (n,) int64, 0 = first front, and crowding distance within its front (n,)."""
    Fn = _objectives(F)
    rank = np.empty(len(Fn), dtype=np.int64)
    crowding = np.empty(len(Fn), dtype=np.float64)
    for k, front in enumerate(NonDominatedSorting().do(Fn)):
        rank[front] = k
        crowding[front] = calc_crowding_distance(Fn[front])
    return torch.from_numpy(rank), torch.from_numpy(crowding)


def survival(F: torch.Tensor, n: int, *, eliminate_duplicates: bool = False) -> torch.Tensor:
    """Indices (n,) of the NSGA-II survivors of ``F`` (m×M): whole fronts, the last cut by crowding.

    Ties in crowding keep the lower index (a stable sort), so the choice is deterministic. With
    ``eliminate_duplicates`` a row whose objectives equal an earlier row's exactly (a copy, to
    selection) competes only for the places the distinct rows leave, lowest index first: copies of one
    network cannot fill the first front and push the other densities out (pymoo's NSGA-II drops
    duplicates the same way, in decision space, before survival).
    """
    Fn = _objectives(F)
    if not 0 < n <= len(Fn):
        raise ValueError(f"cannot keep {n} of {len(Fn)}")
    if eliminate_duplicates:
        first = np.sort(np.unique(Fn, axis=0, return_index=True)[1])
        if len(first) < len(Fn):
            copies = np.setdiff1d(np.arange(len(Fn)), first)
            if len(first) <= n:
                return torch.from_numpy(np.concatenate((first, copies[: n - len(first)])).astype(np.int64))
            return torch.from_numpy(first[survival(F[torch.from_numpy(first)], n).numpy()])
    keep: list[np.ndarray] = []
    left = n
    for front in NonDominatedSorting().do(Fn):
        if len(front) <= left:
            keep.append(front)
            left -= len(front)
        else:
            cd = calc_crowding_distance(Fn[front])
            keep.append(front[np.argsort(-cd, kind="stable")[:left]])
            left = 0
        if left == 0:
            break
    return torch.from_numpy(np.concatenate(keep).astype(np.int64))


def density_band(F: torch.Tensor, edges) -> np.ndarray:
    """Each row's density band of ``F`` (m×2, density first): ``i`` for ``[edges[i], edges[i+1])``, -1 outside
    every band."""
    band = np.searchsorted(np.asarray(edges, dtype=np.float64), _objectives(F)[:, 0], side="right") - 1
    return np.where(band < len(edges) - 1, band, -1)


def band_elites(F: torch.Tensor, edges) -> np.ndarray:
    """Index of the lowest-loss row of ``F`` (m×2, density first) in each density band
    ``[edges[i], edges[i+1])`` that holds a row with a finite loss, by rising band; ties keep the lower index."""
    Fn, band = _objectives(F), density_band(F, edges)
    keep = []
    for i in range(len(edges) - 1):
        inside = np.flatnonzero((band == i) & (Fn[:, 1] < _WORST))
        if len(inside):
            keep.append(inside[np.argmin(Fn[inside, 1])])  # argmin: the first of equal losses
    return np.asarray(keep, dtype=np.int64)


def banded_survival(F: torch.Tensor, n: int, edges, *, eliminate_duplicates: bool = False) -> torch.Tensor:
    """Indices (n,) of the survivors of ``F`` (m×2) when the best row of each density band between
    ``edges`` survives first (``band_elites``) and NSGA-II (``survival``) fills the other places from
    the rest: a denser network that a sparser one dominates still lives on to train, so the population
    keeps a member in every band however the front leans (with fewer places than bands, the sparsest
    bands' best). ``edges`` None is plain ``survival``."""
    if edges is None:
        return survival(F, n, eliminate_duplicates=eliminate_duplicates)
    elites = band_elites(F, edges)[:n]
    if len(elites) == n:
        return torch.from_numpy(elites)
    rest = np.setdiff1d(np.arange(F.shape[0]), elites)
    fill = survival(F[torch.from_numpy(rest)], n - len(elites), eliminate_duplicates=eliminate_duplicates)
    return torch.from_numpy(np.concatenate((elites, rest[fill.numpy()])).astype(np.int64))


def binary_tournament(
    rank: torch.Tensor, crowding: torch.Tensor, n: int, *, generator: torch.Generator
) -> torch.Tensor:
    """``n`` winners (indices) of binary tournaments: lower rank wins, then larger crowding, then a coin."""
    m = rank.shape[0]
    a = torch.randint(0, m, (n,), generator=generator)
    b = torch.randint(0, m, (n,), generator=generator)
    coin = torch.rand(n, generator=generator) < 0.5
    ra, rb, ca, cb = rank[a], rank[b], crowding[a], crowding[b]
    a_wins = (ra < rb) | ((ra == rb) & ((ca > cb) | ((ca == cb) & coin)))
    return torch.where(a_wins, a, b)
