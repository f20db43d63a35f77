"""The trunk: one network trains alone, then every other branches from it by magnitude, at once or (gradual)
as the trunk, pruned along the cubic schedule, passes each one's density."""

import torch

from tests.ea.test_gemonn import GRADUAL, TRUNK, _make, _run


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


def _gradual_trunk_started(**options):
    """A gradual trunk's optimizer after its first generation: ``(ev, opt, run_state, trunk row, weight mask, each
    row's initial weight count, all weights, the sparsest count)``."""
    _, ev, opt = _make(**GRADUAL, **options)
    st = opt.run_state
    _run(opt, ev, 0, 1)
    weights = opt.layout.is_weight()
    initial = (st["X"][:, weights] != 0).sum(dim=1)
    return ev, opt, st, int(st["trunk_row"]), weights, initial, int(weights.sum()), int(initial.min())


def test_a_gradual_trunk_prunes_along_the_cubic_schedule_and_each_row_branches_as_it_passes_by():
    ev, opt, st, t, weights, initial, total, final = _gradual_trunk_started()
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


def test_rebased_branches_take_the_final_trunk_where_it_has_weights_and_keep_their_own_elsewhere():
    _, ev, plain = _make(**GRADUAL)
    _, ev_r, rebased = _make(**GRADUAL, trunk_rebase=True)
    _run(plain, ev, 0, 19)
    _run(rebased, ev_r, 0, 19)
    assert torch.equal(plain.run_state["X"], rebased.run_state["X"])  # the same run until the trunk's last generation
    _run(plain, ev, 19, 20)
    _run(rebased, ev_r, 19, 20)
    a, b = plain.run_state, rebased.run_state
    t = int(a["trunk_row"])
    core = a["X"][t] != 0
    assert torch.equal(a["X"][t], b["X"][t])
    for i in range(8):
        if i == t:
            continue
        assert torch.equal(b["X"][i] != 0, a["X"][i] != 0)  # the branch's own entries: its density unchanged
        assert torch.equal(b["X"][i][core], a["X"][t][core])  # the trunk's final weights ...
        assert torch.equal(b["M"][i][core], a["M"][t][core]) and torch.equal(b["V"][i][core], a["V"][t][core])
        assert torch.equal(b["X"][i][~core], a["X"][i][~core])  # ... and its own everywhere else
    assert not torch.equal(a["X"], b["X"])  # an early branch had drifted from the trunk's final weights


def test_scaled_rebase_extras_start_small_with_fresh_moments_and_the_trunks_weights_stay_whole():
    _, ev, kept = _make(**GRADUAL, trunk_rebase=True)
    _, ev_s, scaled = _make(**GRADUAL, trunk_rebase=True, rebase_extras=0.1)
    _run(kept, ev, 0, 20)
    _run(scaled, ev_s, 0, 20)
    a, b = kept.run_state, scaled.run_state
    t = int(a["trunk_row"])
    core = a["X"][t] != 0
    assert torch.equal(a["X"][t], b["X"][t]) and torch.equal(a["F"], b["F"])  # same trunk, same densities
    extras = 0
    for i in range(8):
        if i == t:
            continue
        own = (a["X"][i] != 0) & ~core
        extras += int(own.sum())
        assert torch.equal(b["X"][i] != 0, a["X"][i] != 0)  # nothing pruned by the scaling
        assert torch.equal(b["X"][i][core], a["X"][i][core])  # the trunk's final weights and moments, whole
        assert torch.equal(b["M"][i][core], a["M"][i][core]) and torch.equal(b["V"][i][core], a["V"][i][core])
        assert torch.allclose(b["X"][i][own], 0.1 * a["X"][i][own], rtol=1e-6, atol=0)  # a tenth of its own
        assert not b["M"][i][own].any() and not b["V"][i][own].any()  # whose moments restart
    assert extras > 0  # the early branches do hold weights of their own


def test_rebase_is_an_option_of_a_gradual_trunk_only():
    import pytest

    with pytest.raises(ValueError, match="^optimizer.trunk_rebase: "):
        _make(**{**GRADUAL, "trunk_prune": "oneshot"}, trunk_rebase=True)
    for bad in (0.0, 1.5, True):
        with pytest.raises(ValueError, match="^optimizer.rebase_extras: "):
            _make(**GRADUAL, trunk_rebase=True, rebase_extras=bad)
    with pytest.raises(ValueError, match="^optimizer.rebase_extras: .*only with trunk_rebase"):
        _make(**GRADUAL, rebase_extras=0.1)


def test_a_trunk_whose_pruning_ends_early_trains_on_at_the_sparsest_density_and_rebases_at_its_end():
    ev, opt, st, t, weights, initial, total, final = _gradual_trunk_started(trunk_rebase=True, trunk_prune_end=0.75)
    for g in range(1, 15):  # pruning from generation 5 to 15 of the 20, one mask update each
        _run(opt, ev, g, g + 1)
        done = g + 1
        expected = total if done <= 5 else final + round((total - final) * (1 - (done - 5) / 10) ** 3)
        assert int((st["X"][t, weights] != 0).sum()) == expected
    others = torch.arange(8) != t
    counts = (st["X"][:, weights] != 0).sum(dim=1)
    assert torch.equal(counts[others], initial[others]) and int(counts[t]) == final  # every row has branched
    branched = st["X"].clone()
    _run(opt, ev, 15, 19)  # the trunk trains on alone at the sparsest density; the branches wait
    assert torch.equal(st["X"][others], branched[others])
    assert torch.equal(st["X"][t] != 0, branched[t] != 0) and not torch.equal(st["X"][t], branched[t])
    _run(opt, ev, 19, 20)  # the trunk's last generation: every branch takes its final weights
    core = st["X"][t] != 0
    for i in range(8):
        if i != t:
            assert torch.equal(st["X"][i][core], st["X"][t][core])
            assert torch.equal(st["X"][i] != 0, branched[i] != 0)
    assert st["evaluations"] == 20


def test_the_pruning_end_is_a_fraction_of_a_gradual_trunk_after_its_start():
    import pytest

    for bad in (0.25, 0.1, 1.5, True):
        with pytest.raises(ValueError, match="^optimizer.trunk_prune_end: "):
            _make(**GRADUAL, trunk_prune_end=bad)
    with pytest.raises(ValueError, match="^optimizer.trunk_prune_end: .*only with trunk_prune: gradual"):
        _make(**{**GRADUAL, "trunk_prune": "oneshot"}, trunk_prune_end=0.75)


def test_the_schedule_spans_one_mask_update_at_least_and_ends_with_the_trunk_at_a_share_of_one():
    from ggevo.ea.operators.trunk import schedule_span

    assert schedule_span(8000, 0.25) == (2000, 8000)
    assert schedule_span(8000, 0.25, 0.75) == (2000, 6000)
    assert schedule_span(2, 0.6, 0.7) == (1, 2)  # both shares round to generation 1: one update still
