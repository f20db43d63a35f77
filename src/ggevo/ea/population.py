"""What every population optimizer shares: its state, box bounds, front, knee and status dict.

``GEMONN`` and ``PymooNSGA2`` differ only in how a generation makes and scores offspring; the
Lightning module, checkpoints and reports read both through this interface.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ggevo.ea.flat import ParamLayout
from ggevo.ea.front import first_front, hypervolume, knee
from ggevo.ea.init import box_bounds


class PopulationOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` over one parameter group whose ``state`` holds a population:
    ``X`` (N×D), ``F`` (N×2 = density, loss), ``generation``, ``evaluations``, ``nonfinite``."""

    def __init__(self, params: Iterable[torch.nn.Parameter], defaults: dict):
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} evolves one parameter group")
        self.params = self.param_groups[0]["params"]
        self.layout = ParamLayout([p.shape for p in self.params])
        self._bounds: tuple[torch.Tensor, torch.Tensor] | None = None
        self._consistent = True

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
