"""Plain NSGA-II as an independent baseline: pymoo's own ``NSGA2`` driven by ask/tell (docs/ALGORITHM.md, ablations).

A drop-in for :class:`ggevo.ea.gemonn.GEMONN` (same ``step``/``front``/``status`` interface and the
same graded initial population and box bounds), so a comparison isolates the variation operators:
pymoo's SBX crossover and polynomial mutation, no gradient, no sparsity preservation.

pymoo runs the algorithm: its mating (binary tournaments on rank and crowding, the crossover and
mutation probabilities per mating and per individual), its survival and its bookkeeping. What it
holds as an individual's variables is a row number into the population tensors here, and its SBX
and PM compute their coordinates by torch ports of pymoo's own rules (``operators/pymoo_sbx.py``,
``operators/pymoo_pm.py``): numpy in float64 on objects of 393k variables took 6× the evaluation
of the offspring at the paper's size (``benchmarks/generation.py --preset pymoo_nsga2``).
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterable

import numpy as np
import torch
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.problems.static import StaticProblem

from ggevo.compiling import maybe_compiled
from ggevo.ea.compiling import row_density
from ggevo.ea.init import initial_population
from ggevo.ea.operators.pymoo_rows import Attached, Rows, TorchPM, TorchSBX
from ggevo.ea.population import Closure, Evaluate, PopulationOptimizer, check_shared_options
from ggevo.ea.population import check_option as _check

_WORST = 1e30  # pymoo sees this for a non-finite loss, as in ggevo.ea.selection: its crowding stays finite
# the names checkpoints written before pymoo_rows existed pickled the operators by
_TorchSBX, _TorchPM, _Attached = TorchSBX, TorchPM, Attached


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
    docs/ALGORITHM.md and GEMONN (pymoo's own defaults are 15 and 20).

    State (``self.state``, see ``run_state``): ``X`` (N×D, the params' dtype and device), ``F``
    (N×2: density, loss; non-finite losses are +inf), ``generation``, ``evaluations``,
    ``nonfinite``, ``rng`` (the torch generator the coordinates draw from) and ``algorithm``, the
    live pymoo object, whose individuals hold their row of ``X``; ``state_dict()`` pickles it,
    numpy generator included, so ``load_state_dict()`` resumes a run exactly. The coordinates are
    computed in the params' dtype (compiled where ``compile`` allows).
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
        compile: bool | str = "auto",
    ):
        check_shared_options(pop_size=pop_size, eta=eta, mutation_eta=mutation_eta, mutation_rate=mutation_rate,
                             init=init, weight_bound=weight_bound, bias_bound=bias_bound, hv_ref=hv_ref,
                             compile=compile)
        _check(0.0 <= crossover_prob <= 1.0, "crossover_prob", f"must be a probability, got {crossover_prob}")
        _check(reevaluate_parents is False, "reevaluate_parents",
               "pymoo's NSGA-II never re-scores survivors; must be false")
        defaults = dict(
            pop_size=pop_size, eta=float(eta), crossover_prob=float(crossover_prob),
            mutation_eta=float(mutation_eta), mutation_rate=mutation_rate,
            eliminate_duplicates=bool(eliminate_duplicates), reevaluate_parents=False, init=init,
            graded_density=bool(graded_density), weight_bound=float(weight_bound), bias_bound=float(bias_bound),
            hv_ref=tuple(float(v) for v in hv_ref), seed=int(seed),
        )
        super().__init__(params, defaults, compile=compile)

    # ----------------------------------------------------------------- state
    # run_state: X, F, generation, evaluations, nonfinite, rng, algorithm (the pymoo NSGA2)
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
    def _initial_rows(self) -> torch.Tensor:
        """GEMONN's initial population (same seed, same rows), from a fresh generator as GEMONN's is at
        its first step: a retried first step draws the same rows."""
        hp = self.hp
        lo, hi = (b.cpu() for b in self.bounds())
        return initial_population(self.layout, hp["pop_size"], scheme=hp["init"], graded=hp["graded_density"],
                                  lower=lo, upper=hi, generator=torch.Generator().manual_seed(hp["seed"]),
                                  dtype=self.params[0].dtype).to(self._device())

    def _new_algorithm(self) -> NSGA2:
        """pymoo's NSGA2 whose individuals are row numbers (one variable), sampling rows 0..N-1."""
        hp = self.hp
        n = hp["pop_size"]
        algorithm = NSGA2(pop_size=n, sampling=np.arange(n, dtype=float)[:, None],
                          crossover=TorchSBX(eta=hp["eta"], prob=hp["crossover_prob"]),
                          mutation=TorchPM(eta=hp["mutation_eta"], rate=hp["mutation_rate"]),
                          eliminate_duplicates=hp["eliminate_duplicates"])
        problem = Problem(n_var=1, n_obj=2, xl=0.0, xu=float(2**53))
        return algorithm.setup(problem, termination=NoTermination(), seed=hp["seed"], verbose=False)

    def _attach(self, algorithm: NSGA2, rows: Rows | None) -> None:
        algorithm.mating.crossover.attached.rows = rows
        algorithm.mating.mutation.attached.rows = rows

    def _evaluate(self, evaluate: Evaluate, X: torch.Tensor, counts: dict) -> torch.Tensor:
        """Objectives (n×2) of ``X``; non-finite losses become +inf, counted. The gradient is unused."""
        loss, _, bad = self._scored(evaluate, X, counts)
        density = maybe_compiled(row_density, self._compile is True)(X)
        return torch.stack((density, torch.where(bad, torch.inf, loss)), dim=1)

    def _ask_and_tell(self, algorithm: NSGA2, rows: Rows, evaluate: Evaluate, counts: dict) -> None:
        """One ask (the initial population, or N offspring), one call of ``evaluate``, one tell."""
        infills = algorithm.ask()
        F = self._evaluate(evaluate, rows.get(infills.get("X")), counts)
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
        lo, hi = self.bounds()
        X = st["X"] if self.initialized else self._initial_rows()
        rows = Rows(X, lo, hi, self.generator, self._compiled())
        rng = self.generator.get_state()
        self._attach(algorithm, rows)
        counts = {"evaluations": 0, "nonfinite": 0}
        try:
            if not self.initialized:
                self._ask_and_tell(algorithm, rows, evaluate, counts)
            self._ask_and_tell(algorithm, rows, evaluate, counts)
        except BaseException:
            self.generator.set_state(rng)  # the state is untouched: a retried step draws the same
            raise
        finally:
            self._attach(algorithm, None)
            self._compile = self._compile and rows.compiled
        # neither is read again; dropping them keeps a checkpoint small
        algorithm.off = None
        algorithm.initialization.sampling = None
        survivors = algorithm.pop.get("X")
        X = rows.get(survivors)
        algorithm.pop.set("X", np.arange(len(X), dtype=float)[:, None])  # survivors are rows 0..N-1 of X
        pop_F = np.where(algorithm.pop.get("F") >= _WORST, np.inf, algorithm.pop.get("F"))

        self._consistent = False
        st.update(
            X=X,
            F=torch.from_numpy(pop_F).to(param.device, param.dtype),
            generation=st.get("generation", 0) + 1,
            evaluations=st.get("evaluations", 0) + counts["evaluations"],
            nonfinite=st.get("nonfinite", 0) + counts["nonfinite"],
            rng=bytes(self.generator.get_state().numpy()),
            algorithm=algorithm,
        )
        self._consistent = True
        front = self.front_indices()  # sorted once for the status and the knee
        status = self.status(front)
        self._load_knee(front)
        return status
