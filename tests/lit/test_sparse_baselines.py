"""The sparse-training baselines (GMP, RigL, one-shot) against the property that defines each.

Hand-computed fixtures for the pure pieces (schedule, ERK, drop-and-grow, cosine), then each module
trained by a real Lightning Trainer on a small sigmoid MLP, watched step by step by a callback.
"""

import math

import pytest
import pytorch_lightning as pl
import torch

from ggevo.data.stream import MinibatchStream
from ggevo.ea.front import within
from ggevo.lit.gradient import GradientModule
from ggevo.lit.sparse import GMPModule, OneShotModule, RigLModule
from ggevo.lit.sparse.erk import erk_counts, random_masks
from ggevo.lit.sparse.gmp import gmp_schedule
from ggevo.lit.sparse.rigl import drop_and_grow, update_fraction
from ggevo.lit.sparse.targets import TARGET_DENSITIES, check_target_densities, kept, per_density
from ggevo.models import MLP

TARGETS = list(TARGET_DENSITIES)
D = 10 * 12 + 12 + 12 * 4 + 4  # the small MLP's parameters


def small_mlp() -> MLP:
    torch.manual_seed(0)
    return MLP(10, [12], 4, activation="sigmoid")  # sigmoid: no dead unit, so no gradient is exactly zero


def adam(params):
    return torch.optim.Adam(params, lr=0.01)


class Watch(pl.Callback):
    """Records each step: every network's effective weights before and after, RigL's masks, the gradients
    each network's backward left, and how many backward passes reached each network (evaluations)."""

    def __init__(self):
        self.before, self.after, self.masks_before, self.masks_after, self.grads = [], [], [], [], []
        self.evaluations = 0

    def on_fit_start(self, trainer, module):
        for net in module.networks:
            last = list(net.parameters())[-1]
            last.register_post_accumulate_grad_hook(lambda p: setattr(self, "evaluations", self.evaluations + 1))

    def _state(self, module):
        weights = [module.effective(i).clone() for i in range(len(module.networks))]
        masks = [[m.clone() for m in h.buffers()] for h in module.masks] if hasattr(module, "masks") else None
        return weights, masks

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        weights, masks = self._state(module)
        self.before.append(weights)
        self.masks_before.append(masks)
        self.grads.append({})

    def on_after_backward(self, trainer, module):
        for i, net in enumerate(module.networks):
            if i not in self.grads[-1] and any(p.grad is not None for p in net.parameters()):
                self.grads[-1][i] = [p.grad.clone() for p in net.parameters()]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        weights, masks = self._state(module)
        self.after.append(weights)
        self.masks_after.append(masks)


def fit(module, steps: int) -> Watch:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(96, 10, generator=g), torch.randint(0, 4, (96,), generator=g)
    watch = Watch()
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", callbacks=[watch])
    trainer.fit(module, train_dataloaders=MinibatchStream(x, y, 16, seed=0))
    assert trainer.global_step == steps
    return watch


def nonzero(x: torch.Tensor) -> int:
    return int(torch.count_nonzero(x))


# ---------------------------------------------------------------- targets and budget split
def test_a_network_kept_for_a_density_is_within_it_as_a_budget():
    """To the nearest entry, one fewer only where the nearest is above the budget's tolerance: unchanged on the
    bench's networks (0.02 of LeNet-5's 61,706 entries is 1,234.12: 1,234), one fewer on a small one."""
    assert kept(0.02, 61_706) == 1234 and kept(0.02, 266_610) == 5332 and kept(0.5, 266_610) == 133_305
    assert kept(0.02, 2144) == 42 and kept(0.05, 4130) == 206  # nearest 43 (0.02006) and 207 (0.05012)
    for size in (184, 2144, 3075, 4130, 6570, 61_706):
        for d in TARGETS:
            k = kept(d, size)
            assert within(k / size, d) and k in (round(d * size), round(d * size) - 1), (size, d)


def test_imp_stages_sit_within_their_densities_on_a_small_network():
    """IMP prunes a fraction of what is left at each stage, counted as torch counts it: on 184 entries its last
    stage would keep 4 (0.0217, above 0.02 as a budget); it keeps 3."""
    module = GradientModule(small_mlp(), adam, task="classification", schedule=[1.0, *TARGETS], budget=60)
    for stage in range(1, len(TARGETS) + 1):
        module._prune(stage)
        assert within(module.density(), TARGETS[stage - 1]), stage
    assert int(torch.count_nonzero(module.effective())) == 3


def test_target_densities_must_fall_within_zero_and_one():
    assert check_target_densities([0.5, 0.02]) == [0.5, 0.02]
    for bad in ([], [0.5, 0.5], [0.1, 0.5], [1.0, 0.5], [0.5, 0.0], ["a"]):
        with pytest.raises(ValueError, match=r"^optimizer\.target_densities: "):
            check_target_densities(bad)


def test_split_shares_the_budget_and_whole_gives_it_to_each():
    split = per_density(0, 103, 5, "split")
    assert (split.begin, split.end) == ((0, 20, 40, 60, 80), (20, 40, 60, 80, 103))
    assert split.evaluations(103) == 103 and split.active(45) == [2]
    whole = per_density(7, 10, 5, "whole")
    assert whole.active(7) == [0, 1, 2, 3, 4] and whole.evaluations(17) == 50
    with pytest.raises(ValueError, match=r"^optimizer\.budget_per_density: "):
        per_density(0, 100, 5, "half")


# ---------------------------------------------------------------- GMP
def test_gmp_schedule_hand_computed():
    """120 steps, Δt=10 from t0=12 to 90: n=7 updates. The cubic's densities 0.637, 0.377, 0.203, 0.097,
    0.043, 0.0229, 0.02; each update that passes a target lands on it."""
    cubic = lambda t: 0.02 + 0.98 * (1 - (t - 12) / 70) ** 3  # noqa: E731
    schedule = gmp_schedule(120, TARGETS, update_every=10, prune_start=0.1, prune_end=0.75)
    assert [t for t, _ in schedule] == [22, 32, 42, 52, 62, 72, 82]
    assert [d for _, d in schedule] == pytest.approx([cubic(22), 0.5, 0.25, 0.1, 0.05, cubic(72), 0.02], abs=1e-12)
    assert cubic(22) == pytest.approx(0.63714, abs=1e-5) and cubic(72) == pytest.approx(0.022857, abs=1e-6)


def test_gmp_schedule_is_the_cubic_except_where_it_lands_on_a_target():
    t0, dt, n = 100, 10, 65  # 1000 steps, updates from 10% to 75%
    schedule = gmp_schedule(1000, TARGETS, update_every=dt, prune_start=0.1, prune_end=0.75)
    assert [t for t, _ in schedule] == [t0 + k * dt for k in range(1, n + 1)]
    previous, landed = 1.0, []
    for t, d in schedule:
        cubic = 0.02 + 0.98 * (1 - (t - t0) / (n * dt)) ** 3
        if d in TARGETS and cubic <= d + 1e-9:
            landed.append(d)
            assert previous > d  # it passed the target on this update, and stops there
        else:
            assert d == pytest.approx(cubic, rel=1e-12)
        previous = d
    assert landed == TARGETS and schedule[-1][1] == 0.02


def test_gmp_schedule_too_coarse_to_land_on_every_target_is_an_error():
    with pytest.raises(ValueError, match=r"^optimizer\.update_every: 3 mask updates"):
        gmp_schedule(120, TARGETS, update_every=20)


def test_gmp_density_follows_the_schedule_and_snapshots_sit_at_the_targets():
    module = GMPModule(small_mlp(), adam, task="classification", budget=120, target_densities=TARGETS,
                       update_every=10, prune_start=0.1, prune_end=0.75)
    watch = fit(module, 120)
    updates = dict(module.schedule)
    density = 1.0
    for t in range(120):
        density = updates.get(t, density)  # an update happens before step t's forward
        assert nonzero(watch.after[t][0]) == kept(density, D), t
    X, F = module.front()
    assert (X != 0).sum(1).tolist() == [D, *(kept(d, D) for d in TARGETS)]
    # each snapshot within its target as a density budget, at most one entry under it (0.02 of 184 is 3.68:
    # 4 entries, 0.0217, would be above the budget, so 3)
    assert all(within(f, d) and f >= d - 1.5 / D for f, d in zip(F[:, 0].tolist(), [1.0, *TARGETS]))
    assert kept(0.02, D) == 3
    # each snapshot is the network after its last step at that density: dense before the first update (22);
    # 0.5, reached at 32, until the update at 42; … 0.05 until 72; 0.02, reached at 82, at the end
    for row, done in zip(X, [22, 42, 52, 62, 72, 120]):
        assert torch.equal(row, watch.after[done - 1][0])


def test_gmp_pruned_weights_stay_zero_and_masks_are_nested():
    module = GMPModule(small_mlp(), adam, task="classification", budget=120, target_densities=TARGETS,
                       update_every=10)
    watch = fit(module, 120)
    updates = {t for t, _ in module.schedule}
    for t in range(1, 120):
        zero_before, zero_now = watch.after[t - 1][0] == 0, watch.after[t][0] == 0
        assert bool(zero_now[zero_before].all()), t  # once pruned, zero for good
        if t not in updates:
            assert torch.equal(zero_now, zero_before), t  # between updates the mask does not move


# ---------------------------------------------------------------- RigL pieces
def test_update_fraction_is_the_cosine_decay():
    assert update_fraction(0, 0.3, 90) == pytest.approx(0.3)
    assert update_fraction(30, 0.3, 90) == pytest.approx(0.3 * 0.75)  # cos(π/3) = 1/2
    assert update_fraction(45, 0.3, 90) == pytest.approx(0.15)
    assert update_fraction(90, 0.3, 90) == pytest.approx(0.0, abs=1e-12)


def test_drop_and_grow_hand_checked():
    weight = torch.tensor([0.5, -0.1, 0.0, 0.3, 0.0, -0.05, 0.0])
    given = (weight.clone(),)
    mask = torch.tensor([1, 1, 0, 1, 0, 1, 0], dtype=torch.bool)
    # drop the 2 smallest active |w|: entries 5 (0.05) and 1 (0.1); keep 0 and 3
    grad = torch.tensor([9.0, 0.2, 0.9, 9.0, 0.1, 0.05, 0.15])
    new, grown = drop_and_grow(weight, mask, grad, 2)
    # grow the 2 largest |grad| outside the kept set {0, 3}: entry 2 (0.9) and entry 1 (0.2, just dropped)
    assert new.tolist() == [True, True, True, True, False, False, False]
    assert grown.tolist() == [False, False, True, False, False, False, False]  # entry 1 was active: not new
    grad = torch.tensor([9.0, -0.01, -0.9, 9.0, 0.4, 0.02, 0.15])
    new, grown = drop_and_grow(weight, mask, grad, 2)
    assert new.tolist() == [True, False, True, True, True, False, False]
    assert grown.tolist() == [False, False, True, False, True, False, False]
    assert int(new.sum()) == int(mask.sum())
    assert torch.equal(weight, given[0]) and mask.tolist() == [1, 1, 0, 1, 0, 1, 0]  # inputs untouched


def test_erk_counts_hand_computed():
    shapes = [torch.Size([4, 6]), torch.Size([6]), torch.Size([6, 2])]  # ratios 10/24, 1, 8/12
    # density 0.5 of 42: ε = 21 / (10 + 6 + 8) = 0.875; shares 8.75, 5.25, 7 → floors 8, 5, 7, one more for 8.75
    assert erk_counts(shapes, 0.5) == [9, 5, 7]
    # density 0.8: the bias (ratio 1) then the 6×2 tensor go dense; ε = 15.6 / 10, the 4×6 tensor keeps 15.6, and
    # the total is kept(0.8, 42) = 33 (33.6 rounds to 34, density 0.810, above 0.8 as a budget) → 15
    assert erk_counts(shapes, 0.8) == [15, 6, 12]


def test_random_masks_hold_the_erk_counts_and_repeat_with_the_seed():
    shapes = [p.shape for p in small_mlp().parameters()]
    a = random_masks(shapes, 0.1, torch.Generator().manual_seed(3))
    b = random_masks(shapes, 0.1, torch.Generator().manual_seed(3))
    c = random_masks(shapes, 0.1, torch.Generator().manual_seed(4))
    assert [int(m.sum()) for m in a] == erk_counts(shapes, 0.1) and sum(int(m.sum()) for m in a) == kept(0.1, D)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not all(torch.equal(x, y) for x, y in zip(a, c))


# ---------------------------------------------------------------- RigL trained
def reference_update(weights, masks, grads, fraction):
    """RigL's update by sorting, one tensor at a time: the test's own reading of the rule."""
    out = []
    for w, m, g in zip(weights, masks, grads):
        shape, w, m, g = m.shape, w.reshape(-1), m.reshape(-1), g.reshape(-1)
        active = torch.nonzero(m).flatten()
        count = math.floor(fraction * len(active))
        by_size = active[torch.argsort(w[active].abs())]
        keep = set(by_size[count:].tolist())
        rest = torch.tensor([k for k in range(len(m)) if k not in keep], dtype=torch.long)
        grow = set(rest[torch.argsort(g[rest].abs(), descending=True)][:count].tolist())
        out.append(torch.tensor([k in keep or k in grow for k in range(len(m))]).view(shape))
    return out


def unflat(module, i, x):
    return [t.view(p.shape) for t, p in zip(x.split([p.numel() for p in module.networks[i].parameters()]),
                                            module.networks[i].parameters())]


def test_rigl_holds_density_drops_smallest_and_grows_largest_gradients():
    module = RigLModule(small_mlp(), adam, task="classification", budget=150, target_densities=TARGETS,
                        update_every=4, drop_fraction=0.3, drop_until=0.75, seed=0)
    watch = fit(module, 150)
    assert watch.evaluations == 150
    t_end = round(0.75 * 30)
    seen = 0
    for step in range(150):
        i = step // 30
        t = step % 30
        before, after = watch.masks_before[step][i], watch.masks_after[step][i]
        assert sum(int(m.sum()) for m in after) == kept(TARGETS[i], D), (step, i)  # density held
        w_after = unflat(module, i, watch.after[step][i])
        assert all(bool((w[~m] == 0).all()) for w, m in zip(w_after, after))  # zeros held
        if t > 0 and t % 4 == 0 and t < t_end:
            seen += 1
            fraction = 0.15 * (1 + math.cos(math.pi * t / t_end))
            w_before = unflat(module, i, watch.before[step][i])
            expected = reference_update(w_before, before, watch.grads[step][i], fraction)
            assert all(torch.equal(e, m) for e, m in zip(expected, after)), (step, i)
            for wb, wa, mb, ma in zip(w_before, w_after, before, after):
                assert bool((wa[ma & ~mb] == 0).all())  # grown weights start at zero
                assert torch.equal(wa[ma & mb], wb[ma & mb])  # the update step moves no weight
        else:
            assert all(torch.equal(b, a) for b, a in zip(before, after)), (step, i)
    assert seen == 5 * 5  # updates at t = 4, 8, 12, 16, 20 of each network
    assert [u["step"] for u in module.mask_updates] == [4, 8, 12, 16, 20] * 5
    X, F = module.front()
    assert (X != 0).sum(1).tolist() == [kept(d, D) for d in TARGETS]


def test_rigl_whole_trains_every_network_at_every_step():
    module = RigLModule(small_mlp(), adam, task="classification", budget=30, target_densities=TARGETS,
                        budget_per_density="whole", update_every=4, seed=0)
    watch = fit(module, 30)
    assert watch.evaluations == 5 * 30
    assert [u["step"] for u in module.mask_updates] == [s for s in (4, 8, 12, 16, 20) for _ in range(5)]
    assert len(module.front()[0]) == 5


# ---------------------------------------------------------------- one-shot
def test_oneshot_keeps_the_magnitude_mask_of_the_dense_network():
    module = OneShotModule(small_mlp(), adam, task="classification", budget=110, target_densities=TARGETS,
                           dense_fraction=0.5)
    watch = fit(module, 110)
    assert watch.evaluations == 110
    X, F = module.front()
    assert (X != 0).sum(1).tolist() == [D, *(kept(d, D) for d in TARGETS)]
    dense = X[0]
    assert torch.equal(dense, watch.after[54][0])  # the dense network after its 55 steps
    order = torch.argsort(dense.abs(), descending=True)
    for k, d in enumerate(TARGETS):
        top = torch.zeros(D, dtype=torch.bool)
        top[order[: kept(d, D)]] = True
        assert torch.equal(X[1 + k] != 0, top), d
        first, last = 55 + 11 * k, 55 + 11 * (k + 1)
        for step in range(first, last):  # its zeros held through its fine-tuning
            assert torch.equal(watch.after[step][1 + k] != 0, top), (d, step)
    # and fine-tuning moved the weights (at 5% and 2% the small MLP's output layer is pruned away and no
    # gradient reaches what is left, so this holds of the denser ones)
    assert not torch.equal(X[1], dense * (X[1] != 0))



@pytest.mark.parametrize("method", [GMPModule, RigLModule, OneShotModule])
def test_a_diverging_sparse_baseline_fails_in_one_line(method):
    module = method(small_mlp(), lambda params: torch.optim.Adam(params, lr=1e9), task="classification", budget=40,
                    **({"update_every": 2, "prune_start": 0.0, "prune_end": 0.5} if method is GMPModule else
                       {"update_every": 2} if method is RigLModule else {}))
    with pytest.raises(FloatingPointError, match=r"^optimizer\.lr: training diverged [^\n]*$"):
        fit(module, 40)
