"""The paper's single-hidden-layer autoencoder with tied weights (docs/ALGORITHM.md, "Models")."""

from __future__ import annotations

import torch
from torch import nn

from ggevo.compiling import compiled_where_available


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
        if ctx.agree:
            return _AgreedSum.apply(g_enc, g_dec), None
        return g_enc + g_dec, None


def disagree(g_enc: torch.Tensor, g_dec: torch.Tensor) -> torch.Tensor:
    """Where the encoder's and decoder's parts of a tied gradient disagree in sign: their product is negative."""
    return g_enc * g_dec < 0


def agreed_sum(g_enc: torch.Tensor, g_dec: torch.Tensor) -> torch.Tensor:
    """``g_enc + g_dec``, and 0 where the two ``disagree``."""
    return torch.where(disagree(g_enc, g_dec), 0.0, g_enc + g_dec)


class _AgreedSum(torch.autograd.Function):
    """``agreed_sum`` as one pass over memory, also under ``vmap``.

    Eager, it is five passes (the sum, the product, the comparison, a tensor of zeros, the selection),
    and under the population's ``vmap`` each pass runs over all N tied gradients at once (50 × 392,000
    floats at the paper's size, 78 MB, out of cache): about a sixth of the evaluation. The ``vmap``
    rule hands the batched tensors whole to one kernel, compiled where the machine can build it
    (``ggevo.compiling``); the same elementwise operations on the same operands give the same bits
    (``tests/models/test_autoencoder.py``).
    """

    @staticmethod
    def forward(g_enc: torch.Tensor, g_dec: torch.Tensor) -> torch.Tensor:
        return compiled_where_available(agreed_sum, g_enc.contiguous(), g_dec.contiguous())

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        g_enc, g_dec = ctx.saved_tensors
        kept = torch.where(disagree(g_enc, g_dec), 0.0, grad)
        return kept, kept

    @staticmethod
    def vmap(info, in_dims, g_enc: torch.Tensor, g_dec: torch.Tensor):
        def batch_first(t: torch.Tensor, dim: int | None) -> torch.Tensor:
            return t.expand(info.batch_size, *t.shape) if dim is None else t.movedim(dim, 0)

        return _AgreedSum.apply(batch_first(g_enc, in_dims[0]), batch_first(g_dec, in_dims[1])), 0


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
