"""Global magnitude pruning of a network's tensors with ``torch.nn.utils.prune``, and the weights it leaves.

``prune`` keeps each pruned tensor as ``<name>_orig`` times the buffer ``<name>_mask``; a pruned entry
is zero in every forward, whatever the optimizer does to ``<name>_orig``, and pruning again only
removes entries still unpruned, so the masks of successive prunings are nested.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

Target = tuple[nn.Module, str]


def tensor_targets(net: nn.Module) -> list[Target]:
    """Every trainable tensor of ``net`` as ``(module, name)``, in ``FlatParams``' order."""
    return [(m, n) for m in net.modules() for n, p in m.named_parameters(recurse=False) if p.requires_grad]


def weight_of(module: nn.Module, name: str) -> torch.Tensor:
    """The tensor as the network uses it now: ``orig * mask`` once pruned. (``prune`` refreshes the
    attribute ``name`` only in a forward, so after an optimizer step it is one step old.)"""
    if hasattr(module, name + "_mask"):
        return getattr(module, name + "_orig") * getattr(module, name + "_mask")
    return getattr(module, name)


def effective(targets: list[Target]) -> torch.Tensor:
    """The network's parameters as trained (masks applied), one (D,) vector in ``FlatParams``' order."""
    return torch.cat([weight_of(m, n).detach().reshape(-1) for m, n in targets])


def unpruned(targets: list[Target]) -> int:
    """Entries no mask has removed."""
    return sum(int(getattr(m, n + "_mask").sum()) if hasattr(m, n + "_mask") else getattr(m, n).numel()
               for m, n in targets)


@torch.no_grad()
def prune_globally(targets: list[Target], keep: int) -> None:
    """Prune the smallest-magnitude entries of all ``targets`` together until ``keep`` remain unpruned
    (torch's global L1 pruning, scored on the weights as they are now)."""
    amount = unpruned(targets) - keep
    if amount <= 0:
        return
    scores = {(m, n): weight_of(m, n) for m, n in targets}
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, importance_scores=scores, amount=amount)
