"""pymoo's SBX and PM working on rows of torch tensors: pymoo's individuals hold row numbers, the
operators compute the coordinates of the rows they name with the torch ports of pymoo's rules
(``pymoo_sbx``, ``pymoo_pm``). Used by ``ggevo.ea.pymoo_nsga2``, which attaches the rows of the
generation in progress for the duration of a step."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM

from ggevo.ea.operators.crossover.pymoo_sbx import pymoo_sbx
from ggevo.ea.operators.mutation.pymoo_pm import pymoo_pm_


class Rows:
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
class Attached:
    rows: Rows | None = None  # set by PymooNSGA2.step for its duration; never pickled with the algorithm


class OnRows:
    """An operator that reads and writes rows of ``attached.rows``; a pickled or copied one holds none."""

    attached: Attached

    def __getstate__(self):
        return {**self.__dict__, "attached": Attached()}


class TorchSBX(OnRows, SBX):
    """pymoo's SBX (its parameters, and ``Crossover.do``'s choice of which matings cross) whose
    coordinates ``ggevo.ea.operators.crossover.pymoo_sbx`` computes on the rows pymoo's variables name."""

    def __init__(self, eta: float, prob: float, prob_var: float = 0.5, prob_bin: float = 0.5):
        super().__init__(eta=eta, prob=prob, prob_var=prob_var, prob_bin=prob_bin)
        self.params = (float(eta), float(prob_var), float(prob_bin))
        self.attached = Attached()

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


class TorchPM(OnRows, PM):
    """pymoo's PM (its parameters, and ``Mutation.do``'s choice of which individuals mutate) whose
    coordinates ``ggevo.ea.operators.mutation.pymoo_pm`` computes on the rows pymoo's variables name."""

    def __init__(self, eta: float, rate: float | None):
        super().__init__(eta=eta)
        self.params = (float(eta), rate)
        self.attached = Attached()

    def _do(self, problem, X, params=None, *args, random_state=None, **kwargs):
        rows = self.attached.rows
        eta, rate = self.params
        mutated = pymoo_pm_(rows.get(X), lower=rows.lower, upper=rows.upper, eta=eta, rate=rate,
                            generator=rows.generator)
        return rows.add(mutated)
