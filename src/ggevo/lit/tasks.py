"""The second objective f2 for each task (ALGORITHM.md, "Problem"), and what else a front member is scored by."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

TASKS = ("reconstruction", "classification")
Score = Callable[[torch.Tensor, Sequence[torch.Tensor]], torch.Tensor]


def reconstruction_loss(output: torch.Tensor, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean squared error between the output and the (flattened) input."""
    return F.mse_loss(output, batch[0].flatten(1))


def classification_loss(output: torch.Tensor, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of the logits against the labels."""
    return F.cross_entropy(output, batch[1])


def accuracy(output: torch.Tensor, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Fraction of the batch whose largest logit is the label (not differentiable: scoring only)."""
    return (output.argmax(dim=1) == batch[1]).to(output.dtype).mean()


def loss_for(task: str) -> Score:
    if task == "reconstruction":
        return reconstruction_loss
    if task == "classification":
        return classification_loss
    raise ValueError(f"model.task: must be one of {TASKS}, got {task!r}")


def extra_scores(task: str) -> dict[str, Score]:
    """Scores reported beside the loss for front members (validation, final front, test)."""
    loss_for(task)
    return {"accuracy": accuracy} if task == "classification" else {}
