"""GEMONN's options beyond the paper: each bad value one error naming its key."""

import pytest

from tests.ea.test_gemonn import GRADUAL, _make


@pytest.mark.parametrize("kw,key", [({"offspring": 3}, "offspring"), ({"crossover_prob": 1.5}, "crossover_prob"),
                                    ({"min_density": 0.0}, "min_density"), ({"prune_fraction": 1.0}, "prune_fraction"),
                                    ({"local_search_lr": -1.0}, "local_search_lr"),
                                    ({"density_floor": 1.0}, "density_floor"), ({"density_floor": 0}, "density_floor"),
                                    ({"lr_density_exponent": -0.5}, "lr_density_exponent"),
                                    ({"band_edges": [0.1]}, "band_edges"), ({"band_edges": [0.1, 0.05]}, "band_edges"),
                                    ({"band_edges": [0.0, 2.0]}, "band_edges"),
                                    ({"lr_final": 0.1}, "lr_final"),  # no local search to schedule
                                    ({"local_search_lr": 0.01, "lr_final": 0.0, "generations": 10}, "lr_final"),
                                    ({"local_search_lr": 0.01, "lr_final": 1.5, "generations": 10}, "lr_final"),
                                    ({"generations": 0}, "generations"),
                                    ({"lr_schedule": "cosine"}, "lr_schedule"),
                                    ({"local_search_lr": 0.01, "trunk": 5, "evaluations": 5}, "evaluations"),
                                    ({"weight_decay": 0.1}, "weight_decay"),  # no local search to decay
                                    ({"local_search_lr": 0.01, "weight_decay": -0.1}, "weight_decay")])
def test_invalid_plus_options_name_the_key(kw, key):
    with pytest.raises(ValueError, match=f"optimizer.{key}"):
        _make(**kw)


def test_the_trunk_needs_local_search_and_rescored_parents():
    for kw in (dict(trunk=3), dict(trunk=3, local_search_lr=0.01, reevaluate_parents=False), dict(trunk=-1)):
        with pytest.raises(ValueError, match="optimizer.trunk"):
            _make(**kw)


def test_trunk_prune_is_checked():
    for kw in (dict(trunk_prune="cubic"), dict(trunk_prune_start=1.0)):
        with pytest.raises(ValueError, match="optimizer.trunk_prune"):
            _make(**(GRADUAL | kw))


def test_a_step_schedule_needs_the_runs_length():
    _, ev, opt = _make(local_search_lr=0.01, lr_final=0.1)  # generations unset: ggevo-train sets it
    with pytest.raises(ValueError, match="optimizer.lr_final"):
        opt._lr_factor()
    _, ev, opt = _make(local_search_lr=0.01, lr_final=0.1, lr_schedule="after_trunk")  # and evaluations, the budget
    with pytest.raises(ValueError, match="optimizer.lr_schedule"):
        opt._lr_factor()
