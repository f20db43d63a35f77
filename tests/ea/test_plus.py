"""The beyond-the-paper switches of ``optimizer=gemonn_plus``: each one's defining property."""

import io

import pytest
import torch

from ggevo.ea.compiling import compile_available, row_density
from ggevo.ea.flat import ParamLayout
from ggevo.ea.init import initial_population
from ggevo.ea.operators.lamarck import Moments, inherit, local_search, masked_adam_step
from ggevo.ea.operators.magnitude_prune import magnitude_prune_
from ggevo.ea.operators.zero_mutation import zero_mutation_
from ggevo.ea.selection import floored, survival
from tests.ea.test_gemonn import _batch, _make, _run

PLUS = dict(exempt_biases=True, min_density=0.05, mutation="magnitude", prune_probability=0.5,
            prune_fraction=0.2, crossover_rate=0.3, local_search_lr=0.01, reevaluate_parents=False)


def test_lamarckian_step_holds_zeros_and_moves_the_rest_down_the_gradient():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(4, 50, generator=g) * (torch.rand(4, 50, generator=g) < 0.5)
    G = torch.randn(4, 50, generator=g)
    Xn, M, V, T = masked_adam_step(X, G, *Moments.zeros(X), lr=0.01)
    assert torch.equal(Xn == 0, X == 0)
    live = X != 0
    # Adam's first step moves each live entry by lr against the sign of its gradient
    assert torch.allclose((Xn - X)[live], -0.01 * G.sign()[live], atol=1e-6)
    assert torch.equal(M == 0, ~live | (G == 0)) and torch.equal(T, torch.ones(4))


def test_lamarckian_step_leaves_inactive_rows_alone():
    X = torch.ones(3, 5)
    active = torch.tensor([True, False, True])
    Xn, M, V, T = masked_adam_step(X, torch.ones(3, 5), *Moments.zeros(X), lr=0.1, active=active)
    assert torch.equal(Xn[1], X[1]) and not torch.equal(Xn[0], X[0])
    assert T.tolist() == [1.0, 0.0, 1.0] and M[1].abs().sum() == 0


def test_children_inherit_the_moments_of_the_parent_in_whose_place_they_stand():
    X = torch.arange(1.0, 13.0).view(3, 4)
    moments = Moments(X * 10, X * 100, torch.tensor([1.0, 2.0, 3.0]))
    children = torch.ones(2, 4)
    children[0, 1] = 0
    got = inherit(moments, torch.tensor([2, 0]), children)
    assert got.T.tolist() == [3.0, 1.0]
    assert got.M[0].tolist() == [90.0, 0.0, 110.0, 120.0] and torch.equal(got.M[1], moments.M[0])
    assert torch.equal(inherit(moments, torch.tensor([2, 0]), children, enabled=False).M, torch.zeros(2, 4))


def test_geometric_grading_spans_min_density_to_one_and_spares_exempt_entries():
    layout = ParamLayout([torch.Size([200, 300]), torch.Size([200])])
    exempt = ~layout.is_weight()
    X = initial_population(layout, 5, min_density=0.01, exempt=exempt, generator=torch.Generator().manual_seed(0))
    density = (X[:, :60000] != 0).float().mean(dim=1)
    assert torch.allclose(density, torch.tensor([0.01, 0.01**0.75, 0.1, 0.01**0.25, 1.0]), rtol=0.1)
    assert bool((X[:, 60000:] != 0).all())


def test_magnitude_pruning_drops_the_smallest_weights_only():
    X = torch.tensor([[0.5, -0.1, 0.0, 0.3, -0.9, 0.2, 0.05, 1.0, 0.4, -0.6, 7.0]])
    prunable = torch.ones(11, dtype=torch.bool)
    prunable[10] = False
    Y = magnitude_prune_(X.clone(), probability=1.0, fraction=0.3, prunable=prunable,
                         generator=torch.Generator().manual_seed(0))
    # 9 live prunable entries, 30% -> the 2 smallest (0.05 and -0.1) go; the exempt 7.0 stays
    assert torch.equal(Y != 0, (X != 0) & (X.abs() > 0.1))


def test_zero_mutation_touches_only_the_columns_given():
    X = torch.ones(50, 20)
    cols = torch.arange(10)
    zero_mutation_(X, rate=0.5, generator=torch.Generator().manual_seed(0), columns=cols)
    assert bool((X[:, 10:] == 1).all()) and bool((X[:, :10] == 0).any())


def _bias_columns(opt) -> torch.Tensor:
    return ~opt.layout.is_weight()


def test_exempt_biases_are_never_zeroed_through_a_run():
    for mutation in ("magnitude", "zero"):
        _, ev, opt = _make(**(PLUS | {"mutation": mutation, "mutation_rate": 0.3}))
        for t in range(6):
            _run(opt, ev, t, t + 1)
            assert bool((opt.run_state["X"][:, _bias_columns(opt)] != 0).all())
        # the weights did get sparser
        assert float((opt.run_state["X"][:, ~_bias_columns(opt)] == 0).float().mean()) > 0.2


def test_moments_travel_with_their_individual_through_selection():
    _, ev, opt = _make(**PLUS)
    _run(opt, ev, 0, 3)
    st = opt.run_state
    before = {k: st[k].clone() for k in ("X", "M", "V", "T")}
    _run(opt, ev, 3, 4)
    after = opt.run_state
    kept = (after["X"] == before["X"]).all(dim=1)
    assert kept.any() and (~kept).any()
    for k in ("M", "V", "T"):  # survivors keep theirs, untouched
        assert torch.equal(after[k][kept], before[k][kept])
    # a newborn's step count is one more than some parent's; its moments vanish where it is zero
    assert all(float(t) - 1 in before["T"].tolist() for t in after["T"][~kept])
    assert bool((after["M"][after["X"] == 0] == 0).all())
    # one evaluation per child a generation, and each evaluated individual took a step
    assert opt.status()["evaluations"] == 8 * 5


def _resumes_exactly(options: dict, split: int, stop: int, resumed_seed: int = 0) -> None:
    """A run stopped after ``split`` generations and resumed from its state_dict (into an optimizer
    built with ``resumed_seed``) ends where the uninterrupted one does."""
    _, ev, full = _make(**options)
    _run(full, ev, 0, stop)
    _, ev2, first = _make(**options)
    _run(first, ev2, 0, split)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    _, ev3, resumed = _make(seed=resumed_seed, **options)
    resumed.load_state_dict(torch.load(buf, weights_only=False))
    _run(resumed, ev3, split, stop)
    for k in ("X", "F", "M", "V", "T"):
        assert torch.equal(resumed.run_state[k], full.run_state[k]), k


def test_plus_resumes_exactly_from_a_checkpoint_mid_run():
    _resumes_exactly(PLUS, split=3, stop=8, resumed_seed=7)  # the seed comes from the state


def test_fewer_offspring_cost_fewer_evaluations():
    _, ev, opt = _make(**(PLUS | {"offspring": 2}))
    assert _run(opt, ev, 0, 4)[-1]["evaluations"] == 8 + 4 * 2


@pytest.mark.parametrize("kw,key", [({"offspring": 3}, "offspring"), ({"crossover_rate": 1.5}, "crossover_rate"),
                                    ({"min_density": 0.0}, "min_density"), ({"prune_fraction": 1.0}, "prune_fraction"),
                                    ({"local_search_lr": -1.0}, "local_search_lr"),
                                    ({"density_floor": 1.0}, "density_floor"), ({"density_floor": 0}, "density_floor"),
                                    ({"lr_density_exponent": -0.5}, "lr_density_exponent")])
def test_invalid_plus_options_name_the_key(kw, key):
    with pytest.raises(ValueError, match=f"optimizer.{key}"):
        _make(**kw)


def test_lamarckian_steps_on_a_dense_individual_are_torch_adam():
    g = torch.Generator().manual_seed(1)
    w = torch.nn.Parameter(torch.randn(30, generator=g))
    X = w.detach().clone().unsqueeze(0)
    moments = Moments.zeros(X)
    adam = torch.optim.Adam([w], lr=0.05)
    for _ in range(20):
        target = torch.randn(30, generator=g)
        adam.zero_grad()
        ((w - target) ** 2).sum().backward()
        X, M, V, T = masked_adam_step(X, 2 * (X - target), *moments, lr=0.05)
        moments = Moments(M, V, T)
        adam.step()
    assert torch.allclose(X[0], w.detach(), atol=1e-5)


@pytest.mark.skipif(not compile_available(torch.device("cpu")), reason="torch.compile needs a C++ compiler")
def test_compiled_lamarckian_step_gives_the_eager_numbers_bit_for_bit():
    g = torch.Generator().manual_seed(3)
    n, dim = 7, 4099
    X = torch.randn(n, dim, generator=g)
    X[torch.rand(n, dim, generator=g) < 0.4] = 0
    G = 3 * torch.randn(n, dim, generator=g)
    M, V = 0.1 * torch.randn(n, dim, generator=g), 0.01 * torch.rand(n, dim, generator=g)
    T = torch.arange(n, dtype=torch.float32)
    active = torch.tensor([True, True, False, True, True, True, False])
    bounds = torch.full((dim,), -1.5), torch.full((dim,), 1.5)
    for lower, upper in (bounds, (None, None)):
        eager = masked_adam_step(X, G, M, V, T, lr=0.02, active=active, lower=lower, upper=upper)
        compiled = masked_adam_step(X, G, M, V, T, lr=0.02, active=active, lower=lower, upper=upper, compiled=True)
        for name, a, b in zip("XMVT", eager, compiled):
            assert torch.equal(a, b), name


TRUNK = dict(exempt_biases=True, min_density=0.05, mutation="magnitude", prune_probability=1.0,
             prune_fraction=0.3, crossover_rate=0.0, local_search_lr=0.01, offspring=2, trunk=5)


def test_the_trunk_trains_one_network_then_every_other_branches_from_it_by_magnitude():
    _, ev, opt = _make(**TRUNK)
    statuses = _run(opt, ev, 0, 4)
    st = opt.run_state
    assert [s["evaluations"] for s in statuses] == [1, 2, 3, 4]  # one network a generation
    initial = st["X"].clone()
    t = int(st["F"][:, 0].argmax())
    assert torch.isinf(st["F"][:, 1]).sum() == 7 and torch.isfinite(st["F"][t, 1])
    _run(opt, ev, 4, 5)  # the last trunk generation branches
    X, trunk = st["X"], st["X"][t]
    weights = opt.layout.is_weight()
    for i in range(8):
        if i == t:
            continue
        assert (X[i, ~weights] == trunk[~weights]).all()  # biases kept whole
        live = X[i] != 0
        assert (X[i][live] == trunk[live]).all()  # the trunk's own values, pruned
        assert int(live[weights].sum()) == int((initial[i, weights] != 0).sum())  # its initial density
        kept, dropped = X[i, weights].abs(), trunk[weights].abs()
        assert kept[live[weights]].min() >= dropped[~live[weights]].max()  # the largest magnitudes stay
        assert torch.equal(st["M"][i] != 0, live & (st["M"][t] != 0))  # moments follow, zero where pruned
    assert torch.isinf(st["F"][:, 1]).sum() == 7  # scored from the next generation on
    after = _run(opt, ev, 5, 6)[0]
    assert after["evaluations"] == 5 + 8 + 2 and torch.isfinite(st["F"][:, 1]).all()


def test_a_run_with_a_trunk_resumes_exactly_across_the_branching():
    _resumes_exactly(TRUNK, split=3, stop=9)


def test_the_trunk_needs_local_search_and_rescored_parents():
    for kw in (dict(trunk=3), dict(trunk=3, local_search_lr=0.01, reevaluate_parents=False), dict(trunk=-1)):
        with pytest.raises(ValueError, match="optimizer.trunk"):
            _make(**kw)


def test_a_density_floor_makes_every_sparser_network_count_as_at_the_floor():
    F = torch.tensor([[0.001, 0.5], [0.005, 0.3], [0.02, 0.2], [0.1, 0.1], [0.5, 0.05]])
    assert 0 in survival(F, 4).tolist()  # the sparsest is an extreme of the front: kept
    assert sorted(survival(floored(F, 0.01), 4).tolist()) == [1, 2, 3, 4]  # now dominated by row 1
    assert floored(F, None) is F and torch.equal(floored(F, 0.01)[:, 1], F[:, 1])


def test_survivors_are_chosen_on_floored_densities_and_keep_their_true_ones():
    floor = 0.3
    _, ev, opt = _make(**(TRUNK | {"trunk": 0, "density_floor": floor}))
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def closure(b):
        def evaluate(X):
            loss, grad = ev(X, b)
            calls.append((row_density(X), loss.detach().clone()))
            return loss, grad
        return evaluate

    changed = 0
    for t in range(12):
        calls.clear()
        opt.step(lambda b=_batch(t): closure(b))
        if t == 0:
            continue
        (dp, lp), (dc, lc) = calls  # the parents re-scored, then the children
        F = torch.cat((torch.stack((dp, lp), 1), torch.stack((dc, lc), 1)))
        chosen = sorted(map(tuple, F[survival(floored(F, floor), 8)].tolist()))
        assert sorted(map(tuple, opt.run_state["F"].tolist())) == chosen  # true densities, floored choice
        changed += chosen != sorted(map(tuple, F[survival(F, 8)].tolist()))
    assert changed  # the floor changed who survived at least once


def test_a_run_with_a_density_floor_and_density_scaled_steps_resumes_exactly():
    _resumes_exactly(TRUNK | {"density_floor": 0.3, "lr_density_exponent": 0.5}, split=4, stop=9)


def test_a_step_size_per_row_is_each_rows_own_step():
    g = torch.Generator().manual_seed(5)
    X = torch.randn(4, 257, generator=g)
    X[torch.rand(4, 257, generator=g) < 0.5] = 0
    G, M, V = torch.randn(4, 257, generator=g), 0.1 * torch.randn(4, 257, generator=g), torch.rand(4, 257, generator=g)
    T = torch.tensor([0.0, 3.0, 7.0, 1.0])
    lr = torch.tensor([0.001, 0.01, 0.02, 0.3])
    together = masked_adam_step(X, G, M, V, T, lr=lr)
    for i in range(4):
        alone = masked_adam_step(X[i:i + 1], G[i:i + 1], M[i:i + 1], V[i:i + 1], T[i:i + 1], lr=float(lr[i]))
        for a, b in zip(together, alone):
            assert torch.equal(a[i:i + 1], b)
    with pytest.raises(ValueError, match="per row"):
        masked_adam_step(X, G, M, V, T, lr=lr[:3])


def test_sparser_networks_take_larger_steps_by_the_density_exponent():
    _, ev, opt = _make(**(TRUNK | {"trunk": 0, "lr_density_exponent": 0.5}))
    _run(opt, ev, 0, 3)
    st = opt.run_state
    X, F, G, moments = st["X"], st["F"], st["G"], Moments(st["M"], st["V"], st["T"])
    stepped, _ = opt._local_search(X, F, G, moments)
    for i in range(X.shape[0]):
        lr = 0.01 * float(F[i, 0]) ** -0.5
        alone, _ = local_search(X[i:i + 1], G[i:i + 1], moments.rows(torch.tensor([i])),
                                lr=torch.tensor([lr]), active=torch.isfinite(F[i:i + 1, 1]))
        assert torch.allclose(stepped[i], alone[0], rtol=0, atol=1e-6)
    assert F[:, 0].min() < 0.5 < F[:, 0].max()  # the population spans densities


GRADUAL = TRUNK | dict(trunk=20, trunk_prune="gradual", trunk_prune_start=0.25)


def test_a_gradual_trunk_prunes_along_the_cubic_schedule_and_each_row_branches_as_it_passes_by():
    _, ev, opt = _make(**GRADUAL)
    st = opt.run_state
    _run(opt, ev, 0, 1)
    t = int(st["trunk_row"])
    weights = opt.layout.is_weight()
    initial = (st["X"][:, weights] != 0).sum(dim=1)
    total, final = int(weights.sum()), int(initial.min())
    seen = []
    for g in range(1, 20):
        before = st["X"].clone()
        _run(opt, ev, g, g + 1)
        done = g + 1
        count = int((st["X"][t, weights] != 0).sum())
        if done > 5:  # pruning starts after a quarter of the 20 generations, one mask update each
            expected = final + round((total - final) * (1 - (done - 5) / 15) ** 3)
            assert count == expected
        else:
            assert count == total
        for i in range(8):
            if i == t or torch.equal(st["X"][i], before[i]):
                continue
            seen.append(i)  # branched now: the trunk as it stood before this update, pruned to row i's density
            live, trunk = st["X"][i] != 0, st["X"][t] != 0
            assert int(live[weights].sum()) == int(initial[i])
            assert int((before[t, weights] != 0).sum()) >= int(initial[i])
            assert not (trunk & ~live).any()  # as dense as the trunk after the update, or denser ...
            assert (st["X"][i][trunk] == st["X"][t][trunk]).all()  # ... and the same network
            assert torch.isinf(st["F"][i, 1])
    assert sorted(seen) == sorted(set(range(8)) - {t})  # every other row branched, once
    assert count == final and st["evaluations"] == 20  # the trunk ends at the sparsest density, one network a generation


def test_a_run_with_a_gradual_trunk_resumes_exactly():
    _resumes_exactly(GRADUAL, split=11, stop=24)


def test_trunk_prune_is_checked():
    for kw in (dict(trunk_prune="cubic"), dict(trunk_prune_start=1.0)):
        with pytest.raises(ValueError, match="optimizer.trunk_prune"):
            _make(**(GRADUAL | kw))


def test_magnitude_pruning_stops_at_its_floor():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(3, 100, generator=g)
    X[1, 50:] = 0  # 50 nonzero
    X[2, 20:] = 0  # 20 nonzero: already below the floor
    prunable = torch.arange(100) >= 10  # the first 10 entries are never pruned, and count
    magnitude_prune_(X, probability=1.0, fraction=0.5, prunable=prunable, generator=g, min_nonzero=40)
    assert (X != 0).sum(dim=1).tolist() == [55, 40, 20]  # half of the 90 prunable; down to the floor; none
    assert bool((X[:, :10] != 0).all())


def test_with_a_prune_floor_no_child_is_sparser_than_it():
    _, ev, opt = _make(**(TRUNK | dict(trunk=0, prune_floor=0.3, min_density=0.3, density_floor=0.3)))
    _run(opt, ev, 0, 12)
    density = row_density(opt.run_state["X"])
    assert float(density.min()) >= 0.3 - 1e-6 and float(density.min()) < 0.35  # pruned down to it, not below


def test_without_duplicates_the_floor_does_not_fill_with_copies():
    """At a prune floor every child of a parent at the floor is its copy; NSGA-II alone lets copies of the
    best sparse network crowd the denser ones out, eliminate_duplicates keeps one of each point."""
    kw = TRUNK | dict(trunk=0, prune_floor=0.3, min_density=0.3, density_floor=0.3)
    distinct = {}
    for flag in (False, True):
        _, ev, opt = _make(**(kw | dict(eliminate_duplicates=flag)))
        _run(opt, ev, 0, 40)
        F = opt.run_state["F"]
        distinct[flag] = len(torch.unique(F, dim=0))
        if flag:
            assert distinct[flag] == len(F)  # no two networks at one point
    assert distinct[True] > distinct[False]
