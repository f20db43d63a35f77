"""Population evaluation: the vmap strategy equals the loop, both equal plain autograd."""

import pytest
import torch

from ggevo.ea.evaluate import PopulationEvaluator, dataset_losses, resolve_strategy
from ggevo.ea.flat import FlatParams
from ggevo.lit.tasks import reconstruction_loss
from ggevo.models import TiedAutoencoder, autoencoder


def _setup(sign_agreement=False, n=6):
    torch.manual_seed(0)
    model = TiedAutoencoder(inputs=30, hidden=7, sign_agreement=sign_agreement)
    flat = FlatParams(model)
    X = torch.randn(n, flat.dim) * 0.5
    batch = (torch.rand(16, 30), torch.zeros(16, dtype=torch.long))
    return model, flat, X, batch


def _autograd(X_row, batch, inputs=30, hidden=7):
    x = X_row.clone().requires_grad_()
    w = x[: inputs * hidden].view(hidden, inputs)
    bh = x[inputs * hidden : inputs * hidden + hidden]
    bo = x[inputs * hidden + hidden :]
    h = torch.sigmoid(batch[0] @ w.T + bh)
    loss = ((torch.sigmoid(h @ w + bo) - batch[0]) ** 2).mean()
    (g,) = torch.autograd.grad(loss, x)
    return loss.detach(), g


def test_loop_equals_autograd_and_vmap_equals_loop():
    _, flat, X, batch = _setup()
    loss_loop, grad_loop = PopulationEvaluator(flat, reconstruction_loss, "loop")(X, batch)
    loss_vmap, grad_vmap = PopulationEvaluator(flat, reconstruction_loss, "vmap")(X, batch)
    for i in range(X.shape[0]):
        loss, grad = _autograd(X[i], batch)
        torch.testing.assert_close(loss_loop[i], loss)
        torch.testing.assert_close(grad_loop[i], grad)
    torch.testing.assert_close(loss_vmap, loss_loop)
    torch.testing.assert_close(grad_vmap, grad_loop, rtol=1e-5, atol=1e-7)
    chunked = PopulationEvaluator(flat, reconstruction_loss, "vmap", chunk_size=4)(X, batch)
    torch.testing.assert_close(chunked[1], grad_loop, rtol=1e-5, atol=1e-7)
    forward_only = PopulationEvaluator(flat, reconstruction_loss, "vmap").losses(X, batch)
    torch.testing.assert_close(forward_only, loss_loop)


def test_evaluation_never_writes_the_module():
    model, flat, X, batch = _setup()
    before = flat.current().clone()
    PopulationEvaluator(flat, reconstruction_loss, "loop")(X, batch)
    assert torch.equal(flat.current(), before)


def test_sign_agreement_zeroes_disagreeing_tied_gradients():
    _, flat, X, batch = _setup(sign_agreement=True)
    _, g_agree = PopulationEvaluator(flat, reconstruction_loss, "loop")(X, batch)
    _, flat_plain, _, _ = _setup(sign_agreement=False)
    _, g_plain = PopulationEvaluator(flat_plain, reconstruction_loss, "vmap")(X, batch)
    w = slice(0, 210)
    zeroed = (g_agree[:, w] == 0) & (g_plain[:, w] != 0)
    assert zeroed.float().mean() > 0.1
    kept = g_agree[:, w] != 0
    torch.testing.assert_close(g_agree[:, w][kept], g_plain[:, w][kept])
    torch.testing.assert_close(g_agree[:, 210:], g_plain[:, 210:])  # biases are not tied
    _, g_vmap = PopulationEvaluator(flat, reconstruction_loss, "vmap")(X, batch)
    torch.testing.assert_close(g_vmap, g_agree, rtol=1e-5, atol=1e-7)


def test_plain_tied_weights_give_the_custom_functions_numbers_bit_for_bit(monkeypatch):
    """Without sign agreement the tied weight is used twice and autograd sums the two parts; the numbers are
    those the custom Function (``_TiedUse``, kept for sign agreement) gave before, exactly."""
    _, flat, X, batch = _setup()
    plain = {s: PopulationEvaluator(flat, reconstruction_loss, s)(X, batch) for s in ("loop", "vmap")}

    def through_the_function(self, x):
        w_enc, w_dec = autoencoder._TiedUse.apply(self.weight, False)
        return torch.sigmoid(self.encode(x.flatten(1), w_enc) @ w_dec + self.output_bias)

    monkeypatch.setattr(TiedAutoencoder, "forward", through_the_function)
    for strategy, (loss, grad) in plain.items():
        loss_fn, grad_fn = PopulationEvaluator(flat, reconstruction_loss, strategy)(X, batch)
        assert torch.equal(loss, loss_fn) and torch.equal(grad, grad_fn), strategy


def test_dataset_losses_weight_batches_by_size():
    _, flat, X, batch = _setup()
    ev = PopulationEvaluator(flat, reconstruction_loss, "loop")
    whole = ev.losses(X, batch)
    parts = [(batch[0][:10], batch[1][:10]), (batch[0][10:], batch[1][10:])]
    torch.testing.assert_close(dataset_losses(ev, X, lambda: parts).float(), whole)


def test_strategy_names():
    assert resolve_strategy("loop") == "loop" and resolve_strategy("auto") == "auto"
    with pytest.raises(ValueError, match="strategy"):
        resolve_strategy("threads", torch.device("cpu"))


def test_auto_times_every_candidate_and_returns_exactly_what_its_choice_computes():
    _, flat, X, batch = _setup(n=8)
    auto = PopulationEvaluator(flat, reconstruction_loss, "auto")
    assert auto.choice is None and auto.tags() == {}
    loss, grad = auto(X, batch)
    strategy, chunk = auto.choice
    assert set(auto.times) == {"loop", "vmap", "vmap_chunk2"} and all(t > 0 for t in auto.times.values())
    fastest = min(auto.times, key=auto.times.get)
    assert (strategy, chunk) == {"loop": ("loop", None), "vmap": ("vmap", None), "vmap_chunk2": ("vmap", 2)}[fastest]
    same = PopulationEvaluator(flat, reconstruction_loss, strategy, chunk)
    ref_loss, ref_grad = same(X, batch)
    assert torch.equal(loss, ref_loss) and torch.equal(grad, ref_grad)
    # later calls and derived scorers keep the choice, without measuring again
    times = auto.times
    assert torch.equal(auto.losses(X, batch), same.losses(X, batch))
    assert auto.scoring(reconstruction_loss).choice == (strategy, chunk) and auto.times == times
    tags = auto.tags()
    assert tags["evaluation.strategy"] == strategy and tags["evaluation.decided_by"] == "measurement"
    assert {k.removeprefix("evaluation.time_s.") for k in tags if k.startswith("evaluation.time_s.")} == set(times)


def test_auto_decided_on_losses_alone_and_adopt_overrides():
    _, flat, X, batch = _setup(n=4)
    auto = PopulationEvaluator(flat, reconstruction_loss, "auto")
    losses = auto.losses(X, batch)
    strategy, chunk = auto.choice
    assert torch.equal(losses, PopulationEvaluator(flat, reconstruction_loss, strategy, chunk).losses(X, batch))
    auto.adopt("loop", None, {"loop": 1.0})
    assert auto.choice == ("loop", None) and auto.times == {"loop": 1.0}
    with pytest.raises(ValueError, match="adopt"):
        auto.adopt("auto", None)
    explicit = PopulationEvaluator(flat, reconstruction_loss, "vmap")
    assert explicit.choice == ("vmap", None) and explicit.tags()["evaluation.decided_by"] == "config"


@pytest.mark.parametrize("strategy", ["vmap", "loop", "auto"])
def test_one_row_is_evaluated_by_the_loop_whatever_the_strategy(strategy):
    _, flat, X, batch = _setup(n=3)
    loop = PopulationEvaluator(flat, reconstruction_loss, "loop")
    ev = PopulationEvaluator(flat, reconstruction_loss, strategy)
    loss, grad = ev(X[1:2], batch)
    ref_loss, ref_grad = loop(X, batch)
    assert loss.shape == (1,) and grad.shape == (1, flat.dim)
    assert torch.equal(loss, ref_loss[1:2]) and torch.equal(grad, ref_grad[1:2])  # bit for bit
    assert torch.equal(ev.losses(X[1:2], batch), loop.losses(X, batch)[1:2])
    if strategy == "auto":  # one network measures nothing: the choice waits for a population
        assert ev.choice is None
        ev(X, batch)
        assert ev.choice is not None and set(ev.times) >= {"loop", "vmap"}
