"""A stacked autoencoder trained layer-wise (the paper's deep experiments): one tied layer evolved at a time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ggevo.models.autoencoder import TiedAutoencoder

Encoder = tuple[torch.Tensor, torch.Tensor]  # (weight (out×in), bias (out,))


def frozen_encoders(state: dict[str, torch.Tensor]) -> list[Encoder]:
    """The frozen encoders a saved stacked layer's state carries as buffers (none for a plain tied layer)."""
    encoders = []
    while f"frozen_weight_{len(encoders)}" in state:
        i = len(encoders)
        encoders.append((state[f"frozen_weight_{i}"], state[f"frozen_bias_{i}"]))
    return encoders


def load_encoders(previous: str | Sequence[str]) -> list[Encoder]:
    """Encoders from ``knee_model.pt`` files (``{"state_dict": …}``), bottom layer first.

    Each file adds its own encoder (``weight``, ``hidden_bias``); a file that also carries frozen
    encoders (a stacked layer's full state) stands for the whole stack below it. So one path to a
    full state, or one path per lower layer (parameters only, as ``train`` writes them), both work.
    """
    paths = [previous] if isinstance(previous, (str, Path)) else list(previous)
    encoders: list[Encoder] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"model.previous: no file {path} (the knee_model.pt of the previous layer's run)")
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        below = frozen_encoders(state)
        encoders = [*(below or encoders), (state["weight"], state["hidden_bias"])]
    return [(w.detach().float().clone(), b.detach().float().clone()) for w, b in encoders]


class StackedAutoencoder(TiedAutoencoder):
    """Layer ``layer`` of an ``inputs-widths[0]-widths[1]-…`` stack (``sizes``: the input, then each hidden
    width, as ``MLP`` takes them): a tied autoencoder ``sizes[k] → sizes[k+1]``
    whose input is the data encoded by the frozen layers ``< k``.

    The frozen encoders are buffers (``frozen_weight_i``, ``frozen_bias_i``), so only this layer's
    ``weight``, ``hidden_bias`` and ``output_bias`` are parameters, i.e. evolved. ``forward(x)``
    returns the reconstruction (n×sizes[k]) of ``layer_input(x)``, not of ``x``; for ``layer=0``
    the two coincide. ``encode(x)`` runs the whole stack from the data to this layer's code.
    """

    def __init__(self, inputs: int = 784, widths: Sequence[int] = (500, 250), layer: int = 0,
                 previous: str | Sequence[str] | None = None, sign_agreement: bool = False):
        sizes = [int(inputs), *(int(w) for w in widths)]
        if not 0 <= layer < len(sizes) - 1:
            raise ValueError(f"model.layer: must be in 0..{len(sizes) - 2} for model.widths {sizes[1:]}, got {layer}")
        super().__init__(sizes[layer], sizes[layer + 1], sign_agreement)
        self.sizes, self.layer = sizes, layer
        if layer > 0 and previous is None:
            raise ValueError(f"model.previous: layer {layer} needs the knee_model.pt of layer {layer - 1}'s run")
        encoders = load_encoders(previous) if layer > 0 else []
        expected = [(sizes[i + 1], sizes[i]) for i in range(layer)]
        if [tuple(w.shape) for w, _ in encoders] != expected:
            raise ValueError(f"model.previous: encoders of shapes {[tuple(w.shape) for w, _ in encoders]} "
                             f"do not stack to layer {layer} of sizes {sizes} (need {expected})")
        for i, (w, b) in enumerate(encoders):
            self.register_buffer(f"frozen_weight_{i}", w)
            self.register_buffer(f"frozen_bias_{i}", b)

    def layer_input(self, x: torch.Tensor) -> torch.Tensor:
        """The data (n×inputs) through the frozen encoders: this layer's input and reconstruction target."""
        h = x.flatten(1)
        for i in range(self.layer):
            h = torch.sigmoid(nn.functional.linear(h, getattr(self, f"frozen_weight_{i}"),
                                                   getattr(self, f"frozen_bias_{i}")))
        return h

    def encode(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """This layer's code (n×sizes[k+1]) of the data ``x`` (n×inputs)."""
        return super().encode(self.layer_input(x), weight)
