"""Lightning wrappers: the evolution LightningModule and its progress display."""

from ggevo.lit.module import EvolutionModule
from ggevo.lit.progress import GenerationProgress

__all__ = ["EvolutionModule", "GenerationProgress"]
