"""The optimizer: determinism, exact resume from state_dict, robustness to non-finite losses."""

import io

import pytest
import torch

from ggevo.ea import GEMONN
from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.flat import FlatParams
from ggevo.lit.tasks import reconstruction_loss
from ggevo.models import TiedAutoencoder

_g = torch.Generator().manual_seed(0)
# two high-contrast prototypes plus noise: a constant output scores about 0.25, learning helps
DATA = ((torch.rand(2, 20, generator=_g) > 0.5).float()[torch.randint(0, 2, (64,), generator=_g)]
        * 0.9 + 0.1 * torch.rand(64, 20, generator=_g))


def _batch(t):
    idx = torch.randperm(64, generator=torch.Generator().manual_seed(t))[:16]
    return (DATA[idx], torch.zeros(16, dtype=torch.long))


def _make(seed=0, **kw):
    torch.manual_seed(123)
    model = TiedAutoencoder(inputs=20, hidden=6)
    flat = FlatParams(model)
    ev = PopulationEvaluator(flat, reconstruction_loss, "loop")
    opt = GEMONN(model.parameters(), pop_size=8, seed=seed, compile=False, hv_ref=(1.0, 0.5), **kw)
    return model, ev, opt


def _run(opt, ev, start, stop):
    statuses = []
    for t in range(start, stop):
        b = _batch(t)
        statuses.append(opt.step(lambda b=b: (lambda X: ev(X, b))))
    return statuses


def test_loss_falls_and_status_counts():
    _, ev, opt = _make()
    everything = (DATA, torch.zeros(64, dtype=torch.long))
    statuses = _run(opt, ev, 0, 1)
    start = ev.losses(opt.run_state["X"], everything).min()
    statuses += _run(opt, ev, 1, 15)
    assert ev.losses(opt.run_state["X"], everything).min() < start - 0.005
    assert statuses[-1]["hypervolume"] > statuses[0]["hypervolume"]
    # initial N, then N children + N re-scored parents from generation 2 on
    assert statuses[0]["evaluations"] == 16 and statuses[-1]["evaluations"] == 16 + 14 * 16
    assert statuses[-1]["generation"] == 15


def test_without_reevaluation_each_generation_costs_n():
    _, ev, opt = _make(reevaluate_parents=False)
    assert _run(opt, ev, 0, 5)[-1]["evaluations"] == 8 * 6


def test_same_seed_same_population_other_seed_differs():
    runs = []
    for seed in (0, 0, 1):
        _, ev, opt = _make(seed=seed)
        _run(opt, ev, 0, 6)
        runs.append(opt.run_state["X"].clone())
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_state_dict_round_trip_resumes_exactly():
    _, ev, full = _make()
    _run(full, ev, 0, 10)

    _, ev2, first = _make()
    _run(first, ev2, 0, 4)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    _, ev3, resumed = _make(seed=99)  # a different seed: everything must come from the state
    resumed.load_state_dict(torch.load(buf, weights_only=False))
    tail = _run(resumed, ev3, 4, 10)
    assert torch.equal(resumed.run_state["X"], full.run_state["X"])
    assert torch.equal(resumed.run_state["F"], full.run_state["F"])
    assert tail[-1]["evaluations"] == full.status()["evaluations"]


def test_nonfinite_losses_are_counted_and_lose():
    _, ev, opt = _make()

    def poisoned(X, b):
        loss, grad = ev(X, b)
        loss = loss.clone()
        loss[::3] = float("nan")
        grad = grad.clone()
        grad[1] = float("inf")
        return loss, grad

    statuses = []
    for t in range(5):
        b = _batch(t)
        statuses.append(opt.step(lambda b=b: (lambda X: poisoned(X, b))))
    assert statuses[-1]["nonfinite"] > 0
    assert torch.isfinite(opt.run_state["G"]).all()
    _, F = opt.front()
    assert torch.isfinite(F).all()


def test_the_module_holds_the_knee_after_a_step():
    model, ev, opt = _make()
    _run(opt, ev, 0, 3)
    X, F = opt.front()
    from ggevo.ea.front import knee

    assert torch.equal(FlatParams(model).current(), X[knee(F)])


@pytest.mark.parametrize("kw,key", [
    ({"pop_size": 7}, "pop_size"), ({"pop_size": 0}, "pop_size"), ({"eta": -1.0}, "eta"),
    ({"sparsity_preservation": 2.0}, "sparsity_preservation"), ({"mutation": "gauss"}, "mutation"),
])
def test_invalid_hyperparameters_name_the_key(kw, key):
    with pytest.raises(ValueError, match=f"optimizer.{key}"):
        GEMONN(TiedAutoencoder(4, 2).parameters(), **kw)


def test_ablation_variants_run():
    for kw in ({"crossover": "sbx", "mutation": "polynomial", "sparsity_preservation": 0.0},
               {"mutation": "polynomial", "sparsity_preservation": 0.0}, {"exchange": False}):
        _, ev, opt = _make(**kw)
        assert _run(opt, ev, 0, 3)[-1]["generation"] == 3
