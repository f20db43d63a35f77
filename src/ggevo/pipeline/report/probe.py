"""Linear probe: how well each front member's frozen encoder features separate the classes.

The downstream accuracy (``score/downstream.py``) fine-tunes one chosen encoder with a softmax head over a
few seeds, so it mixes what the encoder learned with how it trains on. The probe standardises the
hidden layer's activations on the training split (each unit to mean 0, variance 1: a unit's scale
then costs nothing) and fits a multinomial logistic regression to them (scikit-learn's, L2 penalty
``C``, deterministic), scored on the test split, for every member at once: which
densities of a front hold features a linear classifier can use, independent of fine-tuning. On the
bench autoencoder the candidate's encoders and the baselines' scored alike, within what ``C`` moves
(docs/RESULTS.md, "The autoencoder's downstream cell over six fine-tuning seeds, and what the linear probe shows").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from ggevo.data.datamodule import ArrayDataModule
from ggevo.ea.flat import FlatParams
from ggevo.pipeline.core.errors import ConfigError

# The regression's inverse L2 strength, chosen on the bench autoencoder's encoders (500 units, MNIST-5k's 4,000
# training images): 0.1 fits 99.5-99.8% of the training images whatever the encoder, 0.01 95.4-96.6%, 0.001 91-92%,
# and the test accuracy moves by a point with C, more than between the methods (docs/RESULTS.md, "The autoencoder's
# downstream cell over six fine-tuning seeds, and what the linear probe shows"). On the digits autoencoder 64-32-64
# (seed 0) 0.01 fits 89-92% of its training images and 0.1 scores higher on test for 7 of 8 members, by up to 3.3
# points: compare methods at one C, and read more than one.
PROBE_C = 0.01


def check_probe_c(C: float) -> None:
    """The probe's ``C`` must be a positive number (one line naming the option otherwise)."""
    if not C > 0:
        raise ConfigError(f"--probe-c must be positive, got {C}")


def _features(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.encode(x.flatten(1)).double().numpy()


def linear_probe(model: nn.Module, X: torch.Tensor, data: ArrayDataModule, C: float = PROBE_C,
                 progress: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, list[float]]:
    """Train and test accuracy of a logistic regression on the encoder features of each row of ``X`` (k×D,
    flat parameters of ``model``, an autoencoder with ``encode``): ``{"train_accuracy": [k], "test_accuracy": [k]}``.
    ``progress(i, scores)`` is called after each member. ``model``'s own parameters are not written."""
    if not callable(getattr(model, "encode", None)):
        raise ConfigError(f"a linear probe needs an autoencoder with encode(); {type(model).__name__} has none "
                          "(use a run of model=tied_ae)")
    check_probe_c(C)
    data.setup()
    (x_train, y_train), (x_test, y_test) = data.splits["train"], data.splits["test"]
    if len(y_test) == 0:
        raise ConfigError("a linear probe needs a test split; this data set has none")
    flat = FlatParams(model)
    out: dict[str, list[float]] = {"train_accuracy": [], "test_accuracy": []}
    for i, member in enumerate(X):
        with flat.bound(member):
            f_train, f_test = _features(model, x_train), _features(model, x_test)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(f_train, y_train.numpy())
        scores = {"train_accuracy": float(clf.score(f_train, y_train.numpy())),
                  "test_accuracy": float(clf.score(f_test, y_test.numpy()))}
        for k, v in scores.items():
            out[k].append(v)
        if progress is not None:
            progress(i, scores)
    return out
