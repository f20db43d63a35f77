"""A deep fully-connected classifier: ``inputs → widths… → classes`` logits."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by name (relu | sigmoid | tanh)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"model.activation: must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """Linear layers of ``widths`` with ``activation`` between them, then a linear layer to ``classes`` logits.

    Input (n×inputs), flattened first; output (n×classes).
    """

    def __init__(self, inputs: int, widths: Sequence[int], classes: int, activation: str = "relu"):
        super().__init__()
        sizes = [int(inputs), *(int(w) for w in widths), int(classes)]
        if min(sizes) <= 0:
            raise ValueError(f"model.inputs/widths/classes must be positive, got {sizes}")
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(fan_in, fan_out), activation_layer(activation)]
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        self.layers = nn.Sequential(*layers)
        self.inputs, self.classes = sizes[0], sizes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))
