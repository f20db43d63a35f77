"""LeNet-5 (LeCun et al. 1998) on flat image rows, zero-padded to 32×32 when smaller."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ggevo.models.mlp import activation_layer


class LeNet5(nn.Module):
    """``conv5→6, pool, conv5→16, pool, fc120, fc84, fc classes`` with ``activation`` (classic: tanh) and
    2×2 average pooling (the original subsampling).

    Input (n × channels·size·size), channel-first rows; images smaller than 32×32 (MNIST's 28×28)
    are zero-padded to 32×32 centred, as in the original paper. Output: logits (n×classes).
    """

    def __init__(self, channels: int = 3, size: int = 32, classes: int = 10, activation: str = "tanh"):
        super().__init__()
        if channels <= 0 or classes <= 0 or not 0 < size <= 32:
            raise ValueError(f"model.channels/classes must be positive and model.size in 1..32, "
                             f"got {channels}, {classes}, {size}")
        self.channels, self.size, self.classes = channels, size, classes
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5), activation_layer(activation), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), activation_layer(activation), nn.AvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), activation_layer(activation),
            nn.Linear(120, 84), activation_layer(activation),
            nn.Linear(84, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if x.shape[1] != self.channels * self.size * self.size:
            raise ValueError(f"LeNet5 expects {self.channels}x{self.size}x{self.size} = "
                             f"{self.channels * self.size ** 2} features, got {x.shape[1]}")
        images = x.view(x.shape[0], self.channels, self.size, self.size)
        before = (32 - self.size) // 2
        after = 32 - self.size - before
        if before or after:
            images = F.pad(images, (before, after, before, after))
        return self.classifier(self.features(images).flatten(1))
