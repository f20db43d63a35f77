"""``ggevo.compiling``: a call with an empty tensor builds no graph, and inductor takes the CPU's listed
vector instructions without test builds unless the environment says otherwise."""

import pytest
import torch
import torch._inductor.config as inductor_config
from torch._dynamo.utils import counters

from ggevo.compiling import _trust_cpu_flags, compile_available, maybe_compiled


def _scaled_rows(X: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A function no other test compiles, so the graphs counted here are its own."""
    return X * w + 1.0


@pytest.mark.skipif(not compile_available(torch.device("cpu")), reason="torch.compile needs a C++ compiler")
def test_a_call_with_no_rows_runs_eager_and_builds_no_graph():
    fn = maybe_compiled(_scaled_rows, True)
    w = torch.tensor(2.0)
    before = counters["stats"]["unique_graphs"]
    assert fn(torch.zeros(0, 5), w).shape == (0, 5)
    assert counters["stats"]["unique_graphs"] == before
    X = torch.randn(3, 5)
    assert torch.equal(fn(X, w), _scaled_rows(X, w))
    assert counters["stats"]["unique_graphs"] == before + 1
    assert fn(torch.zeros(0, 5), w=w).shape == (0, 5)  # by keyword too
    assert counters["stats"]["unique_graphs"] == before + 1


def test_inductor_trusts_the_cpu_flags_unless_the_environment_sets_it(monkeypatch):
    monkeypatch.setattr(inductor_config.cpp, "vec_isa_ok", None)
    monkeypatch.setenv("TORCHINDUCTOR_VEC_ISA_OK", "0")
    _trust_cpu_flags()
    assert inductor_config.cpp.vec_isa_ok is None
    monkeypatch.delenv("TORCHINDUCTOR_VEC_ISA_OK")
    _trust_cpu_flags()
    assert inductor_config.cpp.vec_isa_ok is True
