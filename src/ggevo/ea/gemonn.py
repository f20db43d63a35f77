"""GEMONN as a ``torch.optim.Optimizer``: one ``step`` is one NSGA-II generation (ALGORITHM.md).

The whole run state (population ``X`` n×D, objectives ``F`` n×2 = (density, loss), gradients
``G`` n×D, counters and the generator's state) lives in ``self.state``, so
``state_dict()``/``load_state_dict()`` resume a run exactly.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch

from ggevo.ea.compiling import compile_available, maybe_compiled, row_density
from ggevo.ea.init import INIT_SCHEMES, initial_population
from ggevo.ea.operators.polynomial_mutation import polynomial_mutation_
from ggevo.ea.operators.sbx_kernel import run_kernel
from ggevo.ea.operators.zero_mutation import zero_mutation_
from ggevo.ea.population import PopulationOptimizer
from ggevo.ea.selection import binary_tournament, rank_and_crowding, survival

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Closure = Callable[[], Evaluate]
CROSSOVERS = ("grad_sbx", "sbx")
MUTATIONS = ("zero", "polynomial")


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ValueError(f"optimizer.{key}: {message}")


class GEMONN(PopulationOptimizer):
    """Gradient-guided multi-objective evolution of the parameters ``params`` (NSGA-II frame).

    ``step(closure)`` runs one generation. As with any torch optimizer, ``closure`` takes no
    arguments (Lightning calls it so); it returns ``evaluate``, where ``evaluate(X)`` gives the
    losses (n,) and gradients (n×D) of the rows of ``X`` on this generation's minibatch.
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
        defaults = dict(
            pop_size=pop_size, eta=float(eta), crossover=crossover,
            sparsity_preservation=float(sparsity_preservation), exchange=bool(exchange), mutation=mutation,
            mutation_eta=float(mutation_eta), mutation_rate=mutation_rate,
            reevaluate_parents=bool(reevaluate_parents), init=init, graded_density=bool(graded_density),
            weight_bound=float(weight_bound), bias_bound=float(bias_bound),
            hv_ref=tuple(float(v) for v in hv_ref), seed=int(seed),
        )
        super().__init__(params, defaults)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._compile = compile

    # ----------------------------------------------------------------- state
    # run_state: X, F, G, generation, evaluations, nonfinite, rng (rank and crowding are
    # recomputed from F where needed)
    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
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
        # a row sum is one cheap pass; only rows it flags are cleaned
        dirty = (bad | ~torch.isfinite(grad.sum(dim=1))).nonzero().squeeze(1)
        if len(dirty):
            grad[dirty] = torch.nan_to_num(grad[dirty], nan=0.0, posinf=0.0, neginf=0.0)
            grad[bad] = 0.0
        density = self._fallback(lambda: maybe_compiled(row_density, self._compiled())(X))
        return torch.stack((density, loss), dim=1), grad

    def _initial_population(self) -> torch.Tensor:
        hp = self.hp
        lo, hi = self.bounds()
        return initial_population(self.layout, hp["pop_size"], scheme=hp["init"], graded=hp["graded_density"],
                                  lower=lo.cpu(), upper=hi.cpu(), generator=self.generator,
                                  dtype=self.params[0].dtype).to(self._device())

    # ------------------------------------------------------------ generation
    def _variation(self, X: torch.Tensor, G: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        hp = self.hp
        lo, hi = self.bounds()
        guided = hp["crossover"] == "grad_sbx"
        children = self._fallback(lambda: run_kernel(
            X, G if guided else None, pairs, eta=hp["eta"],
            sparsity_preservation=hp["sparsity_preservation"] if guided else 0.0,
            guided=guided, exchange=guided and hp["exchange"], lower=lo, upper=hi,
            generator=self.generator, compiled=self._compiled(),
        )).view(-1, X.shape[1])
        if hp["mutation"] == "zero":
            return zero_mutation_(children, rate=hp["mutation_rate"], generator=self.generator)
        return polynomial_mutation_(children, lower=lo, upper=hi, eta=hp["mutation_eta"],
                                    rate=hp["mutation_rate"], generator=self.generator)

    @torch.no_grad()
    def step(self, closure: Closure) -> dict:  # type: ignore[override]
        """One generation on the minibatch that ``closure`` scores; returns a status dict.

        The state changes only in a short commit at the end, so a run interrupted anywhere
        else still holds the previous generation, whole.
        """
        hp, st = self.hp, self.run_state
        evaluate = closure()
        counts = {"evaluations": 0, "nonfinite": 0}
        if not self.initialized:
            X = self._initial_population()
            F, G = self._evaluate(evaluate, X, counts)
        else:
            X, F, G = st["X"], st["F"], st["G"]
            if hp["reevaluate_parents"]:
                F, G = self._evaluate(evaluate, X, counts)
        n = X.shape[0]
        pairs = binary_tournament(*rank_and_crowding(F), n, generator=self.generator).view(2, n // 2)
        C = self._variation(X, G, pairs)
        FC, GC = self._evaluate(evaluate, C, counts)
        keep = survival(torch.cat((F, FC)), n).to(X.device)
        dead = torch.ones(n, dtype=torch.bool, device=X.device)
        dead[keep[keep < n]] = False
        born = keep[keep >= n] - n
        rows = dead.nonzero().squeeze(1)
        born_X, born_G, born_F = C[born], GC[born], FC[born]

        self._consistent = False
        X.index_copy_(0, rows, born_X)
        G.index_copy_(0, rows, born_G)
        F.index_copy_(0, rows, born_F)
        st.update(
            X=X, F=F, G=G,
            generation=st.get("generation", 0) + 1,
            evaluations=st.get("evaluations", 0) + counts["evaluations"],
            nonfinite=st.get("nonfinite", 0) + counts["nonfinite"],
            # bytes, not a tensor: Optimizer.load_state_dict casts state tensors to the parameters' dtype
            rng=bytes(self.generator.get_state().numpy()),
        )
        self._consistent = True
        status = self.status()
        self._load_knee()
        return status
