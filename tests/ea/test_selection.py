"""Ranking, crowding, survival, tournament, knee and hypervolume on hand-computed fronts."""

import math

import pytest
import torch

from ggevo.ea.front import best_under_density, first_front, hypervolume, knee, within
from ggevo.ea.selection import band_elites, banded_survival, binary_tournament, floored, rank_and_crowding, survival

F5 = torch.tensor([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0], [0.6, 0.6], [1.0, 1.0]])


def test_ranks_and_crowding_by_hand():
    rank, crowding = rank_and_crowding(F5)
    assert rank.tolist() == [0, 0, 0, 1, 2]
    # middle of the first front: neighbours span the whole range in both objectives -> (1 + 1) / 2
    assert crowding[1] == 1.0
    assert math.isinf(crowding[0]) and math.isinf(crowding[2])


def test_crowding_of_a_duplicate():
    F = torch.tensor([[0.0, 1.0], [0.5, 0.5], [0.5, 0.5], [1.0, 0.0]])
    _, crowding = rank_and_crowding(F)
    # each copy sees the other at distance 0 on one side and an extreme at 0.5 on the other
    assert crowding[1:3].tolist() == [0.5, 0.5]


def test_survival_keeps_whole_fronts_then_the_most_crowded_out():
    F = torch.tensor([[0.0, 1.0], [0.2, 0.6], [0.25, 0.55], [0.5, 0.3], [1.0, 0.0], [0.6, 0.6], [1.0, 1.0]])
    keep = survival(F, 4)
    # first front has 5 members; the extremes (inf) stay, then the larger crowding among 1, 2, 3
    assert sorted(keep.tolist()) == [0, 1, 3, 4]
    assert sorted(survival(F, 6).tolist()) == [0, 1, 2, 3, 4, 5]


def test_copies_survive_only_into_the_places_distinct_rows_leave():
    # rows 0-2 are one point (a network and two copies), rows 3-4 are dominated by it, row 5 is distinct
    F = torch.tensor([[0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [0.5, 0.5], [0.6, 0.6], [0.05, 0.9]])
    assert sorted(survival(F, 3).tolist()) == [0, 2, 5]  # plain NSGA-II: two copies of one point stay
    assert sorted(survival(F, 3, eliminate_duplicates=True).tolist()) == [0, 3, 5]  # the first copy only
    assert sorted(survival(F, 5, eliminate_duplicates=True).tolist()) == [0, 1, 3, 4, 5]  # the next copy fills
    assert sorted(survival(F[3:], 2, eliminate_duplicates=True).tolist()) == sorted(survival(F[3:], 2).tolist())


def test_nonfinite_losses_rank_last():
    F = torch.tensor([[0.1, float("inf")], [0.5, 0.5], [1.0, 0.2]])
    rank, _ = rank_and_crowding(F)
    assert rank[0] >= rank[1]
    assert first_front(F).tolist() == [1, 2]


def test_tournament_prefers_lower_rank_then_crowding():
    g = torch.Generator().manual_seed(0)
    rank = torch.tensor([0, 1])
    crowding = torch.tensor([0.1, 5.0])
    winners = binary_tournament(rank, crowding, 2000, generator=g)
    # index 1 wins only when drawn twice (probability 1/4)
    assert abs(float((winners == 1).float().mean()) - 0.25) < 0.04
    same_rank = binary_tournament(torch.tensor([0, 0]), crowding, 2000, generator=g)
    assert abs(float((same_rank == 0).float().mean()) - 0.25) < 0.04


def test_hypervolume_by_hand():
    F = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert hypervolume(F, (2.0, 2.0)) == 3.0
    # a point beyond the reference point adds nothing
    assert hypervolume(torch.cat((F, torch.tensor([[3.0, 0.0]]))), (2.0, 2.0)) == 3.0


def test_knee_and_density_budget():
    F = torch.tensor([[0.0, 1.0], [0.1, 0.2], [0.5, 0.1], [1.0, 0.0]])
    assert knee(F) == 1
    assert knee(F[:2]) == 1
    assert knee(F[2:]) == 1
    assert best_under_density(F, 0.5) == 2
    assert best_under_density(F, -0.1) is None


def test_one_budget_rule_for_every_consumer():
    """A member pruned to "0.02" of 393,284 weights (0.0200008) is within the budget 0.02 for --select, the
    final metrics, the test metrics and the tables alike; one at 0.0201 is not."""
    from ggevo.pipeline.report.budget_table import rows_within
    from ggevo.pipeline.score.artifacts import choose_member, final_metrics

    F = torch.tensor([[0.0200008, 0.3], [0.0201, 0.1], [1.0, 0.05]], dtype=torch.float64)
    assert within(0.0200008, 0.02) and not within(0.0201, 0.02)
    assert best_under_density(F, 0.02) == 0
    table = {"density": F[:, 0].tolist(), "train_loss": F[:, 1].tolist(), "knee": [0, 0, 1]}
    assert choose_member(table, "density<=0.02") == 0
    assert rows_within(table, 0.02) == [0]
    metrics = final_metrics({k: torch.tensor(v, dtype=torch.float64) for k, v in table.items()}
                            | {"val_loss": F[:, 1], "minibatch_loss": F[:, 1]}, (1.1, 1.0))
    assert metrics["final/train_loss_at_density_0.02"] == pytest.approx(0.3)


def test_a_density_floor_makes_every_sparser_network_count_as_at_the_floor():
    F = torch.tensor([[0.001, 0.5], [0.005, 0.3], [0.02, 0.2], [0.1, 0.1], [0.5, 0.05]])
    assert 0 in survival(F, 4).tolist()  # the sparsest is an extreme of the front: kept
    assert sorted(survival(floored(F, 0.01), 4).tolist()) == [1, 2, 3, 4]  # now dominated by row 1
    assert floored(F, None) is F and torch.equal(floored(F, 0.01)[:, 1], F[:, 1])


def test_the_best_of_each_density_band_survives_even_when_dominated():
    edges = [0.01, 0.03, 0.07, 0.15, 0.35, 0.7]
    # the sparse rows 0-3 dominate every denser one; NSGA-II alone keeps only them
    F = torch.tensor([[0.02, 0.10], [0.02, 0.11], [0.025, 0.12], [0.028, 0.13],
                      [0.05, 0.40], [0.06, 0.30], [0.10, 0.50], [0.20, 0.45], [0.50, 0.60], [0.9, 0.05 + 1]])
    assert sorted(survival(F, 4).tolist()) == [0, 1, 2, 3]
    # bands: [0.01,0.03) -> row 0; [0.03,0.07) -> row 5 (lower loss than 4); 6; 7; 8; 0.9 is in no band
    assert band_elites(F, edges).tolist() == [0, 5, 6, 7, 8]
    keep = banded_survival(F, 7, edges)
    assert keep[:5].tolist() == [0, 5, 6, 7, 8]
    assert sorted(keep[5:].tolist()) == [1, 2]  # NSGA-II fills the rest from the others
    assert torch.equal(banded_survival(F, 7, None), survival(F, 7))
    # an empty band reserves nothing; a non-finite loss is never a band's best
    G = torch.tensor([[0.02, 0.1], [0.5, float("inf")], [0.6, 0.2]])
    assert band_elites(G, edges).tolist() == [0, 2]
    assert len(set(banded_survival(G, 2, edges).tolist())) == 2
