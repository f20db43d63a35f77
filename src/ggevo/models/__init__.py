"""Plain ``nn.Module``s evolved by GEMONN."""

from ggevo.models.autoencoder import TiedAutoencoder
from ggevo.models.lenet import LeNet5
from ggevo.models.lstm import LSTMClassifier
from ggevo.models.mlp import MLP
from ggevo.models.stacked import StackedAutoencoder

__all__ = ["LSTMClassifier", "LeNet5", "MLP", "StackedAutoencoder", "TiedAutoencoder"]
