"""Plain NSGA-II as an independent baseline: pymoo's own ``NSGA2`` driven by ask/tell (ALGORITHM.md, ablations).

A drop-in for :class:`ggevo.ea.gemonn.GEMONN` (same ``step``/``front``/``status`` interface and the
same graded initial population and box bounds), so a comparison isolates the variation operators:
pymoo's SBX crossover and polynomial mutation, no gradient, no sparsity preservation.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable, Iterable

import numpy as np
import torch
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.problems.static import StaticProblem

from ggevo.ea.compiling import row_density
from ggevo.ea.init import INIT_SCHEMES, initial_population
from ggevo.ea.population import PopulationOptimizer

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Closure = Callable[[], Evaluate]
_WORST = 1e30  # pymoo sees this for a non-finite loss, as in ggevo.ea.selection: its crowding stays finite


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ValueError(f"optimizer.{key}: {message}")


class PymooNSGA2(PopulationOptimizer):
    """pymoo's NSGA-II on the flat parameters: one ``step(closure)`` is one generation.

    ``closure()`` returns ``evaluate``; ``evaluate(X)`` gives losses (n,) and gradients (n×D). The
    gradient is ignored but each row scored counts as one evaluation: ``N`` for the initial
    population, then one call with the ``N`` offspring a generation (``N + N·g`` after ``g``
    generations). Survivors keep the scores of the minibatch they were first scored on (pymoo's
    behaviour; GEMONN's ``reevaluate_parents: false``). With ``eliminate_duplicates`` (pymoo's
    default) a generation scores fewer than ``N`` only if 100 mating rounds cannot find ``N`` new offspring.

    Operators as pymoo's ``NSGA2`` builds them: SBX with distribution index ``eta``, applied to a
    pair with probability ``crossover_prob`` and then to each variable with probability 0.5; PM
    with index ``mutation_eta`` on each variable with probability ``mutation_rate`` (null: 1/D),
    to an offspring with probability 0.9. ``eta`` and ``mutation_eta`` default to 20, as in
    ALGORITHM.md and GEMONN (pymoo's own defaults are 15 and 20).

    State (``self.state``, see ``run_state``): ``X`` (N×D, the params' dtype and device), ``F``
    (N×2: density, loss; non-finite losses are +inf), ``generation``, ``evaluations``,
    ``nonfinite`` and ``algorithm``, the live pymoo object; ``state_dict()`` pickles it, numpy
    generator included, so ``load_state_dict()`` resumes a run exactly. pymoo works in float64 on
    offspring rounded to the params' dtype, so it holds exactly what was scored.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        *,
        pop_size: int = 50,
        eta: float = 20.0,
        crossover_prob: float = 0.9,
        mutation_eta: float = 20.0,
        mutation_rate: float | None = None,
        eliminate_duplicates: bool = True,
        reevaluate_parents: bool = False,
        init: str = "xavier",
        graded_density: bool = True,
        weight_bound: float = 10.0,
        bias_bound: float = 20.0,
        hv_ref: tuple[float, float] = (1.0, 1.0),
        seed: int = 0,
    ):
        _check(isinstance(pop_size, int) and pop_size >= 2 and pop_size % 2 == 0, "pop_size",
               f"must be an even integer ≥ 2, got {pop_size!r}")
        _check(eta >= 0, "eta", f"must be non-negative, got {eta}")
        _check(0.0 <= crossover_prob <= 1.0, "crossover_prob", f"must be a probability, got {crossover_prob}")
        _check(mutation_eta >= 0, "mutation_eta", f"must be non-negative, got {mutation_eta}")
        _check(mutation_rate is None or 0.0 <= mutation_rate <= 1.0, "mutation_rate",
               f"must be null or a probability, got {mutation_rate}")
        _check(reevaluate_parents is False, "reevaluate_parents",
               "pymoo's NSGA-II never re-scores survivors; must be false")
        _check(init in INIT_SCHEMES, "init", f"must be one of {INIT_SCHEMES}, got {init!r}")
        _check(weight_bound > 0 and bias_bound > 0, "weight_bound", "bounds must be positive")
        _check(len(hv_ref) == 2, "hv_ref", f"must be two numbers (density, loss), got {hv_ref!r}")
        defaults = dict(
            pop_size=pop_size, eta=float(eta), crossover_prob=float(crossover_prob),
            mutation_eta=float(mutation_eta), mutation_rate=mutation_rate,
            eliminate_duplicates=bool(eliminate_duplicates), reevaluate_parents=False, init=init,
            graded_density=bool(graded_density), weight_bound=float(weight_bound), bias_bound=float(bias_bound),
            hv_ref=tuple(float(v) for v in hv_ref), seed=int(seed),
        )
        super().__init__(params, defaults)

    # ----------------------------------------------------------------- state
    # run_state: X, F, generation, evaluations, nonfinite, algorithm (the pymoo NSGA2)
    def state_dict(self) -> dict:
        sd = super().state_dict()
        for key, st in sd["state"].items():
            if "algorithm" in st:  # bytes, copied: the live state keeps the object
                sd["state"][key] = {**st, "algorithm": pickle.dumps(st["algorithm"])}
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        # unpickle outside Optimizer.load_state_dict, which would copy the bytes one int at a time
        state = {k: dict(v) for k, v in state_dict["state"].items()}
        blobs = {k: st.pop("algorithm") for k, st in state.items() if "algorithm" in st}
        super().load_state_dict({**state_dict, "state": state})
        if blobs:
            self.run_state["algorithm"] = pickle.loads(blobs[0])

    # ------------------------------------------------------------ generation
    def _new_algorithm(self) -> NSGA2:
        """pymoo's NSGA2 on the box bounds, sampling GEMONN's initial population (same seed, same rows)."""
        hp = self.hp
        lo, hi = (b.cpu() for b in self.bounds())
        # a fresh generator, as GEMONN's is at its first step: a retried first step draws the same rows
        X0 = initial_population(self.layout, hp["pop_size"], scheme=hp["init"], graded=hp["graded_density"],
                                lower=lo, upper=hi, generator=torch.Generator().manual_seed(hp["seed"]),
                                dtype=self.params[0].dtype)
        algorithm = NSGA2(pop_size=hp["pop_size"], sampling=X0.double().numpy(),
                          crossover=SBX(eta=hp["eta"], prob=hp["crossover_prob"]),
                          mutation=PM(eta=hp["mutation_eta"], prob_var=hp["mutation_rate"]),
                          eliminate_duplicates=hp["eliminate_duplicates"])
        problem = Problem(n_var=self.layout.dim, n_obj=2, xl=lo.double().numpy(), xu=hi.double().numpy())
        return algorithm.setup(problem, termination=NoTermination(), seed=hp["seed"], verbose=False)

    def _evaluate(self, evaluate: Evaluate, X: torch.Tensor, counts: dict) -> torch.Tensor:
        """Objectives (n×2) of ``X``; non-finite losses become +inf, counted. The gradient is unused."""
        loss, grad = evaluate(X)
        if loss.shape != (X.shape[0],) or grad.shape != X.shape:
            raise ValueError(f"evaluate returned loss {tuple(loss.shape)} and grad {tuple(grad.shape)} "
                             f"for a population of {tuple(X.shape)}")
        loss = loss.detach().to(X.dtype)
        bad = ~torch.isfinite(loss)
        counts["nonfinite"] += int(bad.sum())
        counts["evaluations"] += X.shape[0]
        return torch.stack((row_density(X), torch.where(bad, torch.inf, loss)), dim=1)

    def _ask_and_tell(self, algorithm: NSGA2, evaluate: Evaluate, counts: dict) -> None:
        """One ask (the initial population, or N offspring), one call of ``evaluate``, one tell."""
        param = self.params[0]
        infills = algorithm.ask()
        X = torch.from_numpy(infills.get("X")).to(device=param.device, dtype=param.dtype)
        F = self._evaluate(evaluate, X, counts)
        infills.set("X", X.cpu().double().numpy())  # what was scored, in the params' precision
        F64 = np.nan_to_num(F.cpu().double().numpy(), posinf=_WORST)
        algorithm.evaluator.eval(StaticProblem(algorithm.problem, F=F64), infills)
        algorithm.tell(infills=infills)

    @torch.no_grad()
    def step(self, closure: Closure) -> dict:  # type: ignore[override]
        """One generation on the minibatch ``closure`` scores: N offspring scored in one call (the
        first step scores the initial population first, as GEMONN's does: N + N·g evaluations).

        The pymoo object is a deep copy until the commit, so an interrupted or failed step leaves
        the previous generation whole.
        """
        st, param = self.run_state, self.params[0]
        evaluate = closure()
        algorithm = copy.deepcopy(st["algorithm"]) if self.initialized else self._new_algorithm()
        counts = {"evaluations": 0, "nonfinite": 0}
        if not self.initialized:
            self._ask_and_tell(algorithm, evaluate, counts)
        self._ask_and_tell(algorithm, evaluate, counts)
        # neither is read again; dropping them halves what a checkpoint pickles
        algorithm.off = None
        algorithm.initialization.sampling = None
        pop_F = np.where(algorithm.pop.get("F") >= _WORST, np.inf, algorithm.pop.get("F"))

        self._consistent = False
        st.update(
            X=torch.from_numpy(algorithm.pop.get("X")).to(param.device, param.dtype),
            F=torch.from_numpy(pop_F).to(param.device, param.dtype),
            generation=st.get("generation", 0) + 1,
            evaluations=st.get("evaluations", 0) + counts["evaluations"],
            nonfinite=st.get("nonfinite", 0) + counts["nonfinite"],
            algorithm=algorithm,
        )
        self._consistent = True
        status = self.status()
        self._load_knee()
        return status
