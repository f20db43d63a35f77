"""The pymoo NSGA-II baseline: one evaluator call a generation, GEMONN's start, elitism, exact resume."""

import io

import pytest
import torch

from ggevo.ea import GEMONN, PymooNSGA2
from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.flat import FlatParams
from ggevo.ea.front import knee
from ggevo.lit.tasks import reconstruction_loss
from ggevo.models import TiedAutoencoder

N = 8
_g = torch.Generator().manual_seed(0)
# two high-contrast prototypes plus noise, as in test_gemonn
DATA = ((torch.rand(2, 16, generator=_g) > 0.5).float()[torch.randint(0, 2, (48,), generator=_g)]
        * 0.9 + 0.1 * torch.rand(48, 16, generator=_g))


def _batch(t):
    idx = torch.randperm(48, generator=torch.Generator().manual_seed(t))[:12]
    return (DATA[idx], torch.zeros(12, dtype=torch.long))


def _make(cls=PymooNSGA2, seed=0, pop_size=N, **kw):
    torch.manual_seed(123)
    model = TiedAutoencoder(inputs=16, hidden=4)
    ev = PopulationEvaluator(FlatParams(model), reconstruction_loss, "loop")
    opt = cls(model.parameters(), pop_size=pop_size, seed=seed, hv_ref=(1.0, 0.5), **kw)
    return model, ev, opt


class Recorder:
    """The evaluator, remembering the population of each call."""

    def __init__(self, ev):
        self.ev, self.calls = ev, []

    def __call__(self, X, batch):
        self.calls.append(X.clone())
        return self.ev(X, batch)


def _run(opt, ev, start, stop, batch=None):
    return [opt.step(lambda b=batch or _batch(t): (lambda X: ev(X, b))) for t in range(start, stop)]


def test_one_evaluator_call_per_generation_and_n_evaluations_each():
    _, ev, opt = _make()
    rec = Recorder(ev)
    statuses = _run(opt, rec, 0, 6)
    # the first step scores the initial population, then its offspring (as GEMONN's first step)
    assert [c.shape for c in rec.calls] == [torch.Size((N, opt.layout.dim))] * 7
    assert [s["evaluations"] for s in statuses] == [N + N * g for g in range(1, 7)]
    assert statuses[-1]["generation"] == 6
    # offspring differ from the population they came from: the call scored new rows
    assert not torch.equal(rec.calls[1], rec.calls[0])


def test_initial_population_is_gemonns():
    _, ev, gem = _make(GEMONN, compile=False)
    _, _, base = _make()
    rec_gem, rec_base = Recorder(ev), Recorder(ev)
    _run(gem, rec_gem, 0, 1)
    _run(base, rec_base, 0, 1)
    assert torch.equal(rec_base.calls[0], rec_gem.calls[0])
    lo, hi = base.bounds()
    assert torch.equal(lo, gem.bounds()[0]) and torch.equal(hi, gem.bounds()[1])


def test_hypervolume_never_falls_on_a_fixed_batch():
    _, ev, opt = _make(pop_size=16)
    statuses = _run(opt, ev, 0, 8, batch=_batch(0))
    hv = [s["hypervolume"] for s in statuses]
    # survivors keep their scores and NSGA-II is elitist: the front can only fall by crowding
    # truncation, which needs a first front of more than N (the front then fills the population)
    untruncated = [t for t in range(1, len(hv)) if statuses[t]["front/size"] < 16]
    assert len(untruncated) >= 4
    assert all(hv[t] >= hv[t - 1] for t in untruncated)
    assert hv[-1] > hv[0]


def test_state_dict_round_trip_resumes_exactly():
    _, ev, full = _make()
    _run(full, ev, 0, 8)

    _, ev2, first = _make()
    _run(first, ev2, 0, 3)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    _, ev3, resumed = _make(seed=99)  # a different seed: everything must come from the state
    resumed.load_state_dict(torch.load(buf, weights_only=False))
    tail = _run(resumed, ev3, 3, 8)
    assert torch.equal(resumed.run_state["X"], full.run_state["X"])
    assert torch.equal(resumed.run_state["F"], full.run_state["F"])
    assert tail[-1] == full.status()
    # the live state keeps the pymoo object; only the saved copy is bytes
    assert isinstance(first.state_dict()["state"][0]["algorithm"], bytes)
    assert not isinstance(first.run_state["algorithm"], bytes)


def test_same_seed_same_front_other_seed_differs():
    fronts = []
    for seed in (0, 0, 1):
        _, ev, opt = _make(seed=seed)
        _run(opt, ev, 0, 5)
        fronts.append(opt.front())
    assert torch.equal(fronts[0][0], fronts[1][0]) and torch.equal(fronts[0][1], fronts[1][1])
    assert not torch.equal(fronts[0][0], fronts[2][0])


def test_nonfinite_losses_are_counted_and_stay_off_the_front():
    _, ev, opt = _make()

    def poisoned(X, b):
        loss, grad = ev(X, b)
        loss = loss.clone()
        loss[::3] = float("nan")
        return loss, grad

    statuses = _run(opt, poisoned, 0, 4)
    assert statuses[0]["nonfinite"] == 3 * 2 and statuses[-1]["nonfinite"] == 3 * 5
    assert torch.isinf(opt.run_state["F"][:, 1]).any()
    assert torch.isfinite(opt.front()[1]).all()


def test_the_module_holds_the_knee_and_status_matches_gemonn_keys():
    model, ev, opt = _make()
    status = _run(opt, ev, 0, 3)[-1]
    X, F = opt.front()
    assert torch.equal(FlatParams(model).current(), X[knee(F)])
    _, ev2, gem = _make(GEMONN, compile=False)
    assert status.keys() == _run(gem, ev2, 0, 1)[0].keys()


@pytest.mark.parametrize("kw,key", [
    ({"pop_size": 7}, "pop_size"), ({"eta": -1.0}, "eta"), ({"crossover_prob": 1.5}, "crossover_prob"),
    ({"mutation_rate": 2.0}, "mutation_rate"), ({"reevaluate_parents": True}, "reevaluate_parents"),
    ({"init": "he"}, "init"),
])
def test_invalid_hyperparameters_name_the_key(kw, key):
    with pytest.raises(ValueError, match=f"optimizer.{key}"):
        PymooNSGA2(TiedAutoencoder(4, 2).parameters(), **kw)
