"""Graded-density initialisation and bounds (docs/ALGORITHM.md, "Population and initialisation")."""

import math

import pytest
import torch

from ggevo.ea.flat import ParamLayout
from ggevo.ea.init import box_bounds, initial_population


def test_graded_densities_are_i_over_n():
    layout = ParamLayout([torch.Size([100, 200]), torch.Size([100])])
    n = 10
    X = initial_population(layout, n, generator=torch.Generator().manual_seed(0))
    density = (X != 0).float().mean(dim=1)
    expected = torch.arange(1, n + 1) / n
    assert torch.allclose(density, expected, atol=0.02)


def test_ungraded_population_is_dense_and_rows_differ():
    layout = ParamLayout([torch.Size([50, 40])])
    X = initial_population(layout, 4, graded=False, generator=torch.Generator().manual_seed(0))
    assert bool((X != 0).all())
    assert not torch.equal(X[0], X[1])


@pytest.mark.parametrize("scheme,limit", [("xavier", math.sqrt(6 / 300)), ("reference", 6 / math.sqrt(300))])
def test_initialiser_ranges(scheme, limit):
    layout = ParamLayout([torch.Size([100, 200]), torch.Size([100])])
    X = initial_population(layout, 2, scheme=scheme, graded=False, generator=torch.Generator().manual_seed(0))
    weights, biases = X[:, :20000], X[:, 20000:]
    assert weights.abs().max() <= limit and weights.abs().max() > 0.95 * limit
    if scheme == "xavier":
        assert torch.all(biases == 0.01)
    else:
        assert biases.abs().max() <= limit and biases.std() > 0.3 * limit


def test_bounds_clip_the_initial_population():
    layout = ParamLayout([torch.Size([10, 10]), torch.Size([10])])
    lo, hi = box_bounds(layout, weight_bound=0.05, bias_bound=20.0)
    assert hi[:100].eq(0.05).all() and hi[100:].eq(20.0).all()
    X = initial_population(layout, 4, scheme="reference", lower=lo, upper=hi, generator=torch.Generator())
    assert X[:, :100].abs().max() <= 0.05


def test_geometric_grading_spans_min_density_to_one_and_spares_exempt_entries():
    layout = ParamLayout([torch.Size([200, 300]), torch.Size([200])])
    exempt = ~layout.is_weight()
    X = initial_population(layout, 5, min_density=0.01, exempt=exempt, generator=torch.Generator().manual_seed(0))
    density = (X[:, :60000] != 0).float().mean(dim=1)
    assert torch.allclose(density, torch.tensor([0.01, 0.01**0.75, 0.1, 0.01**0.25, 1.0]), rtol=0.1)
    assert bool((X[:, 60000:] != 0).all())


def test_initial_densities_are_exact_counts_within_each_budget():
    """``initial_densities``: row i holds exactly floor(d_i · D) nonzero entries, the exempt ones among them, so
    its density is d_i or just under (never over a density budget d_i); the others are drawn at random."""
    layout = ParamLayout([torch.Size([200, 300]), torch.Size([200])])
    exempt = ~layout.is_weight()
    wanted = [0.02, 0.05, 0.1, 0.25, 1.0, 0.1]
    X = initial_population(layout, 6, densities=wanted, exempt=exempt, generator=torch.Generator().manual_seed(0))
    counts = (X != 0).sum(dim=1)
    assert counts.tolist() == [math.floor(d * layout.dim) for d in wanted]
    assert bool((counts.double() / layout.dim <= torch.tensor(wanted, dtype=torch.float64)).all())
    assert bool((X[:, 60000:] != 0).all())  # the exempt biases are all kept
    assert not torch.equal(X[2] != 0, X[5] != 0)  # two rows of one density: two draws
    with pytest.raises(ValueError, match="initial_densities"):
        from ggevo.ea.gemonn import GEMONN
        GEMONN([torch.nn.Parameter(torch.zeros(4, 3))], pop_size=4, initial_densities=[0.1, 0.5])


def test_exact_densities_hold_min_density_grid_exactly():
    """``exact_densities``: the ``min_density`` grid (``geometric_densities``, the one the drawn masks use), each
    row holding exactly floor(d_i · D) entries, exempt biases among them, so the sparsest row is within
    ``min_density`` as a budget; drawn (the default), a row's count is binomial and the sparsest of a small network
    sits above it on some seeds. Without ``min_density`` the option fails, naming its key."""
    from ggevo.ea.gemonn import GEMONN
    from ggevo.ea.init import geometric_densities
    model = torch.nn.Sequential(torch.nn.Linear(100, 200), torch.nn.ReLU(), torch.nn.Linear(200, 10))  # D = 22,210
    params = list(model.parameters())
    grid = geometric_densities(10, 0.02)
    assert torch.allclose(grid, torch.tensor([0.02 ** (1 - i / 9) for i in range(10)], dtype=torch.float64))
    exact = GEMONN(params, pop_size=10, min_density=0.02, exact_densities=True, exempt_biases=True, seed=3)
    counts = (exact._initial_population() != 0).sum(dim=1)
    dim = exact.layout.dim
    assert counts.tolist() == [math.floor(d * dim) for d in grid.tolist()]
    assert counts[0] / dim <= 0.02
    above = [int((GEMONN(params, pop_size=10, min_density=0.02, exempt_biases=True, seed=s)._initial_population() != 0)
                 .sum(dim=1)[0]) for s in range(4)]
    assert all(c > 0.02 * dim for c in above)  # drawn: the 210 exempt biases come on top of 2% of the weights
    with pytest.raises(ValueError, match="exact_densities"):
        GEMONN(params, pop_size=10, exact_densities=True)
