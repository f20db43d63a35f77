"""Model families: each evaluates the same under vmap as in a loop, matches its reference, and trains end to end."""

import mlflow
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.flat import FlatParams
from ggevo.lit.tasks import classification_loss, layer_reconstruction_loss
from ggevo.models import MLP, LeNet5, LSTMClassifier, StackedAutoencoder, TiedAutoencoder
from ggevo.pipeline.run.train import train
from tests.conftest import assert_close_in_float32


class UntiedAutoencoder(nn.Module):
    """A user's own model, known to the package only through ``model._target_``."""

    def __init__(self, inputs: int, hidden: int):
        super().__init__()
        self.encoder = nn.Linear(inputs, hidden)
        self.decoder = nn.Linear(hidden, inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(torch.sigmoid(self.encoder(x.flatten(1)))))


def _save_layer(path, module: nn.Module) -> None:
    """A ``knee_model.pt`` as ``train`` writes it: the parameters only."""
    torch.save({"state_dict": {k: v.detach().clone() for k, v in module.named_parameters()}}, path)


def _stacked_layer1(tmp_path) -> StackedAutoencoder:
    torch.manual_seed(1)
    _save_layer(tmp_path / "layer0.pt", TiedAutoencoder(30, 12))
    return StackedAutoencoder(30, [12, 5], layer=1, previous=str(tmp_path / "layer0.pt"))


CASES = {
    "mlp": (lambda tmp: MLP(20, [12, 8], 4, activation="tanh"), 20, classification_loss),
    "lstm": (lambda tmp: LSTMClassifier(inputs=5, steps=4, hidden=6, classes=4), 20, classification_loss),
    "lenet5_mnist": (lambda tmp: LeNet5(channels=1, size=28, classes=4), 784, classification_loss),
    "lenet5_cifar": (lambda tmp: LeNet5(channels=3, size=32, classes=4, activation="relu"), 3072, classification_loss),
    "stacked_layer1": (_stacked_layer1, 30, None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_vmap_equals_loop_equals_the_module(name, tmp_path):
    make, features, loss_fn = CASES[name]
    model = make(tmp_path)
    loss_fn = loss_fn or layer_reconstruction_loss(model)
    flat = FlatParams(model)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(4, flat.dim, generator=g) * 0.2
    batch = (torch.rand(6, features, generator=g), torch.randint(0, 4, (6,), generator=g))
    loss_loop, grad_loop = PopulationEvaluator(flat, loss_fn, "loop")(X, batch)
    loss_vmap, grad_vmap = PopulationEvaluator(flat, loss_fn, "vmap")(X, batch)
    torch.testing.assert_close(loss_vmap, loss_loop)
    # vmap batches the convolutions: other kernels, other summation orders (they differ by instruction set);
    # a weight's gradient sums over the minibatch and every position its kernel visits
    assert_close_in_float32(grad_vmap, grad_loop, terms=batch[0].shape[0] * features)
    assert (grad_loop.abs().sum(dim=1) > 0).all()
    flat.load_(X[2])
    with torch.no_grad():
        torch.testing.assert_close(loss_fn(model(batch[0]), batch), loss_loop[2])


@pytest.mark.parametrize("name", sorted(CASES) + ["relu_mlp"])
def test_one_network_by_its_own_parameters_is_functional_call_bit_for_bit(name, tmp_path):
    """The loop strategy's one network (``FlatParams.bound``: the module's parameters pointed at the row) gives the
    loss and gradient of ``functional_call`` on a flat leaf to the bit, zeros' signs included (a ReLU network's
    dead units give exact zeros), and leaves the module's own parameters as they were, an error or not."""
    if name == "relu_mlp":
        model, features, loss_fn = MLP(20, [12, 8], 4, activation="relu"), 20, classification_loss
    else:
        make, features, loss_fn = CASES[name]
        model = make(tmp_path)
        loss_fn = loss_fn or layer_reconstruction_loss(model)
    flat = FlatParams(model)
    before = [p.detach().clone() for p in flat.params]
    g = torch.Generator().manual_seed(3)
    X = torch.randn(3, flat.dim, generator=g) * 0.5
    X[:, ::4] = 0  # pruned entries, as the population has them
    batch = (torch.rand(6, features, generator=g) - 0.5, torch.randint(0, 4, (6,), generator=g))
    loss, grad = PopulationEvaluator(flat, loss_fn, "loop")(X, batch)
    for i in range(3):
        with torch.enable_grad():
            leaf = X[i].clone().requires_grad_()
            want = loss_fn(flat(leaf, batch[0]), batch)
            (want_grad,) = torch.autograd.grad(want, leaf)
        assert torch.equal(loss[i].view(1).view(torch.int32), want.detach().view(1).view(torch.int32))
        assert torch.equal(grad[i].view(torch.int32), want_grad.view(torch.int32))
    if name == "relu_mlp":
        assert bool((grad == 0).any())
    with pytest.raises(RuntimeError, match="inside"), flat.bound(X[0]):
        raise RuntimeError("inside")
    assert all(torch.equal(p, b) and p.grad is None for p, b in zip(flat.params, before))


def test_lstm_matches_torch_lstm():
    torch.manual_seed(0)
    ours = LSTMClassifier(inputs=5, steps=7, hidden=6, classes=3)
    ref = nn.LSTM(5, 6, batch_first=True)
    with torch.no_grad():
        ours.input_gates.weight.copy_(ref.weight_ih_l0)
        ours.input_gates.bias.copy_(ref.bias_ih_l0 + ref.bias_hh_l0)
        ours.hidden_gates.weight.copy_(ref.weight_hh_l0)
    x = torch.randn(4, 7 * 5)
    out, _ = ref(x.view(4, 7, 5))
    torch.testing.assert_close(ours(x), ours.head(out[:, -1]))


def test_lenet_zero_pads_small_images_to_32():
    torch.manual_seed(0)
    small, full = LeNet5(channels=1, size=28, classes=10), LeNet5(channels=1, size=32, classes=10)
    full.load_state_dict(small.state_dict())
    x = torch.rand(3, 28 * 28)
    padded = F.pad(x.view(3, 1, 28, 28), (2, 2, 2, 2)).flatten(1)
    torch.testing.assert_close(small(x), full(padded))
    with pytest.raises(ValueError, match="1x28x28 = 784"):
        small(torch.rand(3, 3072))


def test_mlp_layers_and_activation():
    model = MLP(6, [5, 4], 3, activation="sigmoid")
    x = torch.randn(2, 6)
    l1, l2, l3 = (m for m in model.modules() if isinstance(m, nn.Linear))
    expected = l3(torch.sigmoid(l2(torch.sigmoid(l1(x)))))
    torch.testing.assert_close(model(x), expected)
    assert FlatParams(model).dim == 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3
    with pytest.raises(ValueError, match="model.activation"):
        MLP(6, [5], 3, activation="gelu")


def test_stacked_layer_evolves_only_its_own_weights_on_the_frozen_code(tmp_path):
    torch.manual_seed(1)
    first = TiedAutoencoder(30, 12)
    _save_layer(tmp_path / "layer0.pt", first)
    second = StackedAutoencoder(30, [12, 5], layer=1, previous=str(tmp_path / "layer0.pt"))
    assert [n for n, _ in second.named_parameters()] == ["weight", "hidden_bias", "output_bias"]
    assert FlatParams(second).dim == 12 * 5 + 5 + 12
    x = torch.rand(4, 30)
    with torch.no_grad():
        code = first.encode(x)
        torch.testing.assert_close(second.layer_input(x), code)
        torch.testing.assert_close(second.encode(x), torch.sigmoid(code @ second.weight.T + second.hidden_bias))
        assert second(x).shape == (4, 12)
    # layer 2: one file per lower layer (parameters only, as train writes them) = one full stacked state
    _save_layer(tmp_path / "layer1.pt", second)
    from_list = StackedAutoencoder(30, [12, 5, 3], layer=2, previous=[str(tmp_path / "layer0.pt"),
                                                                       str(tmp_path / "layer1.pt")])
    torch.save({"state_dict": second.state_dict()}, tmp_path / "layer1_full.pt")  # with its frozen buffers
    from_full = StackedAutoencoder(30, [12, 5, 3], layer=2, previous=str(tmp_path / "layer1_full.pt"))
    torch.testing.assert_close(from_list.layer_input(x), from_full.layer_input(x))
    torch.testing.assert_close(from_full.layer_input(x), second.encode(x))
    with pytest.raises(ValueError, match="model.previous"):
        StackedAutoencoder(30, [10, 5], layer=1, previous=str(tmp_path / "layer0.pt"))
    with pytest.raises(ValueError, match="model.previous"):
        StackedAutoencoder(30, [12, 5], layer=1)


def _loss_min(cfg) -> list[float]:
    client = mlflow.tracking.MlflowClient(cfg.logger.tracking_uri)
    exp = client.get_experiment_by_name(cfg.logger.experiment_name)
    (run,) = client.search_runs([exp.experiment_id])
    history = sorted(client.get_metric_history(run.info.run_id, "loss/min"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(1, cfg.trainer.max_steps + 1))
    return [m.value for m in history]


CE = ["hv_ref=[1.1,3.0]"]
SHORT = ["data.batch_size=32", "trainer.max_steps=8"]
# a random 1,000-image subset of mnist5k (the source is sorted by label; limit samples across it)
SUBSET = ["data.limit=1000"]
FAMILIES = {
    "mlp": ["model=mlp", "~model.hidden", "data=digits", "model.widths=[16]", *CE,
            "data.batch_size=64", "trainer.max_steps=12"],
    "lstm": ["model=lstm", "model.hidden=8", *SUBSET, *CE, "data.batch_size=128", "trainer.max_steps=25"],
    "lenet5": ["model=lenet5", "~model.hidden", *SUBSET, *CE, "data.batch_size=128", "trainer.max_steps=15"],
    "stacked_ae": ["model=stacked_ae", "~model.hidden", "model.widths=[16,8]", "data.limit=300", *SHORT],
    "user_module": ["model._target_=tests.models.test_families.UntiedAutoencoder", "~model.sign_agreement",
                    "data.limit=300", *SHORT],
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_trains_end_to_end(family, compose_cfg, tmp_path):
    """A few generations on tiny data: the best minibatch loss of the last generation beats the first's."""
    cfg = compose_cfg(*FAMILIES[family], "optimizer.pop_size=8", "optimizer.compile=false",
                      "trainer.val_check_interval=100", "checkpoint.every_n_steps=100")
    hv = train(cfg)
    losses = _loss_min(cfg)
    assert losses[-1] < losses[0]
    assert hv > 0
    if family == "user_module":  # the package evolved the user's own parameters, under the user's names
        knee = torch.load(tmp_path / "run" / "knee_model.pt", weights_only=True)["state_dict"]
        assert set(knee) == {"encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"}


def test_stacked_layer1_evolves_from_the_layer0_run(compose_cfg, tmp_path):
    """Layer-wise training through the entry point: layer 1 loads layer 0's knee and evolves on its code."""
    common = ("model=stacked_ae", "~model.hidden", "model.widths=[16,8]", "data.limit=300",
              "optimizer.pop_size=6", "optimizer.compile=false", "trainer.max_steps=2")
    train(compose_cfg(*common, run="layer0"))
    knee_path = tmp_path / "layer0" / "knee_model.pt"
    cfg = compose_cfg(*common, "model.layer=1", f"model.previous={knee_path}", "trainer.max_steps=8",
                      "logger.experiment_name=layer1", run="layer1")
    train(cfg)
    losses = _loss_min(cfg)
    assert losses[-1] < losses[0]
    model = StackedAutoencoder(784, [16, 8], layer=1, previous=str(knee_path))
    knee = torch.load(knee_path, weights_only=True)["state_dict"]
    assert torch.equal(model.frozen_weight_0, knee["weight"]) and torch.equal(model.frozen_bias_0, knee["hidden_bias"])
    layer1 = torch.load(tmp_path / "layer1" / "knee_model.pt", weights_only=True)["state_dict"]
    assert layer1["weight"].shape == (8, 16)  # only layer 1's tied weight was evolved
