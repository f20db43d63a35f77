"""ggevo: GEMONN, gradient-guided multi-objective evolution of sparse neural networks."""

__version__ = "0.1.0"
