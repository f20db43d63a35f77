"""Plain ``nn.Module``s evolved by GEMONN."""

from ggevo.models.autoencoder import TiedAutoencoder

__all__ = ["TiedAutoencoder"]
