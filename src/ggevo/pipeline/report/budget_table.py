"""The density-budget table of a method comparison: each method's best full-train loss at or below
each density, seed by seed, and GEMONN+'s ratio to magnitude pruning (issue: fronts worth deploying)."""

from __future__ import annotations

import statistics

from ggevo.ea.front import BUDGETS, within

PLUS, BASELINE = "optimizer=gemonn_plus", "optimizer=imp"

Front = dict[str, list[float]]


def rows_within(front: Front, budget: float) -> list[int]:
    """The rows of a front within the density ``budget`` (``ea.front.within``)."""
    return [i for i, d in enumerate(front["density"]) if within(d, budget)]


def best_at(front: Front, budget: float) -> float | None:
    """Lowest train loss of a front's members of density within ``budget``, or None."""
    losses = [front["train_loss"][i] for i in rows_within(front, budget)]
    return min(losses) if losses else None


def budget_table(fronts: dict[str, dict[str, Front]], title: str) -> str:
    """Markdown: one row per density budget; per method (label → seed → its front) the mean over seeds
    (— where no member is that sparse); where both GEMONN+ (or a ``gemonn_plus_…`` preset) and
    magnitude pruning ran, the ratio of
    their means and each seed's ratio (below 1: GEMONN+ reconstructs better)."""
    names = list(fronts)
    plus_name = next((n for n in names if n == PLUS or n.startswith(PLUS + "_")), None)  # gemonn_plus, gemonn_plus_trunk
    ratio = plus_name is not None and BASELINE in fronts
    # the ratio's column names its preset (with both gemonn_plus and gemonn_plus_trunk, the first swept)
    head = ["density ≤", *names] + ([f"{plus_name.split('=')[-1]} / imp (mean)", "per seed"] if ratio else [])
    lines = [f"## {title}: best full-train loss at each density budget", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in BUDGETS:
        values = {n: {s: v for s, f in fronts[n].items() if (v := best_at(f, b)) is not None} for n in names}
        cells = [str(b)] + [f"{statistics.fmean(v.values()):.4g}" if v else "—" for v in values.values()]
        if ratio:
            plus, base = values[plus_name], values[BASELINE]
            both = sorted(set(plus) & set(base))
            cells.append(f"{statistics.fmean(plus.values()) / statistics.fmean(base.values()):.3f}"
                         if plus and base else "—")
            cells.append(", ".join(f"seed {s}: {plus[s] / base[s]:.2f}" for s in both) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
