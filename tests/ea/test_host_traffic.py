"""A generation keeps the population where it lives: no N×D tensor converted or sent to the host, and
no host sync per individual (ISSUE 14: only the 2N×2 objectives cross to pymoo's selection)."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ggevo.ea import GEMONN, PymooNSGA2
from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.flat import FlatParams
from ggevo.lit.tasks import reconstruction_loss
from ggevo.models import TiedAutoencoder

BATCH = (torch.rand(16, 20, generator=torch.Generator().manual_seed(0)), torch.zeros(16, dtype=torch.long))


class HostTraffic(TorchDispatchMode):
    """Counts, for every op dispatched while active, host syncs (``.item()``, ``int()``, ``float()``,
    ``bool()`` of a tensor reach ``aten._local_scalar_dense``) and the sizes of tensors moved between devices;
    ``numpy`` records the sizes of floating-point tensors handed to numpy."""

    def __init__(self):
        super().__init__()
        self.syncs, self.copies, self.numpy = 0, [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            self.syncs += 1
        device = kwargs.get("device")
        if func is torch.ops.aten._to_copy.default and device is not None and torch.device(device) != args[0].device:
            self.copies.append(args[0].numel())  # a move between devices (none can happen on a CPU-only run)
        return func(*args, **kwargs)


def _traffic(optimizer, n: int, strategy: str, monkeypatch) -> HostTraffic:
    torch.manual_seed(0)
    model = TiedAutoencoder(inputs=20, hidden=6)
    ev = PopulationEvaluator(FlatParams(model), reconstruction_loss, strategy)
    opt = optimizer(model.parameters(), pop_size=n, seed=0)
    opt.step(lambda: (lambda X: ev(X, BATCH)))  # initialisation (not counted)
    counter = HostTraffic()
    real_numpy = torch.Tensor.numpy

    def recording_numpy(self, *a, **k):
        if self.is_floating_point():  # (the generator's uint8 state is saved as bytes each step)
            counter.numpy.append(self.numel())
        return real_numpy(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "numpy", recording_numpy)
    with counter:
        opt.step(lambda: (lambda X: ev(X, BATCH)))
    monkeypatch.undo()
    counter.dim = opt.layout.dim
    assert all(opt.run_state[k].device == opt.params[0].device for k in ("X", "F"))
    return counter


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
@pytest.mark.parametrize("reevaluate", [False, True])
def test_a_gemonn_generation_syncs_a_fixed_number_of_times_and_sends_no_population(strategy, reevaluate,
                                                                                  monkeypatch):
    # eager: the compiled kernels are opaque to a dispatch mode (and cannot be traced under one)
    make = lambda params, **kw: GEMONN(params, reevaluate_parents=reevaluate, compile=False, **kw)  # noqa: E731
    small, large = (_traffic(make, n, strategy, monkeypatch) for n in (4, 16))
    assert small.syncs == large.syncs  # host syncs do not grow with the population
    assert len(small.copies) == len(large.copies)  # nor do moves between devices …
    for t, n in ((small, 4), (large, 16)):
        assert max(t.copies, default=0) < t.dim  # … and none moves a row, let alone the population
        assert t.numpy and max(t.numpy) <= 2 * n * 2  # pymoo sees the 2N×2 objectives, never a row of X or G


def test_the_pymoo_baseline_hands_pymoo_only_what_it_must(monkeypatch):
    # pymoo runs the algorithm on row numbers: it sees the N×2 objectives, never a row of the population;
    # syncs follow the front's size and pymoo's mating rounds (duplicates dropped), not one per individual
    make = lambda params, **kw: PymooNSGA2(params, compile=False, **kw)  # noqa: E731
    small, large = (_traffic(make, n, "vmap", monkeypatch) for n in (4, 16))
    assert large.syncs < 16
    for t, n in ((small, 4), (large, 16)):
        assert max(t.copies, default=0) < t.dim
        assert t.numpy and max(t.numpy) <= n * 2
