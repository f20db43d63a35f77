"""The LightningModule that drives GEMONN: manual optimization, one generation per training step."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytorch_lightning as pl
import torch
from torch import nn

from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.flat import FlatParams
from ggevo.ea.front import knee
from ggevo.ea.population import PopulationOptimizer
from ggevo.lit.status import publish, status_metrics
from ggevo.lit.tasks import extra_scores, loss_for

# what selection sees as a network's f2: its loss on the training minibatch that also gives its gradient
# (the paper), or its figure of merit on a batch of the validation split: the loss, or for a classifier
# the error rate (forward only: no gradient evaluation, nothing of the budget)
SELECT_ON = ("train", "val")


class HeldOutScore:
    """``training`` (the training minibatch's losses and gradients) with each row's held-out score as its f2:
    ``EvolutionModule._held_out`` on generation ``t``'s validation batch, fetched only when a score is taken (a
    trunk or warm-up generation between held-out scores calls ``training`` alone, and ``held_out`` for a row
    that has no score to keep: ``GEMONN._evaluate_when_due``)."""

    def __init__(self, module: EvolutionModule, training: Callable, t: int, last: bool = False):
        self.module, self.training, self.t = module, training, t
        self.last = last  # the run's last generation: its scores are taken, due or not

    def _batch(self) -> list[torch.Tensor]:
        return self.module.trainer.datamodule.selection_stream().batch(self.t)[:2]

    def __call__(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.module._held_out(self.training, self._batch(), X)

    def held_out(self, X: torch.Tensor) -> torch.Tensor:
        """The held-out score (n,) of each row of ``X`` alone: no gradient, nothing of the budget."""
        return self.module._held_out_scores(self._batch(), X)


class EvolutionModule(pl.LightningModule):
    """Evolves ``model``'s parameters with the optimizer that ``optimizer(params)`` builds.

    Each training step draws the next minibatch and runs ``opt.step()`` once, so
    ``global_step``, ``max_steps`` and checkpoint intervals count generations. The optimizer's
    status dict is logged as it comes; validation scores the front on the validation split.

    ``select_on="val"``: the f2 each network is selected by is its score on generation ``t``'s batch of
    the validation split (``datamodule.selection_stream()``): the loss, and for a classifier the error
    rate, the figure a front member is picked by; the gradient (and so the budget's evaluation and the
    network's step) still comes from the training minibatch. On a small training set a classifier's
    training loss reaches ~0 at every density, and selection on it keeps whichever sparse network
    memorised it; held-out cross-entropy punishes the confident dense networks that classify best (the
    front fell to one sparse member: docs/RESULTS.md, "Held-out selection").
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., PopulationOptimizer],
        task: str = "reconstruction",
        evaluation: str = "auto",
        chunk_size: int | None = None,
        select_on: str = "train",
    ):
        super().__init__()
        if select_on not in SELECT_ON:
            raise ValueError(f"optimizer.select_on: must be one of {', '.join(SELECT_ON)}, got {select_on!r}")
        self.select_on = select_on
        self.automatic_optimization = False
        self.model = model
        self.task = task
        self.loss_fn = loss_for(task, model)
        self.flat = FlatParams(model)
        self.evaluator = PopulationEvaluator(self.flat, self.loss_fn, evaluation, chunk_size)
        self.scorers = {"loss": self.evaluator} | {k: self.evaluator.scoring(fn) for k, fn in extra_scores(task).items()}
        self.optimizer_factory = optimizer
        self.first_front: torch.Tensor | None = None
        self._val_sums: dict[str, torch.Tensor] = {}
        self._val_count = 0
        self.val_losses: torch.Tensor | None = None
        self.validated_step: int | None = None  # the last generation validated (saved in checkpoints)
        self._owed_validation = False
        self._catching_up = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def state_dict(self, *args, **kwargs) -> dict:
        """The model's parameters, which hold the front's knee: written first where the last generations
        recorded no status (``PopulationOptimizer.load_knee``), so a checkpoint holds the knee."""
        trainer = self._trainer
        if trainer is not None and trainer.optimizers:
            trainer.optimizers[0].load_knee()
        return super().state_dict(*args, **kwargs)

    def configure_optimizers(self) -> PopulationOptimizer:
        return self.optimizer_factory(self.model.parameters())

    @property
    def gemonn(self) -> PopulationOptimizer:
        return self.optimizers().optimizer

    @property
    def has_front(self) -> bool:
        return self.gemonn.initialized

    @property
    def hv_ref(self) -> tuple[float, float]:
        return self.gemonn.hp["hv_ref"]

    def front(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The final non-dominated members ``(X (k×D), F (k×2))``, by rising density."""
        return self.gemonn.front()

    def band_members(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each density band's best network that the front lacks (``PopulationOptimizer.band_members``)."""
        return self.gemonn.band_members()

    def training_step(self, batch, batch_idx: int) -> None:
        x, y, t = batch
        if int(t) != self.global_step:
            raise RuntimeError(f"minibatch of step {int(t)} arrived at generation {self.global_step}")
        evaluate = partial(self.evaluator, batch=(x, y))
        if self.select_on != "train":
            evaluate = HeldOutScore(self, evaluate, int(t), last=int(t) + 1 == self.trainer.max_steps)
        status = self.optimizers().step(closure=lambda: evaluate)
        if self.first_front is None:
            self.first_front = self.gemonn.front()[1].detach().cpu().clone()
        # the step is the generation (1, 2, …), as is Lightning's global_step after the update; straight to
        # the recorder, so an interrupted run has recorded every generation it finished (a trunk generation
        # between the trunk's records has no status)
        if status is not None:
            publish(self, status_metrics(status), int(status["generation"]))

    def _held_out(self, evaluate, batch, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``evaluate(X)``'s gradients with each row's held-out score on ``batch``: its error rate for a
        classifier, else its loss (non-finite where its training loss is: a diverged network stays out)."""
        loss, grad = evaluate(X)
        held_out = self._held_out_scores(batch, X).to(loss.dtype)
        return torch.where(torch.isfinite(loss), held_out, loss), grad

    def _held_out_scores(self, batch, X: torch.Tensor) -> torch.Tensor:
        """Each row's score on the held-out ``batch``: its error rate for a classifier, else its loss."""
        batch = [b.to(X.device) for b in batch]
        if "accuracy" in self.scorers:
            return 1.0 - self.scorers["accuracy"].losses(X, batch)
        return self.evaluator.losses(X, batch)

    # -------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_sums, self._val_count = {}, 0

    def validation_step(self, batch, batch_idx: int) -> None:
        opt = self.optimizers().optimizer
        if not opt.initialized or not self.validation_due(self.global_step):
            return
        X, _ = opt.front()
        size = batch[0].shape[0]
        for name, scorer in self.scorers.items():
            sums = scorer.losses(X, batch).double() * size
            self._val_sums[name] = sums + self._val_sums.get(name, 0.0)
        self._val_count += size

    def on_validation_epoch_end(self) -> None:
        if not self._val_sums:
            return
        means = {name: (sums / self._val_count).cpu() for name, sums in self._val_sums.items()}
        self.val_losses = means["loss"]
        _, F = self.optimizers().optimizer.front()
        k = knee(F)
        metrics = {"val/loss_min": float(self.val_losses.min()), "val/loss_knee": float(self.val_losses[k])}
        if "accuracy" in means:
            metrics |= {"val/accuracy_max": float(means["accuracy"].max()),
                        "val/accuracy_knee": float(means["accuracy"][k])}
        publish(self, metrics, self.global_step, progress=not self._catching_up)  # Lightning's step lags one
        self.validated_step = self.global_step

    def on_train_end(self) -> None:
        """The run's last generation may have recorded no status: the model ends holding the knee all the same."""
        if self.has_front:
            self.gemonn.load_knee()

    def on_train_start(self) -> None:
        """A run resumed from a checkpoint taken before its step's validation finished validates that step now."""
        if not self._owed_validation:
            return
        self._owed_validation, self._catching_up = False, True
        self.on_validation_epoch_start()
        for i, batch in enumerate(self.trainer.datamodule.val_dataloader()):
            self.validation_step(self.transfer_batch_to_device(batch, self.device, 0), i)
        self.on_validation_epoch_end()
        self._catching_up = False

    def validation_due(self, step: int) -> bool:
        """Whether the validation after generation ``step`` scores the front: during a trunk only where its
        checkpoint is due (``checkpoint_due``), at ``val_check_interval · pop_size`` and at its last; else at each
        validation. A trunk's front is the trunk and the networks not yet branched from it, unchanged since
        initialisation: validated every 50 of its 8,000 generations, the trunk preset's validation took 1.8 s of
        the paper autoencoder's run, and 1.0 s so (``benchmarks/README.md``, "a twenty-fifth session")."""
        interval = getattr(self._trainer, "val_check_interval", None) if self._trainer is not None else None
        return not isinstance(interval, int) or self.checkpoint_due(step, interval)

    # -------------------------------------------------------------- checkpoint
    def checkpoint_due(self, step: int, every: int) -> bool:
        """Whether generation ``step`` takes the periodic checkpoint (``lit.last_checkpoint.GenerationCheckpoint``):
        every ``every`` generations, and during a trunk, whose generations score one network where a
        population's score ``pop_size`` or more, every ``every · pop_size`` and at its last. A trunk generation
        costs about as much as a gradient baseline's step, and a checkpoint of the whole population (64 MB at
        the paper's size) every 50 of them cost a fifth of the trunk's time."""
        hp = self.gemonn.hp
        trunk = hp.get("trunk", 0)
        if step <= trunk:
            return step == trunk or step % (every * hp["pop_size"]) == 0
        return step % every == 0

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ggevo"] = {"first_front": self.first_front, "validated_step": self.validated_step}
        if self.evaluator.choice is not None:  # a resumed run evaluates as its first part did
            checkpoint["ggevo"]["evaluation"] = {"choice": self.evaluator.choice, "times": self.evaluator.times}
        if self.logger is not None and getattr(self.logger, "run_id", None):
            checkpoint["ggevo"]["mlflow_run_id"] = self.logger.run_id

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.first_front = checkpoint.get("ggevo", {}).get("first_front")
        interval, step = getattr(self._trainer, "val_check_interval", None), checkpoint["global_step"]
        self._owed_validation = (isinstance(interval, int) and step > 0 and step % interval == 0
                                 and checkpoint.get("ggevo", {}).get("validated_step") != step)
        evaluation = checkpoint.get("ggevo", {}).get("evaluation")
        if evaluation is not None and self.evaluator.strategy == "auto":
            self.evaluator.adopt(*evaluation["choice"], evaluation["times"])
        # The generation count is the authority on where the minibatch stream stands: a resumed
        # run continues with the batch the interrupted one would have drawn next. (This hook
        # runs before Lightning starts iterating, and prefetching, the training data.)
        stream = getattr(self.trainer.datamodule, "stream", None) if self._trainer is not None else None
        if hasattr(stream, "seek"):
            stream.seek(checkpoint["global_step"])
