"""Downstream accuracy (CCR) of an autoencoder's encoder (docs/ALGORITHM.md, "After evolution").

The encoder of a chosen front member gets a softmax classifier on its hidden layer; the whole
network is fine-tuned on the training split (paper: SGD lr 0.1, momentum 0.9, 20 epochs) and
scored on the test split, once per seed (the seed draws the classifier's initial weights and
the order of the minibatches). With ``keep_zeros`` the encoder's zeros are held at zero, so the
accuracy is that of the sparse network the front offers.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ggevo.data.datamodule import ArrayDataModule
from ggevo.ea.flat import FlatParams
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.score.artifacts import choose_member


@dataclass(frozen=True)
class ClassifierRecipe:
    """The classifier's training: the paper's values by default."""

    epochs: int = 20
    lr: float = 0.1
    momentum: float = 0.9
    batch_size: int = 128
    keep_zeros: bool = True


class EncoderClassifier(nn.Module):
    """``logits = head(model.encode(x))`` for an autoencoder ``model`` with an ``encode`` method."""

    def __init__(self, model: nn.Module, hidden: int, classes: int):
        super().__init__()
        if not callable(getattr(model, "encode", None)):
            raise ConfigError(f"downstream accuracy needs an autoencoder with encode(); "
                              f"{type(model).__name__} has none (use a run of model=tied_ae)")
        self.autoencoder = model
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.autoencoder.encode(x.flatten(1)))


def classifier_for(model: nn.Module, member: torch.Tensor, classes: int, seed: int) -> EncoderClassifier:
    """A copy of ``model`` holding the flat parameters ``member`` (D,), with a fresh head drawn from ``seed``."""
    model = copy.deepcopy(model)
    FlatParams(model).load_(member)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return EncoderClassifier(model, int(getattr(model, "hidden")), classes)


def _accuracy(net: nn.Module, batches) -> float:
    right = total = 0
    with torch.no_grad():
        for x, y in batches:
            right += int((net(x).argmax(dim=1) == y).sum())
            total += len(y)
    return right / total


def fine_tune(net: EncoderClassifier, data: ArrayDataModule, recipe: ClassifierRecipe, seed: int) -> float:
    """Train ``net`` on the train split by ``recipe``; its test accuracy."""
    x, y = data.splits["train"]
    masks = [(p, p != 0) for p in net.autoencoder.parameters()] if recipe.keep_zeros else []
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"downstream fine-tuning diverged (loss {float(loss)}): lower --lr")
            loss.backward()
            opt.step()
            with torch.no_grad():
                for p, mask in masks:
                    p.mul_(mask)
    return _accuracy(net, data.batches("test"))


def downstream_accuracy(model: nn.Module, member: torch.Tensor, data: ArrayDataModule, seeds: list[int],
                        recipe: ClassifierRecipe = ClassifierRecipe()) -> dict[str, float]:
    """Test accuracy of ``member``'s encoder + softmax after fine-tuning, over ``seeds``: mean, std, each."""
    data.setup()
    classes = int(max(int(y.max()) for _, y in data.splits.values() if len(y)) + 1)
    accs = [fine_tune(classifier_for(model, member, classes, s), data, recipe, s) for s in seeds]
    out = {"test_accuracy_mean": statistics.fmean(accs),
           "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0}
    out.update({f"test_accuracy_seed{s}": a for s, a in zip(seeds, accs)})
    return out


def downstream_record(model: nn.Module, X: torch.Tensor, table: dict, data: ArrayDataModule, select: str,
                      seeds: list[int], recipe: ClassifierRecipe) -> tuple[dict[str, float], dict]:
    """CCR of the front member (row of ``X`` (k×D) and ``table``) that ``select`` picks; returns the
    ``downstream/*`` metrics to log and the record for ``downstream.json``."""
    i = choose_member(table, select)
    density = float(table["density"][i])
    result = downstream_accuracy(model, X[i], data, seeds, recipe)
    record = {"select": select, "member": i, "density": density, "train_loss": float(table["train_loss"][i]),
              "seeds": seeds, "recipe": asdict(recipe), **result}
    print(f"downstream accuracy ({select}, density {density:.3f}): "
          f"{result['test_accuracy_mean']:.4f} ± {result['test_accuracy_std']:.4f} over {len(seeds)} seeds")
    return {"downstream/density": density} | {f"downstream/{k}": v for k, v in result.items()}, record
