"""The density-budget table: best loss at or below each density, and GEMONN+'s ratio to pruning."""

from ggevo.pipeline.report.budget_table import best_at, budget_table


def test_best_at_takes_the_lowest_loss_at_or_just_above_rounding_of_each_budget():
    front = {"density": [0.0200008, 0.04, 0.3, 1.0], "train_loss": [0.05, 0.03, 0.02, 0.01]}
    assert best_at(front, 0.02) == 0.05  # a pruning stage of "0.02" counts at 0.02
    assert best_at(front, 0.05) == 0.03 and best_at(front, 0.25) == 0.03 and best_at(front, 0.5) == 0.02
    assert best_at({"density": [0.5], "train_loss": [0.1]}, 0.1) is None


def test_ratio_column_compares_gemonn_plus_with_pruning_seed_by_seed():
    plus = {"0": {"density": [0.01, 0.3], "train_loss": [0.02, 0.01]},
            "1": {"density": [0.01, 0.3], "train_loss": [0.04, 0.01]}}
    imp = {"0": {"density": [0.02, 0.5], "train_loss": [0.04, 0.02]},
           "1": {"density": [0.02, 0.5], "train_loss": [0.04, 0.02]}}
    text = budget_table({"optimizer=gemonn_plus": plus, "optimizer=imp": imp}, "t")
    row = next(line for line in text.splitlines() if line.startswith("| 0.02 |"))
    assert "| 0.03 | 0.04 | 0.750 | seed 0: 0.50, seed 1: 1.00 |" in row
    row5 = next(line for line in text.splitlines() if line.startswith("| 0.5 |"))
    assert "| 0.01 | 0.02 | 0.500 |" in row5
    trunk = budget_table({"optimizer=gemonn_plus_trunk": plus, "optimizer=imp": imp}, "t")
    assert "| 0.03 | 0.04 | 0.750 | seed 0: 0.50, seed 1: 1.00 |" in trunk  # any gemonn_plus_… preset
    assert "gemonn_plus / imp (mean)" in text and "gemonn_plus_trunk / imp (mean)" in trunk  # named
    assert "/ imp" not in budget_table({"optimizer=gemonn_plusx": plus, "optimizer=imp": imp}, "t")
