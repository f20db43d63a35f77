"""``EvolutionModule``'s held-out selection (``optimizer.select_on: val``): what f2 is, and a run with it."""

import csv
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


def held_out_steps(monkeypatch) -> list[int]:
    """The global step of every held-out scoring from now on (``EvolutionModule._held_out``, still run)."""
    calls = []
    scored = EvolutionModule._held_out
    monkeypatch.setattr(EvolutionModule, "_held_out",
                        lambda self, *a: calls.append(self.global_step) or scored(self, *a))
    return calls


def test_the_trunk_takes_its_held_out_score_only_when_due_and_nothing_else_changes(compose_cfg, tmp_path, monkeypatch):
    """The trunk selects nothing: between its records (``operators.trunk.trunk_record_due``: its status and its
    held-out score) a trunk generation costs one training evaluation and no validation pass, and the run ends
    where one that scores the trunk every generation ends, bit for bit, stopped and resumed mid-trunk or not."""
    from ggevo.ea.operators import trunk
    from ggevo.pipeline.run.train import train

    run = ("model=mlp", "~model.hidden", "model.widths=[16]", "data=digits", "optimizer=gemonn_plus_gradual",
           "optimizer.pop_size=4", "optimizer.warmup=1", "optimizer.trunk=12", "optimizer.trunk_fraction=null",
           "hv_ref=[1.1,1.1]")
    calls = held_out_steps(monkeypatch)
    monkeypatch.setattr(trunk, "TRUNK_RECORDS", 3)  # every 4th of 12 trunk generations
    sparse, resumed = full_and_resumed(compose_cfg, tmp_path, run, steps=16, split=6)
    trunk_calls = sorted(step + 1 for step in calls if step < 12)  # the generation (1-based) of each trunk score
    # the uninterrupted run and the resumed one, each at 1, 4, 8, 12; the stopped run also at its last, 6
    assert trunk_calls == [1, 1, 4, 4, 6, 8, 8, 12, 12]
    for folder in ("full", "part"):  # the trunk's status is recorded with its held-out score, then each generation's
        with open(tmp_path / folder / "history.csv") as f:
            steps = [int(row["step"]) for row in csv.DictReader(f)]
        assert steps == [1, 4, *([6] if folder == "part" else []), 8, 12, 13, 14, 15, 16], folder
    monkeypatch.setattr(trunk, "TRUNK_RECORDS", 1000)  # every generation, as before the rule
    train(compose_cfg(*run, "trainer.max_steps=16", "checkpoint.every_n_steps=6", run="every"))
    ckpt = torch.load(tmp_path / "every" / "checkpoints" / "last.ckpt", weights_only=False)
    every = ckpt["optimizer_states"][0]["state"][0]
    after = 1 + 3 * 2  # generations 13-16: one of warm-up (parents), three of parents and children
    assert len(calls) == 2 * (4 + after) + 1 + (12 + after)  # the two runs above (one stopped and resumed), this one
    for key in ("X", "F", "M", "V", "T"):  # G: not in a checkpoint (GEMONN.state_dict)
        assert torch.equal(sparse[key], every[key]), key
        assert torch.equal(sparse[key], resumed[key]), key


def test_a_warm_up_takes_its_held_out_score_only_when_due_and_nothing_else_changes(compose_cfg, tmp_path, monkeypatch):
    """``optimizer.warmup_records``: a warm-up selects nothing, so between its records (its status and its held-out
    score) a warm-up generation costs its training evaluations alone, and the run ends where one that scores every
    warm-up generation ends, bit for bit, stopped and resumed mid-warm-up or not."""
    from ggevo.pipeline.run.train import train

    run = ("model=mlp", "~model.hidden", "model.widths=[16]", "data=digits", "optimizer=gemonn_plus_gradual",
           "optimizer.pop_size=4", "optimizer.warmup=8", "optimizer.trunk=4", "optimizer.trunk_fraction=null",
           "hv_ref=[1.1,1.1]")
    calls = held_out_steps(monkeypatch)
    sparse, resumed = full_and_resumed(compose_cfg, tmp_path, (*run, "+optimizer.warmup_records=2"), steps=16, split=6)
    warm_calls = sorted(step + 1 for step in calls if 4 <= step < 12)  # the generation (1-based) of each warm-up score
    # warm-up generations 5-12 recorded at its 1st, 4th and 8th (5, 8, 12); the stopped run also at its last, 6
    assert warm_calls == [5, 5, 6, 8, 8, 12, 12]
    for folder in ("full", "part"):  # the status only with the held-out score: trunk (every generation), warm-up, after
        with open(tmp_path / folder / "history.csv") as f:
            steps = [int(row["step"]) for row in csv.DictReader(f)]
        assert steps == [1, 2, 3, 4, 5, *([6] if folder == "part" else []), 8, 12, 13, 14, 15, 16], folder
    before = len(calls)
    train(compose_cfg(*run, "trainer.max_steps=16", "checkpoint.every_n_steps=6", run="every"))
    every = torch.load(tmp_path / "every" / "checkpoints" / "last.ckpt",
                       weights_only=False)["optimizer_states"][0]["state"][0]
    assert sorted(step + 1 for step in calls[before:] if 4 <= step < 12) == list(range(5, 13))  # every one
    for key in ("X", "F", "M", "V", "T"):  # G: not in a checkpoint (GEMONN.state_dict)
        assert torch.equal(sparse[key], every[key]), key
        assert torch.equal(sparse[key], resumed[key]), key
