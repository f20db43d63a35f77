"""Losses and gradients of a whole population on one minibatch (docs/ALGORITHM.md, step 4).

Three strategies compute the same numbers (to float rounding): ``loop`` runs autograd once per
individual; ``vmap`` batches the individuals (``torch.func.grad_and_value``) with
``torch.func.vmap``, in chunks of ``chunk_size`` rows when set (memory). Which is faster depends on
the model, the population, the machine and how busy it is: on a 2-core CPU a loop of large
matmuls can beat vmap, on a GPU batching wins (``benchmarks/generation.py`` prints both).
``auto`` therefore measures: on the first population it is given it times each candidate and
keeps the fastest for the rest of the run (``choice``, ``times``, ``tags()``). The numbers it
returns are exactly those of the strategy it chose; a run repeated with that strategy named
explicitly (the ``evaluation.strategy`` tag) reproduces them bit for bit. A single row (a trunk's
generation, one network) is always evaluated by the loop, whatever the strategy: vmap over one network
is the loop's work plus batching's overhead (a fifth more time for the paper's autoencoder), and
``auto`` waits for a population of two or more before it measures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence

import torch
from torch.func import grad_and_value, vmap

from ggevo.ea.flat import FlatParams

Batch = Sequence[torch.Tensor]
LossFn = Callable[[torch.Tensor, Batch], torch.Tensor]
STRATEGIES = ("auto", "loop", "vmap")
# auto's chunked candidate: vmap over this many parts of the population (bounds its activations)
AUTO_CHUNKS = 4


def resolve_strategy(strategy: str, device: torch.device | None = None) -> str:
    """``strategy`` checked; ``loop`` and ``vmap`` are themselves, ``auto`` is decided by measurement
    (``PopulationEvaluator``), so it stays ``auto`` here."""
    if strategy not in STRATEGIES:
        raise ValueError(f"evaluation strategy must be one of {STRATEGIES}, got {strategy!r}")
    return strategy


class _Choice:
    """What ``auto`` decided, shared by an evaluator and the scorers derived from it."""

    def __init__(self, strategy: str, chunk_size: int | None):
        self.strategy, self.chunk_size = strategy, chunk_size
        self.times: dict[str, float] = {}
        self.decided = strategy != "auto"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


class PopulationEvaluator:
    """``evaluator(X, batch) -> (loss (n,), grad (n×D))`` for a population ``X`` (n×D).

    ``loss_fn(output, batch)`` maps the module's output on ``batch[0]`` to a scalar loss.
    With ``strategy="auto"`` the first call (of either ``__call__`` or ``losses``) times ``loop``,
    ``vmap`` and a chunked ``vmap`` on its population and keeps the fastest (``choice``).
    """

    def __init__(self, flat: FlatParams, loss_fn: LossFn, strategy: str = "auto", chunk_size: int | None = None,
                 *, _choice: _Choice | None = None):
        resolve_strategy(strategy)
        self.flat = flat
        self.loss_fn = loss_fn
        self.strategy = strategy
        self.chunk_size = chunk_size
        self._choice = _choice if _choice is not None else _Choice(strategy, chunk_size)
        self._grad_and_value = grad_and_value(self._objective)

    def scoring(self, score_fn: LossFn) -> PopulationEvaluator:
        """An evaluator of the same network and strategy that scores by ``score_fn`` (accuracy, say);
        it follows this evaluator's ``auto`` decision."""
        return PopulationEvaluator(self.flat, score_fn, self.strategy, self.chunk_size, _choice=self._choice)

    # ------------------------------------------------------------- the choice
    @property
    def choice(self) -> tuple[str, int | None] | None:
        """``(strategy, chunk_size)`` in use: ``loop`` or ``vmap``; None while ``auto`` has not measured."""
        c = self._choice
        return (c.strategy, c.chunk_size) if c.decided else None

    @property
    def times(self) -> dict[str, float]:
        """Seconds ``auto`` measured for each candidate (``loop``, ``vmap``, ``vmap_chunk<k>``); empty otherwise."""
        return dict(self._choice.times)

    def tags(self) -> dict[str, str]:
        """The choice and its timings as run tags (``evaluation.*``)."""
        c = self._choice
        if not c.decided:
            return {}
        tags = {"evaluation.strategy": c.strategy, "evaluation.chunk_size": str(c.chunk_size),
                "evaluation.decided_by": "measurement" if self.strategy == "auto" else "config"}
        tags |= {f"evaluation.time_s.{name}": f"{t:.4f}" for name, t in c.times.items()}
        return tags

    def adopt(self, strategy: str, chunk_size: int | None, times: dict[str, float] | None = None) -> None:
        """Use ``(strategy, chunk_size)`` from now on (a resumed run keeps the choice its first part measured)."""
        if strategy not in ("loop", "vmap"):
            raise ValueError(f"cannot adopt evaluation strategy {strategy!r}")
        c = self._choice
        c.strategy, c.chunk_size, c.decided = strategy, chunk_size, True
        c.times = dict(times or {})

    def _candidates(self, n: int) -> list[tuple[str, str, int | None]]:
        """(name, strategy, chunk_size) that ``auto`` times on a population of ``n``."""
        found = [("loop", "loop", None), ("vmap", "vmap", self.chunk_size)]
        chunk = math.ceil(n / AUTO_CHUNKS)
        if self.chunk_size is None and 1 < chunk < n:
            found.append((f"vmap_chunk{chunk}", "vmap", chunk))
        return found

    def _decide(self, X: torch.Tensor, run: Callable[[str, int | None, torch.Tensor], object]):
        """Time each candidate on ``X`` (after a two-row warm-up), keep the fastest; returns its output."""
        times: dict[str, float] = {}
        best = None
        for name, strategy, chunk in self._candidates(X.shape[0]):
            try:
                run(strategy, chunk, X[:2])  # warms caches and lazy initialisation
                _sync(X.device)
                start = time.perf_counter()
                out = run(strategy, chunk, X)
                _sync(X.device)
                times[name] = time.perf_counter() - start
            except RuntimeError as err:  # a candidate that does not fit in memory is skipped
                if not _out_of_memory(err) or name == "loop":
                    raise
                if X.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            if best is None or times[name] < times[best[0]]:
                best = (name, strategy, chunk, out)  # only the fastest output so far is kept
            del out
        name, strategy, chunk, out = best
        self.adopt(strategy, chunk, times)
        return out

    # ------------------------------------------------------------ evaluation
    def _objective(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.loss_fn(self.flat(x, batch[0]), batch)

    def _check(self, X: torch.Tensor) -> None:
        if X.dim() != 2 or X.shape[1] != self.flat.dim:
            raise ValueError(f"population must be (n, {self.flat.dim}), got {tuple(X.shape)}")

    def _grads(self, strategy: str, chunk: int | None, X: torch.Tensor, batch: Batch):
        if strategy == "vmap":
            grads, losses = vmap(self._grad_and_value, in_dims=(0, None), chunk_size=chunk)(X, batch)
            return losses.detach(), grads.detach()
        if X.shape[0] == 1:  # one network: its gradient returned as it comes, not copied into a population
            v, g = self._row_grad(X[0], batch)
            return v.reshape(1), g.unsqueeze(0)
        losses = torch.empty(X.shape[0], dtype=X.dtype, device=X.device)
        grads = torch.empty_like(X)
        for i in range(X.shape[0]):
            losses[i], grads[i] = self._row_grad(X[i], batch)
        return losses, grads

    def _row_grad(self, x: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and gradient of one row ``x`` (D,) by plain autograd on the module's own parameters pointed at
        ``x`` (``FlatParams.bound``, which says what that saves): the same numbers, bit for bit, as
        ``torch.func.grad_and_value`` (the loop strategy before) and ``functional_call`` on a flat leaf."""
        with torch.enable_grad(), self.flat.bound(x) as params:
            loss = self.loss_fn(self.flat.module(batch[0]), batch)
            grads = torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)
        return loss.detach(), torch.cat([g.reshape(-1) for g in grads])

    def _losses(self, strategy: str, chunk: int | None, X: torch.Tensor, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            if strategy == "vmap":
                return vmap(self._objective, in_dims=(0, None), chunk_size=chunk)(X, batch)
            return torch.stack([self._objective(x, batch) for x in X])

    def __call__(self, X: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(X)
        X = X.detach()
        return self._run(X, lambda s, k, P: self._grads(s, k, P, batch))

    def losses(self, X: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Losses (n,) only, without gradients (validation and final scoring), by the same strategy."""
        self._check(X)
        X = X.detach()
        return self._run(X, lambda s, k, P: self._losses(s, k, P, batch))

    def _run(self, X: torch.Tensor, run: Callable[[str, int | None, torch.Tensor], object]):
        """``run(strategy, chunk_size, X)`` by the strategy in use: the loop for a single row, whatever the
        strategy (``auto`` measures on a population of two or more), else the choice, made now if not yet."""
        if X.shape[0] == 1:
            return run("loop", None, X)
        c = self._choice
        if not c.decided:
            return self._decide(X, run)
        return run(c.strategy, c.chunk_size, X)


def dataset_losses(evaluator: PopulationEvaluator, X: torch.Tensor, batches: Callable[[], Iterable[Batch]]) -> torch.Tensor:
    """Mean loss (n,) of each individual over every batch ``batches()`` yields, weighted by batch size."""
    total = torch.zeros(X.shape[0], dtype=torch.float64)
    count = 0
    for batch in batches():
        size = batch[0].shape[0]
        total += evaluator.losses(X, batch).double().cpu() * size
        count += size
    if count == 0:
        raise ValueError("no data to evaluate on")
    return total / count
