"""The tied autoencoder's sign agreement: one kernel, the same bits as the eager rule it replaced."""

import pytest
import torch

from ggevo.compiling import compile_available
from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.flat import FlatParams
from ggevo.lit.tasks import reconstruction_loss
from ggevo.models import TiedAutoencoder, autoencoder
from ggevo.pipeline.core.numerics import flush_denormals

TINY = torch.finfo(torch.float32).tiny


def _five_pass_rule(ctx, g_enc, g_dec):
    """``_TiedUse.backward`` as it was before the kernel: the sum, then zeros where the parts disagree."""
    total = g_enc + g_dec
    if ctx.agree:
        total = torch.where(g_enc * g_dec < 0, torch.zeros_like(total), total)
    return total, None


def _awkward_pairs(n: int = 1 << 21) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs of every kind the rule meets (n of them, enough that torch and the kernel split them over threads):
    both signs, ±0, subnormals against normals (DAZ reads a subnormal as 0), products that underflow, inf, NaN."""
    g = torch.Generator().manual_seed(0)
    values = torch.tensor([0.0, -0.0, 1.0, -1.0, 3e-3, -3e-3, TINY / 3, -TINY / 3, 1e-30, -1e-30,
                           float("inf"), float("-inf"), float("nan")])
    a = values[torch.randint(len(values), (n,), generator=g)] * (torch.rand(n, generator=g) + 0.5)
    b = values[torch.randint(len(values), (n,), generator=g)] * (torch.rand(n, generator=g) + 0.5)
    return a, b


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t.view(torch.int64)


@pytest.mark.skipif(not compile_available(torch.device("cpu")), reason="torch.compile needs a C++ compiler")
@pytest.mark.parametrize("flush", [True, False])
def test_the_compiled_agreed_sum_is_the_eager_rule_bit_for_bit(flush):
    a, b = _awkward_pairs()
    try:
        flush_denormals(flush)
        for dtype in (torch.float32, torch.float64):
            x, y = a.to(dtype), b.to(dtype)
            eager = torch.where(x * y < 0, torch.zeros_like(x), x + y)
            fused = autoencoder._AgreedSum.apply(x, y)
            assert torch.equal(_bits(fused), _bits(eager)), (flush, dtype)
            assert bool((fused == 0).any() & (eager != eager).any())  # both kinds of entry were met
    finally:
        flush_denormals(False)


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_sign_agreement_gives_the_five_pass_rules_numbers_bit_for_bit(monkeypatch, strategy):
    torch.manual_seed(0)
    flat = FlatParams(TiedAutoencoder(inputs=64, hidden=24, sign_agreement=True))
    X = torch.randn(7, flat.dim) * 0.5
    X[:, :64 * 24] *= torch.rand(7, 64 * 24) < 0.5  # sparse rows, as the population's
    batch = (torch.rand(16, 64),)
    loss, grad = PopulationEvaluator(flat, reconstruction_loss, strategy)(X, batch)
    chunked = PopulationEvaluator(flat, reconstruction_loss, strategy, chunk_size=3)(X, batch)
    monkeypatch.setattr(autoencoder._TiedUse, "backward", staticmethod(_five_pass_rule))
    ref_loss, ref_grad = PopulationEvaluator(flat, reconstruction_loss, strategy)(X, batch)
    assert torch.equal(_bits(loss), _bits(ref_loss)) and torch.equal(_bits(grad), _bits(ref_grad))
    assert torch.equal(_bits(chunked[1]), _bits(ref_grad))
    assert bool((grad[:, :64 * 24] == 0).any())  # the rule zeroed some tied entries


def test_the_agreed_sums_own_gradient_is_the_rules():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(40, dtype=torch.float64, generator=g).requires_grad_()
    b = torch.randn(40, dtype=torch.float64, generator=g).requires_grad_()
    assert torch.autograd.gradcheck(autoencoder._AgreedSum.apply, (a, b))
    unbatched = torch.randn(40, dtype=torch.float64, generator=g)
    batched = torch.func.vmap(autoencoder._AgreedSum.apply, in_dims=(0, None))(torch.stack([a, b]).detach(), unbatched)
    assert torch.equal(batched, torch.stack([autoencoder.agreed_sum(a, unbatched), autoencoder.agreed_sum(b, unbatched)]))
