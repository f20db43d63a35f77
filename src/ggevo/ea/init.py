"""Graded-density initial population and box bounds (docs/ALGORITHM.md, "Population and initialisation")."""

from __future__ import annotations

import math

import torch

from ggevo.ea.flat import ParamLayout

INIT_SCHEMES = ("xavier", "reference")


def _fans(shape: torch.Size) -> tuple[int, int]:
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def initial_values(
    layout: ParamLayout, n: int, *, scheme: str, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``n`` independent draws (n×D) of the model's initialiser.

    ``xavier``: weights U(−a, a) with ``a = √(6/(fan_in+fan_out))``, biases 0.01.
    ``reference``: the reference code's autoencoder rule, every tensor U(−a, a) with
    ``a = 6/√(fan_in+fan_out)``; a bias uses the ``a`` of the weight tensor before it.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init must be one of {INIT_SCHEMES}, got {scheme!r}")
    blocks, last_a = [], None
    for shape, numel in zip(layout.shapes, layout.numels):
        if len(shape) >= 2:
            fan_in, fan_out = _fans(shape)
            last_a = math.sqrt(6.0 / (fan_in + fan_out)) if scheme == "xavier" else 6.0 / math.sqrt(fan_in + fan_out)
            a = last_a
        elif scheme == "xavier" or last_a is None:
            blocks.append(torch.full((n, numel), 0.01, dtype=dtype))
            continue
        else:
            a = last_a
        blocks.append((torch.rand(n, numel, generator=generator, dtype=dtype) * 2.0 - 1.0) * a)
    return torch.cat(blocks, dim=1)


def geometric_densities(n: int, min_density: float) -> torch.Tensor:
    """(n,) float64: densities spaced geometrically from ``min_density`` (row 0) to 1 (the last row), the grid that
    ``min_density`` grades the initial population along (``graded_mask``), drawn or, with ``exact_densities``, exact."""
    if not 0.0 < min_density <= 1.0:
        raise ValueError(f"min_density must be in (0, 1], got {min_density}")
    return min_density ** (1.0 - torch.arange(n, dtype=torch.float64) / max(n - 1, 1))


def graded_mask(n: int, dim: int, *, generator: torch.Generator, min_density: float | None = None,
                densities: list[float] | None = None, exempt: torch.Tensor | None = None,
                exact: bool = False) -> torch.Tensor:
    """(n×D) bool: row ``i`` (1-based) keeps each entry with probability ``i/n``, or, with
    ``min_density`` set, with probabilities spaced geometrically from ``min_density`` to 1 (beyond
    the paper: a front that starts at density 0.01 has members at 0.02 and 0.05 too). With ``densities``
    (n values) row ``i`` keeps exactly ``floor(densities[i] · D)`` entries counting the ``exempt`` ones
    (D,) bool, which it always keeps, the others drawn uniformly: its density is at most its value, so a
    network made for a density budget is within it. ``exact`` (``exact_densities``) takes ``min_density``'s grid
    as those ``densities``."""
    if densities is None and exact:
        densities = geometric_densities(n, min_density).tolist()
    if densities is not None:
        exempt = torch.zeros(dim, dtype=torch.bool) if exempt is None else exempt.cpu()
        draws = torch.rand(n, dim, generator=generator).masked_fill_(exempt, 2.0)  # exempt entries drawn last
        rank = draws.argsort(dim=1, stable=True).argsort(dim=1)  # each entry's place in its row's draw order
        counts = torch.tensor([math.floor(d * dim) for d in densities]) - int(exempt.sum())
        return (rank < counts.clamp_min(0).unsqueeze(1)) | exempt
    if min_density is None:
        keep = torch.arange(1, n + 1, dtype=torch.float32).unsqueeze(1) / n
    else:
        keep = geometric_densities(n, min_density).to(torch.float32).unsqueeze(1)
    return torch.rand(n, dim, generator=generator) < keep


def initial_population(
    layout: ParamLayout,
    n: int,
    *,
    scheme: str = "xavier",
    graded: bool = True,
    min_density: float | None = None,
    densities: list[float] | None = None,
    exact: bool = False,
    exempt: torch.Tensor | None = None,
    lower: torch.Tensor | None = None,
    upper: torch.Tensor | None = None,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Initial population (n×D): independent initialiser draws, graded densities if ``graded``
    (``i/n``, geometric from ``min_density``, or exactly ``densities`` or, ``exact``, ``min_density``'s grid:
    ``graded_mask``); entries flagged in
    ``exempt`` (D,) bool are never masked (biases, when exempt from zeroing)."""
    X = initial_values(layout, n, scheme=scheme, generator=generator, dtype=dtype)
    if graded:
        mask = graded_mask(n, layout.dim, generator=generator, min_density=min_density, densities=densities,
                           exempt=exempt, exact=exact)
        X = X * (mask if exempt is None else mask | exempt)
    if lower is not None:
        X = torch.clamp(X, lower.to(X), upper.to(X))
    return X


def box_bounds(layout: ParamLayout, *, weight_bound: float, bias_bound: float, dtype: torch.dtype = torch.float32):
    """``(lower, upper)`` (D,): ±``weight_bound`` on weight tensors, ±``bias_bound`` on biases."""
    if weight_bound <= 0 or bias_bound <= 0:
        raise ValueError(f"bounds must be positive, got {weight_bound}, {bias_bound}")
    upper = torch.where(layout.is_weight(), weight_bound, bias_bound).to(dtype)
    return -upper, upper
