"""Zero mutation restricted to some columns (the weights, when biases are exempt)."""

import torch

from ggevo.ea.operators.mutation.zero_mutation import zero_mutation_


def test_zero_mutation_touches_only_the_columns_given():
    X = torch.ones(50, 20)
    cols = torch.arange(10)
    zero_mutation_(X, rate=0.5, generator=torch.Generator().manual_seed(0), columns=cols)
    assert bool((X[:, 10:] == 1).all()) and bool((X[:, :10] == 0).any())
