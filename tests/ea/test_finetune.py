"""Sparse fine-tuning keeps the zeros and lowers the loss."""

import torch

from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.finetune import masked_adam
from ggevo.ea.flat import FlatParams
from ggevo.ea.init import initial_population
from ggevo.lit.tasks import reconstruction_loss
from ggevo.models import TiedAutoencoder


def test_masked_adam_never_turns_a_zero_into_a_nonzero_and_learns():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(2, 30, generator=g) > 0.5).float()[torch.randint(0, 2, (64,), generator=g)]
    flat = FlatParams(TiedAutoencoder(30, 8))
    ev = PopulationEvaluator(flat, reconstruction_loss, "vmap")
    X = initial_population(flat.layout, 6, generator=g)
    batches = iter(lambda: (lambda P: ev(P, (data[torch.randint(0, 64, (16,), generator=g)], None))), None)
    tuned = masked_adam(X, batches, 60, lr=0.05)
    assert bool((tuned[X == 0] == 0).all())
    everything = (data, None)
    assert bool((ev.losses(tuned, everything) < ev.losses(X, everything)).all())
    assert not torch.equal(tuned, X)
