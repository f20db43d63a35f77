"""The method itself, in pure torch: population, operators, selection and the optimizer.

Nothing in this package imports Lightning, Hydra or MLflow.
"""

from ggevo.ea.flat import FlatParams, ParamLayout
from ggevo.ea.gemonn import GEMONN
from ggevo.ea.population import PopulationOptimizer
from ggevo.ea.pymoo_nsga2 import PymooNSGA2

__all__ = ["GEMONN", "FlatParams", "ParamLayout", "PopulationOptimizer", "PymooNSGA2"]
