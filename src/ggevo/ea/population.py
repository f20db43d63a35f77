"""What every population optimizer shares: the options both take and their checks, its state, the
seeded generator, compiled kernels with their eager fallback, the scoring of a population, box
bounds, front, knee and status dict.

``GEMONN`` and ``PymooNSGA2`` differ only in how a generation makes and scores offspring; the
Lightning module, checkpoints and reports read both through this interface.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import numpy as np
import torch

from ggevo.compiling import compile_available
from ggevo.ea.flat import ParamLayout
from ggevo.ea.front import first_front, hypervolume, knee
from ggevo.ea.init import INIT_SCHEMES, box_bounds
from ggevo.ea.selection import band_elites, density_band

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Closure = Callable[[], Evaluate]


# options renamed since checkpoints were written with them (old name -> new)
RENAMED_OPTIONS = {"crossover_rate": "crossover_prob"}


def check_option(ok: bool, key: str, message: str) -> None:
    """A bad option fails as one line naming its key: ``optimizer.<key>: <message>``."""
    if not ok:
        raise ValueError(f"optimizer.{key}: {message}")


def check_shared_options(*, pop_size, eta, mutation_eta, mutation_rate, init, weight_bound, bias_bound, hv_ref,
                         compile) -> None:
    """The checks of the options every population optimizer takes."""
    check_option(isinstance(pop_size, int) and pop_size >= 2 and pop_size % 2 == 0, "pop_size",
                 f"must be an even integer ≥ 2, got {pop_size!r}")
    check_option(eta >= 0, "eta", f"must be non-negative, got {eta}")
    check_option(mutation_eta >= 0, "mutation_eta", f"must be non-negative, got {mutation_eta}")
    check_option(mutation_rate is None or 0.0 <= mutation_rate <= 1.0, "mutation_rate",
                 f"must be null or a probability, got {mutation_rate}")
    check_option(init in INIT_SCHEMES, "init", f"must be one of {INIT_SCHEMES}, got {init!r}")
    check_option(weight_bound > 0 and bias_bound > 0, "weight_bound", "bounds must be positive")
    check_option(len(hv_ref) == 2, "hv_ref", f"must be two numbers (density, loss), got {hv_ref!r}")
    check_option(compile in (True, False, "auto"), "compile", f"must be true, false or auto, got {compile!r}")


class PopulationOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` over one parameter group whose ``state`` holds a population:
    ``X`` (N×D), ``F`` (N×2 = density, loss), ``generation``, ``evaluations``, ``nonfinite``."""

    def __init__(self, params: Iterable[torch.nn.Parameter], defaults: dict, *, compile: bool | str = "auto"):
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} evolves one parameter group")
        self.params = self.param_groups[0]["params"]
        self.layout = ParamLayout([p.shape for p in self.params])
        self._bounds: tuple[torch.Tensor, torch.Tensor] | None = None
        self._consistent = True
        self._knee_stale = False  # a generation without a status left the knee out of the parameters
        self.generator = torch.Generator().manual_seed(int(defaults["seed"]))
        self._compile = compile

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        for old, new in RENAMED_OPTIONS.items():  # a checkpoint from before an option was renamed
            if old in self.hp:
                self.hp.setdefault(new, self.hp.pop(old))
        for key, value in self.defaults.items():  # a checkpoint from before an option existed
            self.hp.setdefault(key, value)
        if "rng" in self.run_state:
            self.generator.set_state(torch.frombuffer(bytearray(self.run_state["rng"]), dtype=torch.uint8))

    # ------------------------------------------------------------ kernels and scoring
    def _compiled(self) -> bool:
        """Whether kernels run compiled: ``compile``, with ``auto`` settled on first use."""
        if self._compile == "auto":
            self._compile = compile_available(self._device())
        return bool(self._compile)

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

    @staticmethod
    def _scored(evaluate: Evaluate, X: torch.Tensor, counts: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``evaluate(X)`` checked and counted: ``(loss (n,) in X's dtype, grad (n×D), bad (n,) bool)``,
        ``bad`` marking the non-finite losses (counted in ``counts["nonfinite"]``, the rows in
        ``counts["evaluations"]``)."""
        loss, grad = evaluate(X)
        if loss.shape != (X.shape[0],) or grad.shape != X.shape:
            raise ValueError(f"evaluate returned loss {tuple(loss.shape)} and grad {tuple(grad.shape)} "
                             f"for a population of {tuple(X.shape)}")
        loss, grad = loss.detach().to(X.dtype), grad.detach()
        bad = ~torch.isfinite(loss)
        counts["nonfinite"] += int(bad.sum())
        counts["evaluations"] += X.shape[0]
        return loss, grad, bad

    @property
    def hp(self) -> dict:
        return self.param_groups[0]

    @property
    def run_state(self) -> dict:
        """The population state (see the subclass for the keys beyond ``X, F`` and the counters)."""
        return self.state[self.params[0]]

    @property
    def initialized(self) -> bool:
        return "X" in self.run_state

    @property
    def consistent(self) -> bool:
        """False only while a generation is being written into the state (a checkpoint then would be torn)."""
        return self._consistent

    def _device(self) -> torch.device:
        return self.params[0].device

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper box bounds (D,) of weights and biases (docs/ALGORITHM.md, initialisation)."""
        if self._bounds is None or self._bounds[0].device != self._device():
            lo, hi = box_bounds(self.layout, weight_bound=self.hp["weight_bound"], bias_bound=self.hp["bias_bound"],
                                dtype=self.params[0].dtype)
            self._bounds = (lo.to(self._device()), hi.to(self._device()))
        return self._bounds

    # --------------------------------------------------------------- results
    def front_indices(self) -> torch.Tensor:
        """Population rows of the non-dominated members, by rising density."""
        return first_front(self.run_state["F"]).to(self.run_state["F"].device)

    def front(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The non-dominated members: ``(X_front (k×D), F_front (k×2))`` by rising density."""
        idx = self.front_indices()
        return self.run_state["X"][idx], self.run_state["F"][idx]

    def band_indices(self) -> torch.Tensor:
        """Population rows of the best network (``band_elites``: the one band survival keeps alive) of each
        density band of ``band_edges`` that holds no front member, by rising density: networks a sparser
        one dominates, reported beside the front so a run leaves a model in every band its population
        has. Empty without ``band_edges``."""
        F = self.run_state["F"].cpu()
        edges = self.hp.get("band_edges")
        if not edges:
            return torch.zeros(0, dtype=torch.int64, device=self.run_state["F"].device)
        elites, band = band_elites(F, edges), density_band(F, edges)
        extra = torch.from_numpy(elites[~np.isin(band[elites], band[self.front_indices().cpu().numpy()])])
        return extra[torch.argsort(F[extra, 0], stable=True)].to(self.run_state["F"].device)

    def band_members(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X (b×D), F (b×2))`` of ``band_indices``."""
        idx = self.band_indices()
        return self.run_state["X"][idx], self.run_state["F"][idx]

    def knee_index(self) -> int | None:
        """Population row of the front's knee (None while the front is empty)."""
        idx = self.front_indices()
        return int(idx[knee(self.run_state["F"][idx])]) if len(idx) else None

    def status(self, front: torch.Tensor | None = None) -> dict:
        """The status dict of the current generation (``front``: its ``front_indices()``, if known)."""
        st = self.run_state
        Ff = st["F"][self.front_indices() if front is None else front]
        k = knee(Ff) if len(Ff) else None
        return {
            "generation": st["generation"],
            "evaluations": st["evaluations"],
            "nonfinite": st["nonfinite"],
            "loss/min": float(st["F"][:, 1].min()),
            "loss/knee": float(Ff[k, 1]) if k is not None else float("nan"),
            "density/knee": float(Ff[k, 0]) if k is not None else float("nan"),
            "front/size": int(len(Ff)),
            "hypervolume": hypervolume(Ff, self.hp["hv_ref"]),
        }

    @torch.no_grad()
    def _load_knee(self, front: torch.Tensor | None = None) -> None:
        """Write the knee solution into the parameters, so the wrapped module is a usable model."""
        if front is None:
            k = self.knee_index()
        else:
            k = int(front[knee(self.run_state["F"][front])]) if len(front) else None
        if k is not None:
            for p, v in zip(self.params, self.layout.split(self.run_state["X"][k])):
                p.copy_(v)
        self._knee_stale = False

    def load_knee(self) -> None:
        """Write the knee into the parameters where a generation without a status left it out (a trunk's or a
        warm-up's between their records: 0.2 ms of a 5 ms trunk generation at H=500); the module's
        ``state_dict`` calls this, so every checkpoint holds it."""
        if self._knee_stale and self.initialized:
            self._load_knee()
