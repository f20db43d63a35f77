"""The LightningModule the sparse baselines share: networks trained by one gradient optimizer along a
``Plan``, their snapshots the run's front.

Every network is a copy of the model with its own parameters; one optimizer (``optimizer(params)``,
e.g. Adam) holds them all. An elementwise optimizer gives a parameter without a gradient no step and
no state change, so networks that share it train exactly as with one optimizer each, and one
``step()`` a Lightning step keeps ``global_step`` counting steps (manual optimization counts
optimizer steps). A method says what happens around each network's forward and step (the hooks
``before_forward``, ``after_backward``, ``after_step``) and when a network is snapshotted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.flat import FlatParams
from ggevo.lit.gradient import check_converging, snapshot_front
from ggevo.lit.sparse.magnitude import effective, tensor_targets
from ggevo.lit.sparse.targets import Plan
from ggevo.lit.status import point_status, publish
from ggevo.lit.tasks import loss_for

STATUS_EVERY = 50  # steps between status records, as the dense baselines


class SparseModule(pl.LightningModule):
    """Trains ``len(plan.begin)`` networks (``model`` and copies of it) along ``plan``; ``front()`` is
    their snapshots in the order taken."""

    def __init__(self, model: nn.Module, optimizer: Callable[..., torch.optim.Optimizer], plan: Plan,
                 task: str = "reconstruction", hv_ref: Sequence[float] = (1.1, 0.3)):
        super().__init__()
        self.automatic_optimization = False
        # scoring happens on an untouched copy, through the same evaluator as the EA's
        self.evaluator = PopulationEvaluator(FlatParams(copy.deepcopy(model)), loss_for(task, model), "vmap")
        self.networks = nn.ModuleList([model, *(copy.deepcopy(model) for _ in plan.begin[1:])])
        self.targets = [tensor_targets(net) for net in self.networks]
        self.loss_fn = loss_for(task, model)
        self.optimizer_factory = optimizer
        self.plan = plan
        self.task = task
        self.hv_ref = tuple(hv_ref)
        self.snapshots: list[torch.Tensor] = []
        self.snapshot_loss: list[float] = []
        self.first_front = None
        # the untrained network's loss: the yardstick of divergence for every network of the run (a network that
        # starts from a trained one, pruned, may start near 0, and its ordinary noise would read as divergence)
        self._first_loss: float | None = None
        self._trained: list[tuple[int, float]] = []

    @property
    def model(self) -> nn.Module:
        """The first network (the dense one where a method has one)."""
        return self.networks[0]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.networks.parameters())

    # ------------------------------------------------------------------ a method's hooks
    def before_forward(self, i: int, t: int) -> None:
        """Network ``i`` is about to take its step ``t`` (0, 1, …)."""

    def after_backward(self, i: int, t: int) -> None:
        """Network ``i``'s gradients of step ``t`` are in its parameters' ``.grad``."""

    def after_step(self, i: int, t: int) -> None:
        """The optimizer has stepped network ``i`` (step ``t``)."""

    def snapshot_due(self, i: int, done: int) -> bool:
        """Whether network ``i`` joins the front after its ``done``-th step (by default, after its last)."""
        return done == self.plan.end[i] - self.plan.begin[i]

    # ------------------------------------------------------------------ training
    def effective(self, i: int) -> torch.Tensor:
        """Network ``i``'s parameters as trained (masks applied), flattened in FlatParams' order."""
        return effective(self.targets[i])

    def training_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        step = self.global_step
        opt = self.optimizers()
        opt.zero_grad()
        self._trained = []
        # a Python loop over networks: several train at once only with budget_per_density=whole
        for i in self.plan.active(step):
            t = step - self.plan.begin[i]
            self.before_forward(i, t)
            loss = self.loss_fn(self.networks[i](x), (x, y))
            value = float(loss.detach())
            if self._first_loss is None:
                self._first_loss = value
            check_converging(value, self._first_loss, step)
            self.manual_backward(loss)
            self.after_backward(i, t)
            self._trained.append((i, value))
        opt.step()
        for i, _ in self._trained:
            self.after_step(i, step - self.plan.begin[i])

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        done = self.global_step  # already counts this step
        for i, loss in self._trained:
            if self.snapshot_due(i, done - self.plan.begin[i]):
                self.snapshots.append(self.effective(i).clone())
                self.snapshot_loss.append(loss)
        if self._trained and (done % STATUS_EVERY == 0 or done == self.plan.steps):
            i, loss = self._trained[-1]
            x = self.effective(i)
            density = float(torch.count_nonzero(x)) / x.numel()
            publish(self, point_status(done, self.plan.evaluations(done), density, loss, len(self.snapshots) or 1,
                                       self.hv_ref), done)

    @property
    def has_front(self) -> bool:
        return bool(self.snapshots)

    def front(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The snapshots (k×D) in the order taken and their (density, last minibatch loss) (k×2)."""
        return snapshot_front(self.snapshots, self.snapshot_loss)
