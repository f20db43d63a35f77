"""An LSTM classifier written from linear gate ops, so that ``vmap`` can batch individuals through it."""

from __future__ import annotations

import torch
from torch import nn


class LSTMClassifier(nn.Module):
    """Reads a flat input (n × steps·inputs) as ``steps`` rows of ``inputs`` and classifies the last hidden state.

    One LSTM layer: ``[i f g o] = x_t W_xᵀ + b + h_{t-1} W_hᵀ``, ``c_t = σ(f)c_{t-1} + σ(i)tanh(g)``,
    ``h_t = σ(o)tanh(c_t)``; logits (n×classes) ``= h_T W_yᵀ + b_y``. ``nn.LSTM``'s fused kernel has
    no ``vmap`` rule, hence the explicit loop over time steps (there is none over individuals).
    """

    def __init__(self, inputs: int = 28, steps: int = 28, hidden: int = 64, classes: int = 10):
        super().__init__()
        if min(inputs, steps, hidden, classes) <= 0:
            raise ValueError(f"model.inputs/steps/hidden/classes must be positive, "
                             f"got {inputs}, {steps}, {hidden}, {classes}")
        self.inputs, self.steps, self.hidden, self.classes = inputs, steps, hidden, classes
        self.input_gates = nn.Linear(inputs, 4 * hidden)
        self.hidden_gates = nn.Linear(hidden, 4 * hidden, bias=False)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if x.shape[1] != self.steps * self.inputs:
            raise ValueError(f"LSTMClassifier expects {self.steps}x{self.inputs} = {self.steps * self.inputs} "
                             f"features, got {x.shape[1]}")
        gates_in = self.input_gates(x.view(x.shape[0], self.steps, self.inputs))  # all steps at once
        h = x.new_zeros(x.shape[0], self.hidden)
        c = x.new_zeros(x.shape[0], self.hidden)
        for t in range(self.steps):
            i, f, g, o = (gates_in[:, t] + self.hidden_gates(h)).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return self.head(h)
