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
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.problems.static import StaticProblem

from ggevo.ea.compiling import compile_available, maybe_compiled, row_density
from ggevo.ea.init import INIT_SCHEMES, initial_population
from ggevo.ea.operators.pymoo_pm import pymoo_pm_
from ggevo.ea.operators.pymoo_sbx import pymoo_sbx
from ggevo.ea.population import PopulationOptimizer

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Closure = Callable[[], Evaluate]
_WORST = 1e30  # pymoo sees this for a non-finite loss, as in ggevo.ea.selection: its crowding stays finite


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ValueError(f"optimizer.{key}: {message}")


class _Rows:
    """The rows of the generation in progress (survivors, then each operator's output), by row number:
    pymoo's individuals hold these numbers as their one variable."""

    def __init__(self, X: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, generator: torch.Generator,
                 compiled: bool):
        self.parts, self.starts = [X], [0]
        self.count = X.shape[0]
        self.lower, self.upper, self.generator, self.compiled = lower, upper, generator, compiled

    def add(self, R: torch.Tensor) -> np.ndarray:
        """Store ``R`` (k×D); returns its row numbers (k, 1) as pymoo's variables."""
        self.parts.append(R)
        self.starts.append(self.count)
        self.count += R.shape[0]
        return np.arange(self.starts[-1], self.count, dtype=float)[:, None]

    def locate(self, numbers: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T, index)`` with ``T[index]`` the rows numbered ``numbers`` (k,) or (k, 1): the part they are all
        in and their places there, else (they span parts) a gathered copy and ``arange(k)``."""
        numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
        part = np.searchsorted(self.starts, numbers, side="right") - 1
        device = self.parts[0].device
        if (part == part[0]).all():
            k = int(part[0])
            return self.parts[k], torch.from_numpy(numbers - self.starts[k]).to(device)
        out = torch.empty(len(numbers), self.parts[0].shape[1], dtype=self.parts[0].dtype, device=device)
        for k in np.unique(part):
            mine = np.flatnonzero(part == k)
            out[torch.from_numpy(mine).to(device)] = self.parts[k].index_select(
                0, torch.from_numpy(numbers[mine] - self.starts[k]).to(device))
        return out, torch.arange(len(numbers), device=device)

    def get(self, numbers: np.ndarray) -> torch.Tensor:
        """The rows (k×D) numbered ``numbers`` (k,) or (k, 1), as a new tensor."""
        T, index = self.locate(numbers)
        return T.index_select(0, index)


@dataclass
class _Attached:
    rows: _Rows | None = None  # set by PymooNSGA2.step for its duration; never pickled with the algorithm


class _OnRows:
    """An operator that reads and writes rows of ``attached.rows``; a pickled or copied one holds none."""

    attached: _Attached

    def __getstate__(self):
        return {**self.__dict__, "attached": _Attached()}


class _TorchSBX(_OnRows, SBX):
    """pymoo's SBX (its parameters, and ``Crossover.do``'s choice of which matings cross) whose
    coordinates ``ggevo.ea.operators.pymoo_sbx`` computes on the rows pymoo's variables name."""

    def __init__(self, eta: float, prob: float, prob_var: float = 0.5, prob_bin: float = 0.5):
        super().__init__(eta=eta, prob=prob, prob_var=prob_var, prob_bin=prob_bin)
        self.params = (float(eta), float(prob_var), float(prob_bin))
        self.attached = _Attached()

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        rows = self.attached.rows
        n_matings = X.shape[1]
        parents, pairs = rows.locate(np.concatenate((X[0], X[1])))  # read in place where they lie together
        pairs = pairs.view(2, n_matings)
        eta, prob_var, prob_bin = self.params

        def cross(compiled: bool) -> torch.Tensor:
            return pymoo_sbx(parents, pairs, lower=rows.lower, upper=rows.upper, eta=eta, prob_var=prob_var,
                             prob_bin=prob_bin, generator=rows.generator, compiled=compiled)

        try:
            children = cross(rows.compiled)
        except Exception as err:  # a compiler missing or broken: warn once and go eager
            if not rows.compiled:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); using eager kernels")
            rows.compiled = False
            children = cross(False)
        return rows.add(children.reshape(2 * n_matings, -1)).reshape(2, n_matings, 1)


class _TorchPM(_OnRows, PM):
    """pymoo's PM (its parameters, and ``Mutation.do``'s choice of which individuals mutate) whose
    coordinates ``ggevo.ea.operators.pymoo_pm`` computes on the rows pymoo's variables name."""

    def __init__(self, eta: float, rate: float | None):
        super().__init__(eta=eta)
        self.params = (float(eta), rate)
        self.attached = _Attached()

    def _do(self, problem, X, params=None, *args, random_state=None, **kwargs):
        rows = self.attached.rows
        eta, rate = self.params
        mutated = pymoo_pm_(rows.get(X), lower=rows.lower, upper=rows.upper, eta=eta, rate=rate,
                            generator=rows.generator)
        return rows.add(mutated)


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
        _check(isinstance(pop_size, int) and pop_size >= 2 and pop_size % 2 == 0, "pop_size",
               f"must be an even integer ≥ 2, got {pop_size!r}")
        _check(eta >= 0, "eta", f"must be non-negative, got {eta}")
        _check(compile in (True, False, "auto"), "compile", f"must be true, false or auto, got {compile!r}")
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
        self.generator = torch.Generator().manual_seed(int(seed))
        self._compile = compile

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
        if "rng" in self.run_state:
            self.generator.set_state(torch.frombuffer(bytearray(self.run_state["rng"]), dtype=torch.uint8))

    def _compiled(self) -> bool:
        if self._compile == "auto":
            self._compile = compile_available(self._device())
        return bool(self._compile)

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
                          crossover=_TorchSBX(eta=hp["eta"], prob=hp["crossover_prob"]),
                          mutation=_TorchPM(eta=hp["mutation_eta"], rate=hp["mutation_rate"]),
                          eliminate_duplicates=hp["eliminate_duplicates"])
        problem = Problem(n_var=1, n_obj=2, xl=0.0, xu=float(2**53))
        return algorithm.setup(problem, termination=NoTermination(), seed=hp["seed"], verbose=False)

    def _attach(self, algorithm: NSGA2, rows: _Rows | None) -> None:
        algorithm.mating.crossover.attached.rows = rows
        algorithm.mating.mutation.attached.rows = rows

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
        density = maybe_compiled(row_density, self._compile is True)(X)
        return torch.stack((density, torch.where(bad, torch.inf, loss)), dim=1)

    def _ask_and_tell(self, algorithm: NSGA2, rows: _Rows, evaluate: Evaluate, counts: dict) -> None:
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
        rows = _Rows(X, lo, hi, self.generator, self._compiled())
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
