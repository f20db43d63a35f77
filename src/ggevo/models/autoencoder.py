"""The paper's single-hidden-layer autoencoder with tied weights (docs/ALGORITHM.md, "Models")."""

from __future__ import annotations

import torch
from torch import nn


class _TiedUse(torch.autograd.Function):
    """Hands one weight to the encoder and the decoder; on the way back, sums their gradients.

    With ``agree`` set, coordinates where the encoder's and decoder's parts disagree in sign
    get gradient 0 (the reference implementation's choice, docs/ALGORITHM.md). Used only then: without
    it autograd's own sum of the two uses gives the same numbers, bit for bit, at less cost under vmap
    (``tests/ea/test_evaluate.py``).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(weight: torch.Tensor, agree: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return weight.view_as(weight), weight.view_as(weight)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.agree = inputs[1]

    @staticmethod
    def backward(ctx, g_enc: torch.Tensor, g_dec: torch.Tensor):
        total = g_enc + g_dec
        if ctx.agree:
            total = torch.where(g_enc * g_dec < 0, torch.zeros_like(total), total)
        return total, None


class TiedAutoencoder(nn.Module):
    """``x → σ(x Wᵀ + b_h) → σ(h W + b_o)`` with one shared weight ``W`` (hidden × inputs).

    ``sign_agreement`` zeroes gradient entries where the encoder and decoder uses of ``W``
    pull in opposite directions.
    """

    def __init__(self, inputs: int = 784, hidden: int = 500, sign_agreement: bool = False):
        super().__init__()
        if inputs <= 0 or hidden <= 0:
            raise ValueError(f"inputs and hidden must be positive, got {inputs}, {hidden}")
        self.inputs = inputs
        self.hidden = hidden
        self.sign_agreement = sign_agreement
        self.weight = nn.Parameter(torch.empty(hidden, inputs))
        self.hidden_bias = nn.Parameter(torch.empty(hidden))
        self.output_bias = nn.Parameter(torch.empty(inputs))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)
        nn.init.constant_(self.hidden_bias, 0.01)
        nn.init.constant_(self.output_bias, 0.01)

    def encode(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        w = self.weight if weight is None else weight
        return torch.sigmoid(torch.nn.functional.linear(x, w, self.hidden_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if self.sign_agreement:
            w_enc, w_dec = _TiedUse.apply(self.weight, True)
        else:  # autograd itself sums the two uses' gradients, without a custom Function's cost under vmap
            w_enc = w_dec = self.weight
        h = self.encode(x, w_enc)
        return torch.sigmoid(h @ w_dec + self.output_bias)
