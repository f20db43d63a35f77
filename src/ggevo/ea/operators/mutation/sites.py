"""Which coordinates a per-coordinate mutation touches, drawn without one uniform per coordinate."""

from __future__ import annotations

import torch


def mutation_sites(
    n: int, dim: int, rate: float, generator: torch.Generator, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of the mutated entries of an ``n×dim`` population.

    Each entry mutates independently with probability ``rate``: per row, the count is
    Binomial(dim, rate) and the columns are uniform (a repeat within a row has probability
    about ``rate``, negligible at the default 1/D). Costs about ``n + n·dim·rate`` random
    numbers instead of ``n·dim``.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"mutation rate must be a probability, got {rate}")
    counts = torch.binomial(torch.full((n,), float(dim)), torch.full((n,), float(rate)), generator=generator)
    counts = counts.to(torch.int64)
    rows = torch.repeat_interleave(torch.arange(n), counts)
    cols = torch.randint(0, dim, (int(counts.sum()),), generator=generator)
    return rows.to(device), cols.to(device)
