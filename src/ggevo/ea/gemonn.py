"""GEMONN as a ``torch.optim.Optimizer``: one ``step`` is one NSGA-II generation (docs/ALGORITHM.md).

The whole run state (population ``X`` n×D, objectives ``F`` n×2 = (density, loss), gradients
``G`` n×D, counters and the generator's state) lives in ``self.state``, so
``state_dict()``/``load_state_dict()`` resume a run exactly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable

import torch

from ggevo.ea.compiling import (
    compile_available,
    maybe_compiled,
    replace_rows_,
    row_density,
    row_density_and_finite,
)
from ggevo.ea.init import INIT_SCHEMES, initial_population
from ggevo.ea.operators.lamarck import Moments, inherit, local_search
from ggevo.ea.operators.magnitude_prune import magnitude_prune_
from ggevo.ea.operators.polynomial_mutation import polynomial_mutation_
from ggevo.ea.operators.sbx_kernel import run_kernel
from ggevo.ea.operators.trunk import branch_, prune_trunk_
from ggevo.ea.operators.zero_mutation import zero_mutation_
from ggevo.ea.population import PopulationOptimizer
from ggevo.ea.selection import binary_tournament, floored, rank_and_crowding, survival

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Closure = Callable[[], Evaluate]
CROSSOVERS = ("grad_sbx", "sbx")
MUTATIONS = ("zero", "polynomial", "magnitude")
TRUNK_PRUNES = ("oneshot", "gradual")


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ValueError(f"optimizer.{key}: {message}")


class GEMONN(PopulationOptimizer):
    """Gradient-guided multi-objective evolution of the parameters ``params`` (NSGA-II frame).

    ``step(closure)`` runs one generation. As with any torch optimizer, ``closure`` takes no
    arguments (Lightning calls it so); it returns ``evaluate``, where ``evaluate(X)`` gives the
    losses (n,) and gradients (n×D) of the rows of ``X`` on this generation's minibatch.

    Beyond the paper (each off by default, so ``optimizer=gemonn`` stays the faithful method;
    ``optimizer=gemonn_plus`` turns them on): ``local_search_lr`` > 0 gives every evaluated
    individual one masked Adam step from the gradient its evaluation gave, with moments that
    travel with it (``inherit_moments``); ``exempt_biases`` never zeroes biases;
    ``min_density`` grades the initial densities geometrically; ``mutation: magnitude`` zeroes a
    child's smallest weights; ``crossover_rate`` < 1 copies some pairs unchanged; ``offspring``
    sets the children per generation; ``warmup`` generations first let every individual learn (scored and stepped, no children), so
    dense networks are not lost to sparse ones before either has learnt anything. ``trunk``
    generations before those train the densest initial network alone (one evaluation each); then
    every other network restarts as that one, magnitude-pruned to its own initial density, with
    its moments: the population branches from one well-trained network, as iterative magnitude
    pruning's stages do from its dense run. ``density_floor`` makes selection (tournaments and
    survival) see a density below the floor as the floor itself: a network sparser than it is worth
    no more than one at it, so the sparsest members compete on loss alone instead of pruning
    themselves towards nothing, and the population stays spread over the densities above it. The
    front reported keeps the true densities. ``lr_density_exponent`` p gives each network the step
    size ``local_search_lr · density^(−p)``: a sparse network moves further per step (with p = ½ its
    output changes by about as much per step as a dense one's, for uncorrelated updates), so one step
    size no longer has to suit both ends of the front. ``trunk_prune: gradual`` prunes the trunk as it
    trains instead (gradual magnitude pruning, Zhu & Gupta 2017): dense for the first
    ``trunk_prune_start`` of the trunk, then its density falls along the cubic schedule to the sparsest
    row's, its mask updated 100 times; each other row branches off when the trunk
    passes its density (the trunk as it stood then, pruned to that density, with its moments), so a
    sparse network starts from one that was pruned a little at a time rather than all at once. The trunk
    row itself ends at the sparsest density (``ggevo.ea.operators.trunk``). ``prune_floor`` stops magnitude mutation there: a child
    keeps at least that density (all of it, if its parent is already there), so the sparse end of the
    front stays at the floor instead of drifting below it. ``eliminate_duplicates`` lets a child whose
    objectives equal another network's (a copy, such as the child of a parent already at the floor)
    survive only into places the distinct networks leave.
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
        crossover_rate: float = 1.0,
        exempt_biases: bool = False,
        min_density: float | None = None,
        prune_probability: float = 0.5,
        prune_fraction: float = 0.1,
        local_search_lr: float = 0.0,
        inherit_moments: bool = True,
        warmup: int = 0,
        trunk: int = 0,
        density_floor: float | None = None,
        lr_density_exponent: float = 0.0,
        trunk_prune: str = "oneshot",
        trunk_prune_start: float = 0.25,
        prune_floor: float | None = None,
        eliminate_duplicates: bool = False,
    ):
        _check(isinstance(pop_size, int) and pop_size >= 2 and pop_size % 2 == 0, "pop_size",
               f"must be an even integer ≥ 2, got {pop_size!r}")
        _check(eta >= 0, "eta", f"must be non-negative, got {eta}")
        _check(crossover in CROSSOVERS, "crossover", f"must be one of {CROSSOVERS}, got {crossover!r}")
        _check(0.0 <= sparsity_preservation <= 1.0, "sparsity_preservation",
               f"must be a probability in [0, 1], got {sparsity_preservation}")
        _check(mutation in MUTATIONS, "mutation", f"must be one of {MUTATIONS}, got {mutation!r}")
        _check(mutation_eta >= 0, "mutation_eta", f"must be non-negative, got {mutation_eta}")
        _check(mutation_rate is None or 0.0 <= mutation_rate <= 1.0, "mutation_rate",
               f"must be null or a probability, got {mutation_rate}")
        _check(init in INIT_SCHEMES, "init", f"must be one of {INIT_SCHEMES}, got {init!r}")
        _check(weight_bound > 0 and bias_bound > 0, "weight_bound", "bounds must be positive")
        _check(len(hv_ref) == 2, "hv_ref", f"must be two numbers (density, loss), got {hv_ref!r}")
        _check(compile in (True, False, "auto"), "compile", f"must be true, false or auto, got {compile!r}")
        _check(offspring is None or (isinstance(offspring, int) and offspring >= 2 and offspring % 2 == 0),
               "offspring", f"must be null (= pop_size) or an even integer ≥ 2, got {offspring!r}")
        _check(0.0 <= crossover_rate <= 1.0, "crossover_rate", f"must be a probability, got {crossover_rate}")
        _check(min_density is None or 0.0 < min_density <= 1.0, "min_density",
               f"must be null or in (0, 1], got {min_density}")
        _check(0.0 <= prune_probability <= 1.0, "prune_probability", f"must be a probability, got {prune_probability}")
        _check(0.0 < prune_fraction < 1.0, "prune_fraction", f"must be in (0, 1), got {prune_fraction}")
        _check(isinstance(warmup, int) and warmup >= 0, "warmup", f"must be a number of generations ≥ 0, got {warmup!r}")
        _check(warmup == 0 or local_search_lr > 0, "warmup", "needs local search (local_search_lr > 0)")
        _check(local_search_lr >= 0, "local_search_lr", f"must be ≥ 0 (0 = off), got {local_search_lr}")
        _check(isinstance(trunk, int) and trunk >= 0, "trunk", f"must be a number of generations ≥ 0, got {trunk!r}")
        _check(trunk == 0 or (local_search_lr > 0 and reevaluate_parents), "trunk",
               "needs local search (local_search_lr > 0) and re-scored parents (reevaluate_parents: true)")
        _check(density_floor is None or 0.0 < density_floor < 1.0, "density_floor",
               f"must be null (off) or a density in (0, 1), got {density_floor!r}")
        _check(0.0 <= lr_density_exponent <= 1.0, "lr_density_exponent",
               f"must be in [0, 1] (0 = one step size for all), got {lr_density_exponent!r}")
        _check(trunk_prune in TRUNK_PRUNES, "trunk_prune", f"must be one of {TRUNK_PRUNES}, got {trunk_prune!r}")
        _check(0.0 <= trunk_prune_start < 1.0, "trunk_prune_start",
               f"must be a fraction of the trunk in [0, 1), got {trunk_prune_start!r}")
        _check(prune_floor is None or 0.0 < prune_floor < 1.0, "prune_floor",
               f"must be null (off) or a density in (0, 1), got {prune_floor!r}")
        defaults = dict(
            pop_size=pop_size, eta=float(eta), crossover=crossover,
            sparsity_preservation=float(sparsity_preservation), exchange=bool(exchange), mutation=mutation,
            mutation_eta=float(mutation_eta), mutation_rate=mutation_rate,
            reevaluate_parents=bool(reevaluate_parents), init=init, graded_density=bool(graded_density),
            weight_bound=float(weight_bound), bias_bound=float(bias_bound),
            hv_ref=tuple(float(v) for v in hv_ref), seed=int(seed),
            offspring=offspring, crossover_rate=float(crossover_rate), exempt_biases=bool(exempt_biases),
            min_density=min_density, prune_probability=float(prune_probability),
            prune_fraction=float(prune_fraction), local_search_lr=float(local_search_lr),
            inherit_moments=bool(inherit_moments), warmup=int(warmup), trunk=int(trunk),
            density_floor=None if density_floor is None else float(density_floor),
            lr_density_exponent=float(lr_density_exponent),
            trunk_prune=trunk_prune, trunk_prune_start=float(trunk_prune_start),
            prune_floor=None if prune_floor is None else float(prune_floor),
            eliminate_duplicates=bool(eliminate_duplicates),
        )
        super().__init__(params, defaults)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._compile = compile

    # ----------------------------------------------------------------- state
    # run_state: X, F, G, generation, evaluations, nonfinite, rng (rank and crowding are
    # recomputed from F where needed); with local search also the moments M, V (n×D) and steps T (n,)
    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        for key, value in self.defaults.items():  # a checkpoint from before an option existed
            self.hp.setdefault(key, value)
        if self.initialized:
            rng = self.run_state["rng"]
            self.generator.set_state(torch.frombuffer(bytearray(rng), dtype=torch.uint8))

    def _compiled(self) -> bool:
        if self._compile == "auto":
            self._compile = compile_available(self._device())
        return bool(self._compile)

    # ------------------------------------------------------------ evaluation
    def _fallback(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``fn()``; if a compiled kernel fails (a compiler missing or broken), warn once and go eager."""
        try:
            return fn()
        except Exception as err:
            if not self._compile:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); using eager kernels")
            self._compile = False
            return fn()

    def _evaluate(self, evaluate: Evaluate, X: torch.Tensor, counts: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Objectives (n×2) and gradients (n×D) of ``X``; non-finite losses become +inf, counted."""
        loss, grad = evaluate(X)
        if loss.shape != (X.shape[0],) or grad.shape != X.shape:
            raise ValueError(f"evaluate returned loss {tuple(loss.shape)} and grad {tuple(grad.shape)} "
                             f"for a population of {tuple(X.shape)}")
        loss, grad = loss.detach().to(X.dtype), grad.detach()
        bad = ~torch.isfinite(loss)
        counts["nonfinite"] += int(bad.sum())
        counts["evaluations"] += X.shape[0]
        loss = torch.where(bad, torch.inf, loss)
        # densities and the finite-gradient check share one pass over X and G; only flagged rows are cleaned
        density, finite = self._fallback(lambda: maybe_compiled(row_density_and_finite, self._compiled())(X, grad))
        dirty = (bad | ~finite).nonzero().squeeze(1)
        if len(dirty):
            grad[dirty] = torch.nan_to_num(grad[dirty], nan=0.0, posinf=0.0, neginf=0.0)
            grad[bad] = 0.0
        return torch.stack((density, loss), dim=1), grad

    def _initial_population(self) -> torch.Tensor:
        hp = self.hp
        lo, hi = self.bounds()
        return initial_population(self.layout, hp["pop_size"], scheme=hp["init"], graded=hp["graded_density"],
                                  min_density=hp["min_density"], exempt=self._exempt(),
                                  lower=lo.cpu(), upper=hi.cpu(), generator=self.generator,
                                  dtype=self.params[0].dtype).to(self._device())

    def _exempt(self) -> torch.Tensor | None:
        """(D,) bool: entries never zeroed (the biases, with ``exempt_biases``), else None."""
        return ~self.layout.is_weight() if self.hp["exempt_biases"] else None

    def _local_search(self, X: torch.Tensor, F: torch.Tensor, G: torch.Tensor,
                      moments: Moments | None) -> tuple[torch.Tensor, Moments | None]:
        """``X`` after one masked Adam step each (local search on), else ``X`` itself."""
        if moments is None:
            return X, None
        lo, hi = self.bounds()
        lr, p = self.hp["local_search_lr"], self.hp.get("lr_density_exponent", 0.0)
        if p:  # the step size of each row from its density (never below one entry in D)
            lr = lr * F[:, 0].clamp_min(1.0 / X.shape[1]).pow(-p)
        return self._fallback(lambda: local_search(
            X, G, moments, lr=lr, active=torch.isfinite(F[:, 1]), lower=lo, upper=hi,
            compiled=self._compiled()))

    # ------------------------------------------------------------ generation
    def _crossover(self, X: torch.Tensor, G: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Children (2P×D) of ``pairs`` (2×P), row ``j`` in the place of parent ``pairs.reshape(-1)[j]``;
        with ``crossover_rate`` < 1 the pairs left uncrossed pass on copies of their parents."""
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

        if hp["crossover_rate"] >= 1.0:
            return kernel(pairs).view(-1, X.shape[1])
        children = X[pairs.reshape(-1)].view(2, pairs.shape[1], -1)
        crossed = (torch.rand(pairs.shape[1], generator=self.generator) < hp["crossover_rate"]).nonzero().squeeze(1)
        if len(crossed):
            children[:, crossed.to(X.device)] = kernel(pairs[:, crossed])
        return children.view(-1, X.shape[1])

    def _variation(self, X: torch.Tensor, G: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        hp = self.hp
        lo, hi = self.bounds()
        children = self._crossover(X, G, pairs)
        exempt = self._exempt()
        if hp["mutation"] == "zero":
            columns = None if exempt is None else (~exempt).nonzero().squeeze(1)
            return zero_mutation_(children, rate=hp["mutation_rate"], generator=self.generator, columns=columns)
        if hp["mutation"] == "magnitude":
            floor = hp.get("prune_floor")
            return magnitude_prune_(children, probability=hp["prune_probability"], fraction=hp["prune_fraction"],
                                    prunable=None if exempt is None else ~exempt, generator=self.generator,
                                    min_nonzero=0 if floor is None else math.ceil(floor * X.shape[1]))
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
        Ft, Gt = self._evaluate(evaluate, X[one], counts)
        Xt, Mt = self._local_search(X[one], Ft, Gt, Moments(moments.M[one], moments.V[one], moments.T[one]))
        self._consistent = False
        X[one], F[one], G[one] = Xt, Ft, Gt
        for mine, theirs in zip(moments, Mt):
            mine[one] = theirs
        done = st.get("generation", 0) + 1
        if hp.get("trunk_prune", "oneshot") == "gradual":
            prune_trunk_(X, F, moments, t, self._prunable(), done=done, total=hp["trunk"],
                         start=round(hp["trunk_prune_start"] * hp["trunk"]))
        elif done == hp["trunk"]:
            branch_(X, F, moments, t, self._prunable(), torch.arange(X.shape[0], device=X.device) != t)
        st["trunk_row"] = t
        return self._commit(X, F, G, moments, counts)

    def _prunable(self) -> torch.Tensor:
        """(D,) bool: the entries pruning may zero (all but the exempt biases)."""
        exempt = self._exempt()
        return torch.ones(self.layout.dim, dtype=torch.bool, device=self._device()) if exempt is None else ~exempt

    @torch.no_grad()
    def step(self, closure: Closure) -> dict:  # type: ignore[override]
        """One generation on the minibatch that ``closure`` scores; returns a status dict.

        The state changes only in a short commit at the end, so a run interrupted anywhere
        else still holds the previous generation, whole.
        """
        hp, st = self.hp, self.run_state
        evaluate = closure()
        if st.get("generation", 0) < hp.get("trunk", 0):
            return self._trunk_step(evaluate)
        counts = {"evaluations": 0, "nonfinite": 0}
        warm = st.get("generation", 0) < hp.get("trunk", 0) + hp["warmup"]
        # parents scored on this minibatch: at the start, when re-scored, and while warming up
        scored = not self.initialized or hp["reevaluate_parents"] or warm
        if not self.initialized:
            X = self._initial_population()
            F, G = self._evaluate(evaluate, X, counts)
        else:
            X, F, G = st["X"], st["F"], st["G"]
            if scored:
                F, G = self._evaluate(evaluate, X, counts)
        moments = self._moments(X)
        n = X.shape[0]
        m = 0 if warm else hp["offspring"] or n
        if m:
            ranked = rank_and_crowding(floored(F, hp.get("density_floor")))
            pairs = binary_tournament(*ranked, m, generator=self.generator).view(2, m // 2)
            C = self._variation(X, G, pairs)
            FC, GC = self._evaluate(evaluate, C, counts)
        else:  # warming up: no children
            pairs, C, FC, GC = torch.zeros(2, 0, dtype=torch.int64), X[:0], F[:0], G[:0]
        if moments is not None:
            # children are bred from the parents as scored, so a child and its parent compete on the
            # same minibatch at the same point of training; then every network scored this
            # generation takes its step from the gradient it was scored with
            C_moments = inherit(moments, pairs.reshape(-1).to(X.device), C, enabled=hp["inherit_moments"])
            C, C_moments = self._local_search(C, FC, GC, C_moments)
            if scored:
                X, moments = self._local_search(X, F, G, moments)
        keep = survival(floored(torch.cat((F, FC)), hp.get("density_floor")), n,
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
        return self._commit(X, F, G, moments, counts)

    def _commit(self, X: torch.Tensor, F: torch.Tensor, G: torch.Tensor, moments: Moments | None,
                counts: dict) -> dict:
        """End a generation: the run state takes the new population and counts, then the status."""
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
        front = self.front_indices()  # sorted once for the status and the knee
        status = self.status(front)
        self._load_knee(front)
        return status
