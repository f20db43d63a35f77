"""The densities the sparse baselines train to, and which network a step of the budget trains.

A budget counts gradient evaluations: one forward and backward of one network on one minibatch.
A ``Plan`` gives each network the Lightning steps it trains at (one evaluation each), so a run's
spending is read off its plan. A method that trains one network per target density splits the
budget evenly across them (``split``, each gets ``budget / k`` steps, one after the other), or
gives each the whole budget (``whole``: they train side by side, ``k`` evaluations a step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ggevo.ea.front import count_within

TARGET_DENSITIES = (0.5, 0.25, 0.1, 0.05, 0.02)
BUDGET_PER_DENSITY = ("split", "whole")


def check_target_densities(densities: Sequence[float]) -> list[float]:
    """``densities`` as floats: falling, each in (0, 1) (the dense network is every method's start)."""
    try:
        ds = [float(d) for d in densities]
    except (TypeError, ValueError):
        ds = []
    if not ds or any(not 0 < d < 1 for d in ds) or any(b >= a for a, b in zip(ds, ds[1:])):
        raise ValueError(f"optimizer.target_densities: densities must lie in (0, 1) and fall, got {densities!r}")
    return ds


def kept(density: float, size: int) -> int:
    """How many of ``size`` entries a network at ``density`` keeps: the one rounding rule of these baselines.
    To the nearest, one fewer where that would leave the network above ``density`` as a density budget
    (``ea.front.count_within``; only on networks of fewer than about 25,000 entries at 0.02: 0.02 of 2,144 rounds to
    43, density 0.02006, outside the budget's tolerance, so 42)."""
    return count_within(round(density * size), size, density)


@dataclass(frozen=True)
class Plan:
    """Network ``i`` trains at Lightning steps ``begin[i] <= step < end[i]``, one evaluation a step."""

    begin: tuple[int, ...]
    end: tuple[int, ...]

    @property
    def steps(self) -> int:
        return max(self.end)

    def active(self, step: int) -> list[int]:
        return [i for i, (b, e) in enumerate(zip(self.begin, self.end)) if b <= step < e]

    def evaluations(self, done: int) -> int:
        """Evaluations spent once ``done`` steps have run."""
        return sum(min(max(done - b, 0), e - b) for b, e in zip(self.begin, self.end))

    def __add__(self, other: Plan) -> Plan:
        return Plan(self.begin + other.begin, self.end + other.end)


def per_density(start: int, steps: int, networks: int, budget_per_density: str) -> Plan:
    """``networks`` networks trained in ``steps`` steps from ``start``: one after another on an even split
    (the last takes the remainder), or ``whole``, all of them at every step."""
    if budget_per_density not in BUDGET_PER_DENSITY:
        raise ValueError(f"optimizer.budget_per_density: must be one of {BUDGET_PER_DENSITY}, "
                         f"got {budget_per_density!r}")
    if budget_per_density == "whole":
        return Plan((start,) * networks, (start + steps,) * networks)
    if steps < networks:
        raise ValueError(f"budget: {steps} steps cannot train {networks} networks one step each")
    share = steps // networks
    begin = tuple(start + k * share for k in range(networks))
    return Plan(begin, begin[1:] + (start + steps,))
