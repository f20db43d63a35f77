"""The second objective f2 for each task (docs/ALGORITHM.md, "Problem"), and what else a front member is scored by."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from torch import nn

TASKS = ("reconstruction", "classification", "layer_reconstruction")
DEFAULT_TASK = "reconstruction"  # a model config without ``task`` is an autoencoder's
Score = Callable[[torch.Tensor, Sequence[torch.Tensor]], torch.Tensor]


def model_task(model_cfg) -> str:
    """The task of a model config (``model.task``), ``DEFAULT_TASK`` where it names none."""
    return model_cfg.get("task", DEFAULT_TASK)


def reconstruction_loss(output: torch.Tensor, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean squared error between the output and the (flattened) input."""
    return F.mse_loss(output, batch[0].flatten(1))


def classification_loss(output: torch.Tensor, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of the logits against the labels."""
    return F.cross_entropy(output, batch[1])


def accuracy(output: torch.Tensor, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Fraction of the batch whose largest logit is the label (not differentiable: scoring only)."""
    return (output.argmax(dim=1) == batch[1]).to(output.dtype).mean()


def layer_reconstruction_loss(model: nn.Module) -> Score:
    """MSE against the layer's own input, ``model.layer_input(x)`` (a stacked autoencoder trained
    layer-wise: the frozen layers below are buffers, the same for every individual)."""
    if not callable(getattr(model, "layer_input", None)):
        raise ValueError(f"model.task: layer_reconstruction needs a model with layer_input(), "
                         f"not {type(model).__name__}")

    def loss(output: torch.Tensor, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        return F.mse_loss(output, model.layer_input(batch[0].flatten(1)))

    return loss


def loss_for(task: str, model: nn.Module | None = None) -> Score:
    """f2 of ``task``; ``layer_reconstruction`` also needs the ``model`` whose layer input is the target."""
    if task == "reconstruction":
        return reconstruction_loss
    if task == "classification":
        return classification_loss
    if task == "layer_reconstruction" and model is not None:
        return layer_reconstruction_loss(model)
    raise ValueError(f"model.task: must be one of {TASKS}, got {task!r}")


def extra_scores(task: str) -> dict[str, Score]:
    """Scores reported beside the loss for front members (validation, final front, test)."""
    if task not in TASKS:
        raise ValueError(f"model.task: must be one of {TASKS}, got {task!r}")
    return {"accuracy": accuracy} if task == "classification" else {}
