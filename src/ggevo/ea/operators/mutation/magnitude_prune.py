"""Magnitude-aware zeroing: a child drops its smallest-magnitude weights (beyond the paper;
``mutation: magnitude`` of ``optimizer=gemonn_plus``), the population form of magnitude pruning.
"""

from __future__ import annotations

import numpy as np
import torch


def magnitude_prune_(
    X: torch.Tensor,
    *,
    probability: float,
    fraction: float,
    prunable: torch.Tensor | None = None,
    generator: torch.Generator,
    min_nonzero: int = 0,
) -> torch.Tensor:
    """In place on ``X`` (n×D), which the caller owns: each row, with probability ``probability``,
    sets to 0 the ``fraction`` of its nonzero ``prunable`` (D,) entries with the smallest magnitude
    (at least one), never leaving the row fewer than ``min_nonzero`` nonzero entries in all (nor
    fewer than one prunable one). Returns ``X``. Only the chosen rows are read, one at a time: a
    generation prunes a few rows, and a per-row threshold is the ``k``-th smallest of that row's nonzeros
    (``kth_smallest``)."""
    if not 0.0 <= probability <= 1.0 or not 0.0 < fraction < 1.0:
        raise ValueError(f"magnitude pruning needs a probability and a fraction in (0, 1), "
                         f"got {probability} and {fraction}")
    chosen = (torch.rand(X.shape[0], generator=generator) < probability).nonzero().squeeze(1).tolist()
    allowed = torch.ones(X.shape[1], dtype=torch.bool, device=X.device) if prunable is None else prunable.to(X.device)
    by_numpy = _on_numpy(X)
    for i in chosen:
        if by_numpy:
            _prune_row_numpy(X[i].numpy(), allowed.numpy(), fraction, min_nonzero)
        else:
            _prune_row(X[i], allowed, fraction, min_nonzero)
    return X


def _how_many(live: int, nonzero: int, fraction: float, min_nonzero: int) -> int:
    """How many of a row's ``live`` (nonzero prunable) entries of its ``nonzero`` ones a prune takes (< 1: none)."""
    fixed = nonzero - live if min_nonzero else 0
    return min(max(1, int(fraction * live)), live - max(1, min_nonzero - fixed))


def _prune_row(row: torch.Tensor, allowed: torch.Tensor, fraction: float, min_nonzero: int) -> None:
    """``magnitude_prune_``'s step for one chosen row, in place, by torch operations (any device and dtype)."""
    nonzero = row != 0
    live = nonzero & allowed
    k = _how_many(int(live.sum()), int(nonzero.sum()), fraction, min_nonzero)
    if k < 1:
        return
    mags = row.abs()
    threshold = kth_smallest(mags[live], k)  # boolean indexing: masked_select's entries, in fewer passes on CPU
    # ties at the threshold may take a few more than k: every one of them is as small
    row.masked_fill_(live & (mags <= threshold), 0)


def _prune_row_numpy(row: np.ndarray, allowed: np.ndarray, fraction: float, min_nonzero: int) -> None:
    """``_prune_row`` on a CPU row's NumPy view, the same entries set to +0.0, in a third of the time: torch's
    boolean indexing and masked fill take a branch per entry, NumPy's ``compress`` gathers the live magnitudes in
    one vectorised pass and an AND with a mask of all-ones or all-zeros words clears the pruned entries (two
    children of the paper's 393,284 entries, half nonzero: 1.1 ms against 3.3 ms, ``benchmarks/population_ops.py``)."""
    mags = np.abs(row)
    nonzero = row != 0
    live = nonzero & allowed
    k = _how_many(int(np.count_nonzero(live)), int(np.count_nonzero(nonzero)), fraction, min_nonzero)
    if k < 1:
        return
    threshold = kth_smallest(torch.from_numpy(np.compress(live, mags)), k).numpy()  # 0-d, the row's dtype
    keep = (~(live & (mags <= threshold))).astype(f"i{row.itemsize}")  # ints of the float's width: 1 kept, 0 pruned
    bits = row.view(keep.dtype)
    bits &= np.negative(keep, out=keep)  # all ones keep an entry's bits, all zeros make it +0.0


def kth_smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th smallest (1-based) of the 1-D ``values``, as ``values.kthvalue(k).values`` gives it.

    On CPU by NumPy's introselect (``np.partition``), which returns the same element: at the paper's
    autoencoder (393k entries) torch's ``kthvalue`` takes ~2 ms a row and ``np.partition`` ~0.1 ms, and
    every child of ``gemonn_plus`` is pruned (``benchmarks/README.md``, "AMD EPYC family 26 model 2").
    """
    if not _on_numpy(values):
        return values.kthvalue(k).values
    return torch.from_numpy(np.partition(values.detach().numpy(), k - 1)[k - 1:k]).squeeze(0)


def _on_numpy(t: torch.Tensor) -> bool:
    """Whether ``t`` is a CPU float tensor NumPy can view (float16/32/64; NumPy has no bfloat16)."""
    return t.device.type == "cpu" and t.dtype in (torch.float16, torch.float32, torch.float64)
