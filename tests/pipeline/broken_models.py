"""A network that trains to nothing: its every output is NaN (an ordinary ``nn.Module`` otherwise)."""

import torch

from ggevo.models import TiedAutoencoder


class NaNAutoencoder(TiedAutoencoder):
    """The tied autoencoder whose reconstruction is NaN everywhere, so every loss is NaN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")
