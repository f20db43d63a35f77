"""Sparse-training baselines in the schema of an evolutionary run: gradual magnitude pruning (GMP),
RigL and one-shot magnitude pruning, each trained by gradient steps (one step of one network on one
minibatch is one evaluation) with a front of (density, loss) snapshots. ``optimizer.method`` picks one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from ggevo.lit.sparse.gmp import GMPModule
from ggevo.lit.sparse.module import SparseModule
from ggevo.lit.sparse.oneshot import OneShotModule
from ggevo.lit.sparse.rigl import RigLModule

METHODS: dict[str, type[SparseModule]] = {"gmp": GMPModule, "rigl": RigLModule, "oneshot": OneShotModule}
# what a run passes itself, never an optimizer key
_FROM_RUN = {"model", "optimizer", "task", "budget", "hv_ref", "seed"}


def method_keys(method: str) -> set[str]:
    """The optimizer keys ``method``'s module takes (its schedule), not those a run passes itself."""
    return set(inspect.signature(METHODS[method]).parameters) - _FROM_RUN


def method_options(optimizer: Mapping) -> dict:
    """The keys of a config's ``optimizer`` section that its ``method``'s module takes (its schedule)."""
    accepted = method_keys(optimizer["method"])
    return {k: v for k, v in optimizer.items() if k in accepted}


def build_method(model: nn.Module, optimizer: Callable[..., torch.optim.Optimizer], config: Mapping, *, task: str,
                 budget: int, hv_ref: Sequence[float], seed: int) -> SparseModule:
    """The module of ``config["method"]`` (``config``: the optimizer section) training ``model`` for
    ``budget`` steps; the seed goes to the methods that draw (RigL's masks)."""
    cls = METHODS[config["method"]]
    run = {"task": task, "budget": budget, "hv_ref": hv_ref}
    if "seed" in inspect.signature(cls).parameters:
        run["seed"] = seed
    return cls(model, optimizer, **run, **method_options(config))


__all__ = ["METHODS", "GMPModule", "OneShotModule", "RigLModule", "SparseModule", "build_method", "method_keys", "method_options"]
