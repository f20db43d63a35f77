"""The second objective f2 for each task (ALGORITHM.md, "Problem")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

TASKS = ("reconstruction", "classification")


def reconstruction_loss(output: torch.Tensor, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean squared error between the output and the (flattened) input."""
    return F.mse_loss(output, batch[0].flatten(1))


def classification_loss(output: torch.Tensor, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of the logits against the labels."""
    return F.cross_entropy(output, batch[1])


def loss_for(task: str):
    if task == "reconstruction":
        return reconstruction_loss
    if task == "classification":
        return classification_loss
    raise ValueError(f"model.task: must be one of {TASKS}, got {task!r}")
