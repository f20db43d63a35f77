"""Variation operators, each a pure function on tensors taking an explicit ``torch.Generator``."""

from ggevo.ea.operators.grad_sbx import grad_guided_sbx
from ggevo.ea.operators.polynomial_mutation import polynomial_mutation, polynomial_mutation_
from ggevo.ea.operators.sbx import sbx
from ggevo.ea.operators.zero_mutation import zero_mutation, zero_mutation_

__all__ = ["grad_guided_sbx", "sbx", "zero_mutation", "zero_mutation_", "polynomial_mutation", "polynomial_mutation_"]
