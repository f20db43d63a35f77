"""GEMONN as a ``torch.optim.Optimizer``: one ``step`` is one NSGA-II generation (docs/ALGORITHM.md).

The whole run state (population ``X`` n×D, objectives ``F`` n×2 = (density, loss), gradients
``G`` n×D, counters and the generator's state) lives in ``self.state``, so
``state_dict()``/``load_state_dict()`` resume a run exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ggevo.compiling import maybe_compiled
from ggevo.ea.compiling import (
    replace_rows_,
    row_density,
    row_density_and_finite,
)
from ggevo.ea.front import count_within
from ggevo.ea.gemonn_options import auto_exempt, gemonn_options
from ggevo.ea.init import initial_population
from ggevo.ea.operators.crossover.sbx_kernel import run_kernel
from ggevo.ea.operators.lamarck import Moments, inherit, local_search
from ggevo.ea.operators.mutation.magnitude_prune import magnitude_prune_
from ggevo.ea.operators.mutation.polynomial_mutation import polynomial_mutation_
from ggevo.ea.operators.mutation.zero_mutation import zero_mutation_
from ggevo.ea.operators.trunk import branch_, prune_trunk_, record_due, schedule_span, trunk_record_due
from ggevo.ea.population import Closure, Evaluate, PopulationOptimizer, check_option
from ggevo.ea.selection import banded_survival, binary_tournament, floored, rank_and_crowding


def _last(evaluate: Evaluate) -> bool:
    """Whether ``evaluate`` scores the run's last generation (``lit.module.HeldOutScore.last``): a generation
    that takes its held-out score only when due takes it then, so the run ends on fresh scores."""
    return bool(getattr(evaluate, "last", False))


class GEMONN(PopulationOptimizer):
    """Gradient-guided multi-objective evolution of the parameters ``params`` (NSGA-II frame).

    ``step(closure)`` runs one generation. As with any torch optimizer, ``closure`` takes no
    arguments (Lightning calls it so); it returns ``evaluate``, where ``evaluate(X)`` gives the
    losses (n,) and gradients (n×D) of the rows of ``X`` on this generation's minibatch.

    Beyond the paper, options each off by default (so ``optimizer=gemonn`` stays the faithful
    method; ``optimizer=gemonn_plus`` turns them on): what each does is in ``ea.gemonn_options``.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        *,
        pop_size: int = 50,
        eta: float = 20.0,
        crossover: str = "grad_sbx",
        sparsity_preservation: float = 0.5,
        exchange: bool = True,
        mutation: str = "zero",
        mutation_eta: float = 20.0,
        mutation_rate: float | None = None,
        reevaluate_parents: bool = True,
        init: str = "xavier",
        graded_density: bool = True,
        weight_bound: float = 10.0,
        bias_bound: float = 20.0,
        hv_ref: tuple[float, float] = (1.0, 1.0),
        seed: int = 0,
        compile: bool | str = "auto",
        offspring: int | None = None,
        crossover_prob: float = 1.0,
        exempt_biases: bool | str = False,
        min_density: float | None = None,
        initial_densities: list[float] | None = None,
        exact_densities: bool = False,
        prune_probability: float = 0.5,
        prune_fraction: float = 0.1,
        local_search_lr: float = 0.0,
        inherit_moments: bool = True,
        warmup: int = 0,
        warmup_records: int | None = None,
        trunk: int = 0,
        density_floor: float | None = None,
        lr_density_exponent: float = 0.0,
        trunk_prune: str = "oneshot",
        trunk_prune_start: float = 0.25,
        trunk_prune_end: float = 1.0,
        trunk_rebase: bool = False,
        rebase_extras: float = 1.0,
        prune_floor: float | None = None,
        eliminate_duplicates: bool = False,
        floor_breeds: bool = True,
        band_edges: list[float] | None = None,
        lr_final: float | None = None,
        lr_schedule: str = "run",
        generations: int | None = None,
        evaluations: int | None = None,
        weight_decay: float = 0.0,
    ):
        options = {k: v for k, v in locals().items() if k not in ("self", "params", "__class__")}
        super().__init__(params, gemonn_options(options), compile=compile)
        self._mask_cache: tuple | None = None
        if self.hp["exempt_biases"] == "auto":
            self.hp["exempt_biases"] = auto_exempt(self.layout, self.hp["prune_floor"] or self.hp["min_density"])

    # ----------------------------------------------------------------- state
    # run_state: X, F, G, generation, evaluations, nonfinite, rng (rank and crowding are
    # recomputed from F where needed); with local search also the moments M, V (n×D) and steps T (n,)
    def state_dict(self) -> dict:
        """``Optimizer.state_dict``, without the gradients ``G`` where every generation scores its parents
        afresh (``reevaluate_parents``, every preset's): a resumed run's first generation replaces them before
        anything reads them, and they are a quarter of a GEMONN+ checkpoint (16 of its 64 MB at H=500) and half of
        a faithful one (79 of 159 MB at the paper's size). ``load_state_dict`` puts zeros in their place."""
        sd = super().state_dict()
        if self.hp["reevaluate_parents"]:
            sd["state"] = {k: {key: v for key, v in st.items() if key != "G"} for k, st in sd["state"].items()}
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        st = self.run_state
        if "X" in st and "G" not in st:
            st["G"] = torch.zeros_like(st["X"])

    # ------------------------------------------------------------ evaluation
    def _evaluate(self, evaluate: Evaluate, X: torch.Tensor, counts: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Objectives (n×2) and gradients (n×D) of ``X``; non-finite losses become +inf, counted."""
        loss, grad, bad = self._scored(evaluate, X, counts)
        loss = torch.where(bad, torch.inf, loss)
        # densities and the finite-gradient check share one pass over X and G; only flagged rows are cleaned
        density, finite = self._fallback(lambda: maybe_compiled(row_density_and_finite, self._compiled())(X, grad))
        dirty = (bad | ~finite).nonzero().squeeze(1)
        if len(dirty):
            grad[dirty] = torch.nan_to_num(grad[dirty], nan=0.0, posinf=0.0, neginf=0.0)
            grad[bad] = 0.0
        return torch.stack((density, loss), dim=1), grad

    def _evaluate_when_due(self, evaluate: Evaluate, X: torch.Tensor, last: torch.Tensor, counts: dict,
                           due: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``_evaluate``, where a generation that selects nothing (a trunk's, a warm-up's) takes its held-out
        score only when ``due``: selected on held-out data, ``evaluate.training`` scores the training loss
        alone (the gradient, the step and the budget's evaluation) and each row keeps its ``last`` loss
        (rows of ``F``). A row whose training loss is not finite is +inf, as a fresh score would make it; a row
        with no finite score to keep (just branched, or finite again after a non-finite one) is scored now
        (``evaluate.held_out``). So the loss's finiteness, all that such a generation acts on (which rows
        take their step), is a fresh score's."""
        training = getattr(evaluate, "training", None)
        if training is None or due:
            return self._evaluate(evaluate, X, counts)
        F, G = self._evaluate(training, X, counts)
        finite = torch.isfinite(F[:, 1])
        F[:, 1] = torch.where(finite, last[:, 1], F[:, 1])
        unscored = (finite & ~torch.isfinite(last[:, 1])).nonzero().squeeze(1)
        if len(unscored):
            held_out = evaluate.held_out(X[unscored]).to(F.dtype)
            F[unscored, 1] = torch.where(torch.isfinite(held_out), held_out, torch.inf)
        return F, G

    def _initial_population(self) -> torch.Tensor:
        hp = self.hp
        lo, hi = self.bounds()
        exempt = self._exempt()
        return initial_population(self.layout, hp["pop_size"], scheme=hp["init"], graded=hp["graded_density"],
                                  min_density=hp["min_density"], densities=hp.get("initial_densities"),
                                  exact=hp.get("exact_densities", False),
                                  exempt=None if exempt is None else exempt.cpu(),
                                  lower=lo.cpu(), upper=hi.cpu(), generator=self.generator,
                                  dtype=self.params[0].dtype).to(self._device())

    def _exempt(self) -> torch.Tensor | None:
        """(D,) bool on the population's device: entries never zeroed (the biases, with ``exempt_biases``),
        else None."""
        return self._masks()[0]

    def _masks(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(exempt, prunable)``, built once per device and setting (as ``bounds``): a trunk generation asks
        for them every time, and building them (a (D,) tensor per layer, joined) cost 0.06 ms, 2% of a
        trunk generation of the default job's 784-100-784 autoencoder."""
        key = (bool(self.hp["exempt_biases"]), self._device())
        if self._mask_cache is None or self._mask_cache[0] != key:
            exempt = (~self.layout.is_weight()).to(key[1]) if key[0] else None
            prunable = torch.ones(self.layout.dim, dtype=torch.bool, device=key[1]) if exempt is None else ~exempt
            self._mask_cache = (key, exempt, prunable)
        return self._mask_cache[1], self._mask_cache[2]

    def _local_search(self, X: torch.Tensor, F: torch.Tensor, G: torch.Tensor,
                      moments: Moments | None, inplace: bool = False) -> tuple[torch.Tensor, Moments | None]:
        """``X`` after one masked Adam step each (local search on), else ``X`` itself; ``inplace`` writes
        the step into ``X`` and the moments' ``M``, ``V`` (``T`` comes back new)."""
        if moments is None:
            return X, None
        lo, hi = self.bounds()
        lr, p = self.hp["local_search_lr"], self.hp.get("lr_density_exponent", 0.0)
        lr = lr * self._lr_factor()
        if p:  # the step size of each row from its density (never below one entry in D)
            lr = lr * F[:, 0].clamp_min(1.0 / X.shape[1]).pow(-p)
        return self._fallback(lambda: local_search(
            X, G, moments, lr=lr, active=torch.isfinite(F[:, 1]), lower=lo, upper=hi,
            compiled=self._compiled(), inplace=inplace, weight_decay=self.hp.get("weight_decay", 0.0)))

    def _lr_factor(self) -> float:
        """The step size's share this generation: 1 throughout, or with ``lr_final`` a cosine down to
        ``lr_final`` at the run's end: from its first generation over its ``generations`` (``lr_schedule: run``),
        or, with ``after_trunk``, 1 through the trunk and from its end over the rest of the run's ``evaluations``
        (the budget; the share spent, as ``run_state``'s count of evaluations says)."""
        final = self.hp.get("lr_final")
        if final is None:
            return 1.0
        if self.hp["lr_schedule"] == "after_trunk":
            total = self.hp["evaluations"]
            check_option(total is not None, "lr_schedule",
                         "after_trunk needs optimizer.evaluations, the run's budget (ggevo-train sets it)")
            spent, start = self.run_state.get("evaluations", 0) / total, self.hp["trunk"] / total
            if spent <= start:
                return 1.0
            share = min((spent - start) / (1.0 - start), 1.0)
        else:
            g, total = self.run_state.get("generation", 0), self.hp["generations"]
            check_option(total is not None, "lr_final",
                         "needs optimizer.generations, the run's length (ggevo-train sets it)")
            share = min(g / max(total - 1, 1), 1.0)
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * share))

    # ------------------------------------------------------------ generation
    def _crossover(self, X: torch.Tensor, G: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Children (2P×D) of ``pairs`` (2×P), row ``j`` in the place of parent ``pairs.reshape(-1)[j]``;
        with ``crossover_prob`` < 1 the pairs left uncrossed pass on copies of their parents."""
        hp = self.hp
        lo, hi = self.bounds()
        guided = hp["crossover"] == "grad_sbx"

        def kernel(sub: torch.Tensor) -> torch.Tensor:
            return self._fallback(lambda: run_kernel(
                X, G if guided else None, sub, eta=hp["eta"],
                sparsity_preservation=hp["sparsity_preservation"] if guided else 0.0,
                guided=guided, exchange=guided and hp["exchange"], lower=lo, upper=hi,
                generator=self.generator, compiled=self._compiled(),
            ))

        if hp["crossover_prob"] >= 1.0:
            return kernel(pairs).view(-1, X.shape[1])
        children = X[pairs.reshape(-1)].view(2, pairs.shape[1], -1)
        crossed = (torch.rand(pairs.shape[1], generator=self.generator) < hp["crossover_prob"]).nonzero().squeeze(1)
        if len(crossed):
            children[:, crossed.to(X.device)] = kernel(pairs[:, crossed])
        return children.view(-1, X.shape[1])

    def _parents(self, F: torch.Tensor, m: int) -> torch.Tensor:
        """``m`` parents by binary tournament on (floored) rank and crowding; with ``floor_breeds`` off, only
        among the networks magnitude mutation can still prune (above ``prune_floor``), while any is: a child
        of a network at the floor would be its copy, trained on the same minibatches to the same weights."""
        hp = self.hp
        rank, crowding = rank_and_crowding(floored(F, hp.get("density_floor")))
        pool = None
        if not hp.get("floor_breeds", True) and hp["mutation"] == "magnitude" and hp.get("prune_floor") is not None:
            nonzero = torch.round(F[:, 0].double() * self.layout.dim)  # F's density is the count over D
            able = (nonzero > self._min_nonzero()).nonzero().squeeze(1).to(rank.device)
            pool = able if len(able) else None
        if pool is None:
            return binary_tournament(rank, crowding, m, generator=self.generator)
        return pool[binary_tournament(rank[pool], crowding[pool], m, generator=self.generator)]

    def _min_nonzero(self) -> int:
        """The fewest nonzero entries magnitude mutation leaves a child: ``prune_floor``'s count (0 without one),
        rounded up unless that puts a network at the floor above the floor as a density budget (``front.count_within``)."""
        floor = self.hp.get("prune_floor")
        if floor is None:
            return 0
        return count_within(math.ceil(floor * self.layout.dim), self.layout.dim, floor)

    def _variation(self, X: torch.Tensor, G: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        hp = self.hp
        lo, hi = self.bounds()
        children = self._crossover(X, G, pairs)
        exempt = self._exempt()
        if hp["mutation"] == "zero":
            columns = None if exempt is None else (~exempt).nonzero().squeeze(1)
            return zero_mutation_(children, rate=hp["mutation_rate"], generator=self.generator, columns=columns)
        if hp["mutation"] == "magnitude":
            return magnitude_prune_(children, probability=hp["prune_probability"], fraction=hp["prune_fraction"],
                                    prunable=None if exempt is None else ~exempt, generator=self.generator,
                                    min_nonzero=self._min_nonzero())
        return polynomial_mutation_(children, lower=lo, upper=hi, eta=hp["mutation_eta"],
                                    rate=hp["mutation_rate"], generator=self.generator)

    def _moments(self, X: torch.Tensor) -> Moments | None:
        """The population's Adam moments (fresh at the start), or None without local search."""
        if self.hp["local_search_lr"] <= 0:
            return None
        st = self.run_state
        return Moments(st["M"], st["V"], st["T"]) if "M" in st else Moments.zeros(X)

    @torch.no_grad()
    def _trunk_step(self, evaluate: Evaluate) -> dict:
        """A trunk generation: the densest network alone is scored and takes its step; after the last,
        every other network becomes the trunk pruned to its own density (``operators.trunk``)."""
        hp, st = self.hp, self.run_state
        counts = {"evaluations": 0, "nonfinite": 0}
        if self.initialized:
            X, F, G = st["X"], st["F"], st["G"]
        else:
            X = self._initial_population()
            density = row_density(X)
            F = torch.stack((density, torch.full_like(density, torch.inf)), dim=1)  # not yet scored
            G = torch.zeros_like(X)
        moments = self._moments(X)
        t = int(st.get("trunk_row", F[:, 0].argmax()))  # the densest at the start
        one = slice(t, t + 1)  # views of its row: nothing of the population is copied to score and step it
        done = st.get("generation", 0) + 1
        # the status is recorded only when due (``operators.trunk.trunk_record_due``, and at the run's last
        # generation), and selected on held-out data the held-out score is taken then; between, the last one
        # stands (``_evaluate_when_due``). Nothing selects on it during the trunk.
        due = trunk_record_due(done, hp["trunk"]) or _last(evaluate)
        Ft, Gt = self._evaluate_when_due(evaluate, X[one], F[one], counts, due)
        self._consistent = False  # the step is written into the row itself: no copies of it, its moments
        _, Mt = self._local_search(X[one], Ft, Gt, Moments(moments.M[one], moments.V[one], moments.T[one]),
                                   inplace=True)
        F[one], moments.T[one] = Ft, Mt.T  # not Gt: a trunk re-scores parents (gemonn_options), so no one reads G
        if hp.get("trunk_prune", "oneshot") == "gradual":
            start, end = schedule_span(hp["trunk"], hp["trunk_prune_start"], hp.get("trunk_prune_end", 1.0))
            prune_trunk_(X, F, moments, t, self._prunable(), done=done, total=hp["trunk"], start=start, end=end,
                         rebase=hp.get("trunk_rebase", False), extras=hp.get("rebase_extras", 1.0))
        elif done == hp["trunk"]:
            branch_(X, F, moments, t, self._prunable(), torch.arange(X.shape[0], device=X.device) != t)
        st["trunk_row"] = t
        return self._commit(X, F, G, moments, counts, report=due)

    def _prunable(self) -> torch.Tensor:
        """(D,) bool: the entries pruning may zero (all but the exempt biases)."""
        return self._masks()[1]

    @torch.no_grad()
    def step(self, closure: Closure) -> dict | None:  # type: ignore[override]
        """One generation on the minibatch that ``closure`` scores; returns a status dict (None for a trunk
        generation between the trunk's records: ``operators.trunk.trunk_record_due``).

        The state changes only in a short commit at the end, so a run interrupted anywhere
        else still holds the previous generation, whole (a trunk generation writes its one row's step
        in place, and is marked inconsistent from then on: no checkpoint is taken of it half-written).
        """
        hp, st = self.hp, self.run_state
        evaluate = closure()
        if st.get("generation", 0) < hp.get("trunk", 0):
            return self._trunk_step(evaluate)
        counts = {"evaluations": 0, "nonfinite": 0}
        warm = st.get("generation", 0) < hp.get("trunk", 0) + hp["warmup"]
        # parents scored on this minibatch: at the start, when re-scored, and while warming up
        scored = not self.initialized or hp["reevaluate_parents"] or warm
        due = not warm or _last(evaluate) or self._warmup_record_due()
        if not self.initialized:
            X = self._initial_population()
            F, G = self._evaluate(evaluate, X, counts)
        else:
            X, F, G = st["X"], st["F"], st["G"]
            if scored:
                F, G = self._evaluate_when_due(evaluate, X, F, counts, due)
        moments = self._moments(X)
        n = X.shape[0]
        m = 0 if warm else hp["offspring"] or n
        if m:
            pairs = self._parents(F, m).view(2, m // 2)
            C = self._variation(X, G, pairs)
            FC, GC = self._evaluate(evaluate, C, counts)
        else:  # warming up: no children
            pairs, C, FC, GC = torch.zeros(2, 0, dtype=torch.int64), X[:0], F[:0], G[:0]
        if moments is not None:
            # children are bred from the parents as scored, so a child and its parent compete on the
            # same minibatch at the same point of training; then every network scored this
            # generation takes its step from the gradient it was scored with
            C_moments = self._fallback(lambda: inherit(moments, pairs.reshape(-1).to(X.device), C,
                                                       enabled=hp["inherit_moments"], compiled=self._compiled()))
            C, C_moments = self._local_search(C, FC, GC, C_moments)
            if scored:
                X, moments = self._local_search(X, F, G, moments)
        keep = banded_survival(floored(torch.cat((F, FC)), hp.get("density_floor")), n, hp.get("band_edges"),
                               eliminate_duplicates=hp.get("eliminate_duplicates", False)).to(X.device)
        dead = torch.ones(n, dtype=torch.bool, device=X.device)
        dead[keep[keep < n]] = False
        born = keep[keep >= n] - n
        rows = dead.nonzero().squeeze(1)

        self._consistent = False
        if len(rows):
            self._fallback(lambda: maybe_compiled(replace_rows_, self._compiled())(X, G, C, GC, rows, born))
            F.index_copy_(0, rows, FC[born])
            if moments is not None:
                M, V, T = moments
                self._fallback(lambda: maybe_compiled(replace_rows_, self._compiled())(
                    M, V, C_moments.M, C_moments.V, rows, born))
                T.index_copy_(0, rows, C_moments.T[born])
        return self._commit(X, F, G, moments, counts, report=due)

    def _warmup_record_due(self) -> bool:
        """Whether this warm-up generation records its status (and, selected on held-out data, takes its
        held-out score): every one without ``warmup_records``; with it, ``warmup_records`` times over the
        warm-up (``operators.trunk.record_due``). A warm-up selects nothing (every network survives), so
        between records the held-out score only fed the status."""
        hp = self.hp
        records = hp.get("warmup_records")
        if records is None:
            return True
        return record_due(self.run_state.get("generation", 0) + 1 - hp.get("trunk", 0), hp["warmup"], records)

    def _commit(self, X: torch.Tensor, F: torch.Tensor, G: torch.Tensor, moments: Moments | None,
                counts: dict, report: bool = True) -> dict | None:
        """End a generation: the run state takes the new population and counts, then the status (``report``)."""
        st = self.run_state
        if moments is not None:
            st.update(M=moments.M, V=moments.V, T=moments.T)
        st.update(
            X=X, F=F, G=G,
            generation=st.get("generation", 0) + 1,
            evaluations=st.get("evaluations", 0) + counts["evaluations"],
            nonfinite=st.get("nonfinite", 0) + counts["nonfinite"],
            # bytes, not a tensor: Optimizer.load_state_dict casts state tensors to the parameters' dtype
            rng=bytes(self.generator.get_state().numpy()),
        )
        self._consistent = True
        self._knee_stale = not report  # the knee is written with a status, else before a checkpoint (``load_knee``)
        if not report:
            return None
        front = self.front_indices()  # sorted once for the status and the knee
        status = self.status(front)
        self._load_knee(front)
        return status
