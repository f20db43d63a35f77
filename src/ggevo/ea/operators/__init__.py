"""Variation operators, each a pure function on tensors taking an explicit ``torch.Generator``: crossover
(``crossover/``) and mutation (``mutation/``), as pymoo files its operators; beside them the counter-based random
bits the kernels draw from, the Lamarckian local search and the trunk's branching and pruning."""

from ggevo.ea.operators.crossover.grad_sbx import grad_guided_sbx
from ggevo.ea.operators.crossover.sbx import sbx
from ggevo.ea.operators.mutation.polynomial_mutation import polynomial_mutation, polynomial_mutation_
from ggevo.ea.operators.mutation.zero_mutation import zero_mutation, zero_mutation_

__all__ = ["grad_guided_sbx", "sbx", "zero_mutation", "zero_mutation_", "polynomial_mutation", "polynomial_mutation_"]
