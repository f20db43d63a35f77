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
    for i in chosen:
        row = X[i]
        nonzero = row != 0
        live = nonzero & allowed
        count = int(live.sum())
        fixed = int(nonzero.sum()) - count if min_nonzero else 0
        k = min(max(1, int(fraction * count)), count - max(1, min_nonzero - fixed))
        if k < 1:
            continue
        mags = row.abs()
        threshold = kth_smallest(mags[live], k)  # boolean indexing: masked_select's entries, in fewer passes on CPU
        # ties at the threshold may take a few more than k: every one of them is as small
        row.masked_fill_(live & (mags <= threshold), 0)
    return X


def kth_smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th smallest (1-based) of the 1-D ``values``, as ``values.kthvalue(k).values`` gives it.

    On CPU by NumPy's introselect (``np.partition``), which returns the same element: at the paper's
    autoencoder (393k entries) torch's ``kthvalue`` takes ~2 ms a row and ``np.partition`` ~0.1 ms, and
    every child of ``gemonn_plus`` is pruned (``benchmarks/README.md``, "AMD EPYC family 26 model 2").
    """
    if values.device.type != "cpu" or values.dtype == torch.bfloat16:  # no NumPy dtype for bfloat16
        return values.kthvalue(k).values
    return torch.from_numpy(np.partition(values.detach().numpy(), k - 1)[k - 1:k]).squeeze(0)
