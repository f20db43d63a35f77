"""The density-budget table of a method comparison: each method's best full-train loss at or below
each density, seed by seed, and GEMONN+'s ratio to magnitude pruning (issue: fronts worth deploying)."""

from __future__ import annotations

import statistics

from mlflow.entities import Run

BUDGETS = (0.02, 0.05, 0.1, 0.25, 0.5)
PLUS, BASELINE = "optimizer=gemonn_plus", "optimizer=imp"


def _by_seed(runs: list[Run], budget: float) -> dict[str, float]:
    key = f"final/train_loss_at_density_{budget}"
    return {r.data.params.get("seed", "?"): r.data.metrics[key] for r in runs if key in r.data.metrics}


def budget_table(groups: dict[str, list[Run]], title: str) -> str:
    """Markdown: one row per density budget; per method the mean over seeds (— where no front member is
    that sparse); where both GEMONN+ and magnitude pruning ran, the ratio of their means and each
    seed's ratio (below 1: GEMONN+ reconstructs better)."""
    names = list(groups)
    ratio = PLUS in groups and BASELINE in groups
    head = ["density ≤", *names] + (["GEMONN+ / IMP (mean)", "per seed"] if ratio else [])
    lines = [f"## {title}: best full-train loss at each density budget", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in BUDGETS:
        values = {n: _by_seed(groups[n], b) for n in names}
        cells = [str(b)] + [f"{statistics.fmean(v.values()):.4g}" if v else "—" for v in values.values()]
        if ratio:
            plus, base = values[PLUS], values[BASELINE]
            both = sorted(set(plus) & set(base))
            cells.append(f"{statistics.fmean(plus.values()) / statistics.fmean(base.values()):.3f}"
                         if plus and base else "—")
            cells.append(", ".join(f"seed {s}: {plus[s] / base[s]:.2f}" for s in both) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
