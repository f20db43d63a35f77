"""The sparse end of a GEMONN+ front: a prune floor that no child passes and that a network at it sits within as a
density budget, copies at the floor (``eliminate_duplicates``, ``floor_breeds``), and biases exempt from pruning by
their share of the sparsest network (``exempt_biases: auto``). The tiny problem and helpers are test_gemonn's."""

import pytest
import torch

from ggevo.ea.compiling import row_density
from ggevo.ea.front import within
from tests.ea.test_gemonn import PLUS, TRUNK, _bias_columns, _make, _run


def test_with_a_prune_floor_no_child_is_sparser_than_it_and_one_at_it_is_within_it():
    """The floor's count rounds up, unless a network holding it would be above the floor as a density budget: on
    this network of 146 entries 0.3 is 43.8 of them, and 44 (density 0.3014) is not within a budget of 0.3."""
    _, ev, opt = _make(**(TRUNK | dict(trunk=0, prune_floor=0.3, min_density=0.3, density_floor=0.3)))
    assert opt.layout.dim == 146 and opt._min_nonzero() == 43
    _run(opt, ev, 0, 12)
    count = (opt.run_state["X"] != 0).sum(dim=1)
    assert int(count.min()) == 43 and within(float(row_density(opt.run_state["X"]).min()), 0.3)  # at it, not below
    _, _, big = _make(**(TRUNK | dict(trunk=0, prune_floor=0.02, min_density=0.02)))
    big.layout.dim = 393_284  # the bench autoencoder's: 7,865.68 rounds up to 7,866, within the budget's tolerance
    assert big._min_nonzero() == 7866


def test_biases_exempt_by_their_share_of_the_sparsest_network():
    """``exempt_biases: auto``: exempt while the biases are at most 2/3 of a network's entries at the prune floor
    (else at ``min_density``); on this network 26 of 146 entries are biases."""
    for floor, exempt in ((0.3, True), (0.27, True), (0.25, False), (0.1, False)):  # shares 0.59, 0.66, 0.71, 1.78
        _, ev, opt = _make(**(PLUS | dict(exempt_biases="auto", prune_floor=floor)))
        assert opt.hp["exempt_biases"] is exempt, floor
        _run(opt, ev, 0, 3)
        biases = opt.run_state["X"][:, _bias_columns(opt)]
        assert bool((biases != 0).all()) if exempt else bool((biases == 0).any())
    assert _make(**(PLUS | dict(exempt_biases="auto")))[2].hp["exempt_biases"] is False  # min_density 0.05
    with pytest.raises(ValueError, match="optimizer.exempt_biases: must be true, false or auto"):
        _make(**(PLUS | dict(exempt_biases="sometimes")))


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


def test_without_floor_breeding_no_parent_at_the_floor_breeds():
    """A child of a parent at the prune floor is its copy; with floor_breeds off every parent is drawn from
    the networks above the floor, so no pair holds one at it (while one above it is left)."""
    kw = TRUNK | dict(trunk=0, prune_floor=0.3, min_density=0.3, density_floor=0.3)
    at_floor_bred = {}
    for flag in (True, False):
        _, ev, opt = _make(**(kw | dict(floor_breeds=flag)))
        seen, original = [], opt._parents

        def spy(F, m, original=original, seen=seen):
            pairs = original(F, m)
            above = torch.round(F[:, 0].double() * opt.layout.dim) > opt._min_nonzero()
            if above.any():
                seen.append(int((~above[pairs]).sum()))
            return pairs

        opt._parents = spy
        _run(opt, ev, 0, 40)
        at_floor_bred[flag] = sum(seen)
        assert seen  # some generation had a network above the floor
    assert at_floor_bred[False] == 0 and at_floor_bred[True] > 0
