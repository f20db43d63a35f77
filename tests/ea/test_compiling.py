"""The population-wide kernels: one row's density and finiteness as the compiled kernel gives them."""

import pytest
import torch

from ggevo.ea.compiling import compile_available, density_and_finite, maybe_compiled, row_density_and_finite


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.skipif(
    not compile_available(torch.device("cpu")), reason="torch.compile needs a C++ compiler"))])
def test_one_rows_density_and_finiteness_are_the_kernels_bit_for_bit(compiled):
    """A single CPU row (a trunk generation) is counted by NumPy: the same density, bit for bit, as the eager and
    the compiled kernel give for any count (negative zeros are zeros, NaN is nonzero), and the same finiteness."""
    g = torch.Generator().manual_seed(0)
    kernel = maybe_compiled(row_density_and_finite, compiled)
    for dtype, ints in ((torch.float32, torch.int32), (torch.float64, torch.int64)):
        for trial in range(12):
            X = torch.randn(1, 3001, generator=g).to(dtype)
            X[torch.rand(1, 3001, generator=g) < trial / 11] = 0
            X[0, :5] = -0.0
            X[0, 5] = float("nan") if trial % 2 else 1.0
            G = torch.randn(1, 3001, generator=g).to(dtype)
            G[0, trial] = (float("nan"), float("inf"), -float("inf"), 1.0)[trial % 4]
            density, finite = density_and_finite(X, G, compiled)
            want_density, want_finite = kernel(X, G)
            assert torch.equal(density.view(ints), want_density.view(ints)), (dtype, trial)
            assert torch.equal(finite, want_finite) and bool(finite) == (trial % 4 == 3)
