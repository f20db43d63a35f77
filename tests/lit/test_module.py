"""``EvolutionModule``'s held-out selection (``optimizer.select_on: val``): what f2 is, and a run with it."""

from functools import partial

import torch

from ggevo.data import ArrayDataModule
from ggevo.ea import GEMONN
from ggevo.lit.module import EvolutionModule
from ggevo.models import MLP
from ggevo.models.autoencoder import TiedAutoencoder
from tests.conftest import full_and_resumed


def _module(model, task: str) -> EvolutionModule:
    return EvolutionModule(model, partial(GEMONN, pop_size=4, compile=False), task=task, evaluation="loop",
                           select_on="val")


def test_a_classifier_is_selected_on_its_held_out_error_rate_and_steps_on_its_training_gradient():
    data = ArrayDataModule("digits", batch_size=32, normalize="standard")
    data.setup()
    torch.manual_seed(0)
    module = _module(MLP(inputs=64, widths=[16], classes=10), "classification")
    X = torch.randn(3, module.flat.dim) * 0.3
    train_batch = data.stream.batch(0)[:2]
    held_out = data.selection_stream().batch(0)[:2]
    assert len(held_out[0]) == len(data.splits["val"][0])  # the whole validation split (180 < eval_batch_size)
    train_loss, train_grad = module.evaluator(X, train_batch)
    train_loss[1] = torch.inf  # a diverged network stays out
    f2, grad = module._held_out(lambda rows: (train_loss, train_grad), held_out, X)
    for i in (0, 2):
        logits = torch.func.functional_call(module.model, dict(zip(
            [n for n, _ in module.model.named_parameters()], module.flat.layout.split(X[i]))), (held_out[0],))
        error = (logits.argmax(dim=1) != held_out[1]).float().mean()
        assert abs(float(f2[i]) - float(error)) < 1e-6
    assert torch.isinf(f2[1]) and torch.equal(grad, train_grad)


def test_an_autoencoder_is_selected_on_its_held_out_loss():
    data = ArrayDataModule("digits", batch_size=32, normalize="standard")
    data.setup()
    module = _module(TiedAutoencoder(inputs=64, hidden=8), "reconstruction")
    X = torch.randn(2, module.flat.dim) * 0.3
    held_out = data.selection_stream().batch(3)[:2]
    f2, _ = module._held_out(partial(module.evaluator, batch=data.stream.batch(3)[:2]), held_out, X)
    assert torch.allclose(f2, module.evaluator.losses(X, held_out))


def test_a_run_selected_on_held_out_data_resumes_exactly(compose_cfg, tmp_path):
    run = ("model=mlp", "~model.hidden", "model.widths=[16]", "data=digits", "optimizer=gemonn_plus_gradual",
           "optimizer.pop_size=4", "optimizer.warmup=1", "optimizer.trunk=4", "optimizer.trunk_fraction=null",
           "hv_ref=[1.1,1.1]")
    a, b = full_and_resumed(compose_cfg, tmp_path, run, steps=9, split=6)
    for key in ("X", "F", "M"):
        assert torch.equal(a[key], b[key]), key
    wrong = a["F"][:, 1] * 60  # f2 is the held-out error rate: a whole number of the 60 validation images wrong
    assert torch.allclose(wrong, wrong.round(), atol=1e-3) and bool((a["F"][:, 1] <= 1).all())
