"""Gradient baselines in the schema of an evolutionary run: dense SGD/Adam and iterative magnitude pruning.

One training step is one gradient evaluation (one forward + backward of one network on one
minibatch), so ``max_steps`` is the evaluation budget an EA run is compared at. Iterative
magnitude pruning (IMP) splits the budget into equal stages down a density schedule: at each
stage's start the weights are pruned globally by magnitude to that density
(``torch.nn.utils.prune``) and training goes on with the zeros held; each stage's end is a
point of its (density, loss) curve. Dense training is IMP with the schedule ``[1.0]``. The other
sparse-training baselines (GMP, RigL, one-shot pruning) are in ``ggevo.lit.sparse``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.utils import prune

from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.flat import FlatParams
from ggevo.ea.front import count_within
from ggevo.lit.status import point_status, publish
from ggevo.lit.tasks import loss_for


# a minibatch loss this many times the first one means the gradient steps diverged, whatever the task
DIVERGED = 100.0


def check_converging(loss: float, first: float, step: int) -> None:
    """Raises when a minibatch ``loss`` is not finite or ``DIVERGED`` times the ``first`` one."""
    if not math.isfinite(loss) or loss > DIVERGED * abs(first):
        raise FloatingPointError(f"optimizer.lr: training diverged (loss {loss:.4g} at step {step}, "
                                 f"{first:.4g} at the start): lower the learning rate")


def snapshot_front(snapshots: Sequence[torch.Tensor], losses: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Snapshots (each (D,)) as a front: ``X`` (k×D) and ``F`` (k×2) of (density, last minibatch loss)."""
    if not snapshots:
        raise RuntimeError("no stage has finished yet")
    X = torch.stack(list(snapshots))
    F = torch.stack(((X != 0).sum(1).double() / X.shape[1], torch.tensor(list(losses)).double()), 1)
    return X, F.to(X.dtype)


def stage_bounds(budget: int, stages: int) -> list[int]:
    """First step of each of ``stages`` equal stages of ``budget`` steps (the last takes the remainder)."""
    if stages < 1 or budget < stages:
        raise ValueError(f"need at least one step per pruning stage: budget {budget}, {stages} stages")
    return [k * (budget // stages) for k in range(stages)]


def check_schedule(schedule: Sequence[float]) -> list[float]:
    """The pruning schedule as floats: densities starting at 1.0 and falling, all positive."""
    schedule = [float(d) for d in schedule]
    if not schedule or schedule[0] != 1.0 or any(b >= a for a, b in zip(schedule, schedule[1:])) \
            or schedule[-1] <= 0:
        raise ValueError(f"optimizer.prune_schedule: densities must start at 1.0 and fall, got {schedule}")
    return schedule


class GradientModule(pl.LightningModule):
    """Trains ``model`` with ``optimizer(params)`` down ``schedule`` (densities, first 1.0)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        task: str = "reconstruction",
        schedule: Sequence[float] = (1.0,),
        budget: int = 1000,
        hv_ref: Sequence[float] = (1.1, 0.3),
    ):
        super().__init__()
        schedule = check_schedule(schedule)
        self.model = model
        self.task = task
        self.loss_fn = loss_for(task, model)
        self.optimizer_factory = optimizer
        self.schedule = schedule
        self.starts = stage_bounds(budget, len(schedule))
        self.budget = budget
        self.hv_ref = tuple(hv_ref)
        # scoring happens on an untouched copy, through the same evaluator as the EA's
        self.evaluator = PopulationEvaluator(FlatParams(copy.deepcopy(model)), self.loss_fn, "vmap")
        self._targets = [(m, n) for m in model.modules() for n, p in m.named_parameters(recurse=False)
                         if p.requires_grad]
        self.snapshots: list[torch.Tensor] = []
        self.snapshot_loss: list[float] = []
        self.first_front = None
        self.first_loss: float | None = None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.model.parameters())

    def effective(self) -> torch.Tensor:
        """The parameters as trained (masks applied), flattened in FlatParams' order."""
        return torch.cat([getattr(m, n).detach().reshape(-1) for m, n in self._targets])

    def density(self) -> float:
        x = self.effective()
        return float(torch.count_nonzero(x)) / x.numel()

    def _prune(self, stage: int) -> None:
        # the fraction of the entries still unpruned, counted as torch counts a fractional amount, and one more
        # where the stage would otherwise sit above its density as a density budget (ea.front.count_within)
        from ggevo.lit.sparse.magnitude import unpruned  # here: ggevo.lit.sparse's modules import this one

        amount = 1.0 - self.schedule[stage] / self.schedule[stage - 1]
        remaining = unpruned(self._targets)
        size = sum(getattr(m, n).numel() for m, n in self._targets)
        keep = count_within(remaining - round(amount * remaining), size, self.schedule[stage])
        prune.global_unstructured(self._targets, pruning_method=prune.L1Unstructured, amount=remaining - keep)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        step = self.global_step
        if step in self.starts[1:]:
            self._prune(self.starts.index(step))
        loss = self.loss_fn(self.model(x), (x, y))
        if self.first_loss is None:
            self.first_loss = float(loss.detach())
        check_converging(float(loss.detach()), self.first_loss, step)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        step = self.global_step  # already counts this batch
        loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
        density = self.density() if step % 50 == 0 or step == self.budget or step in self.starts else None
        if step in self.starts[1:] or step == self.budget:
            self.snapshots.append(self.effective().clone())
            self.snapshot_loss.append(loss)
        if density is not None:
            publish(self, point_status(step, step, density, loss, len(self.snapshots) or 1, self.hv_ref), step)

    @property
    def has_front(self) -> bool:
        return bool(self.snapshots)

    def front(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each stage's final parameters (k×D) and their (density, last minibatch loss) (k×2)."""
        return snapshot_front(self.snapshots, self.snapshot_loss)
