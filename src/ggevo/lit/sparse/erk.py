"""Erdős–Rényi-Kernel (ERK) densities and random masks (Evci et al. 2020, "Rigging the Lottery", §3).

A tensor of shape ``(n_1, …, n_k)`` gets density ``ε · Σn_i / Πn_i`` (capped at 1), with ``ε`` chosen
so the network as a whole keeps ``density · D`` entries: large layers are sparser than small ones.
The paper masks weights only; here every trainable tensor is masked, since this project's density
counts biases. A 1-D tensor's ratio is 1, the largest, so biases stay dense where the budget allows
and are the first to be thinned where it does not. Hand-written: torch has no ERK.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ggevo.lit.sparse.targets import kept


def erk_densities(shapes: Sequence[torch.Size], density: float) -> list[float]:
    """Each tensor's density (0, 1] under ERK at overall ``density`` (0, 1); as the paper's reference
    code, the tensor whose density would exceed 1 the most is made dense, and ``ε`` solved again."""
    sizes = [math.prod(s) for s in shapes]
    ratios = [sum(s) / math.prod(s) for s in shapes]
    dense: set[int] = set()
    while True:
        budget = density * sum(sizes) - sum(sizes[i] for i in dense)
        eps = budget / sum(r * n for i, (r, n) in enumerate(zip(ratios, sizes)) if i not in dense)
        over = [i for i in range(len(shapes)) if i not in dense and eps * ratios[i] > 1]
        if not over:
            return [1.0 if i in dense else eps * ratios[i] for i in range(len(shapes))]
        dense.add(max(over, key=lambda i: ratios[i]))


def erk_counts(shapes: Sequence[torch.Size], density: float) -> list[int]:
    """Active entries of each tensor: ERK's shares rounded so they sum to ``kept(density, D)`` exactly
    (floors, then one more for the largest remainders)."""
    sizes = [math.prod(s) for s in shapes]
    shares = [d * n for d, n in zip(erk_densities(shapes, density), sizes)]
    counts = [min(math.floor(s), n) for s, n in zip(shares, sizes)]
    short = kept(density, sum(sizes)) - sum(counts)
    by_remainder = sorted(range(len(shapes)), key=lambda i: shares[i] - counts[i], reverse=True)
    for i in [i for i in by_remainder if counts[i] < sizes[i]][:short]:
        counts[i] += 1
    return counts


def random_masks(shapes: Sequence[torch.Size], density: float, generator: torch.Generator) -> list[torch.Tensor]:
    """Boolean masks with ERK's counts, their positions drawn uniformly within each tensor."""
    masks = []
    for shape, count in zip(shapes, erk_counts(shapes, density)):
        flat = torch.zeros(math.prod(shape), dtype=torch.bool)
        flat[torch.randperm(flat.numel(), generator=generator)[:count]] = True
        masks.append(flat.view(shape))
    return masks
