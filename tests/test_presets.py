"""Every experiment preset composes, passes validation and builds a model that takes its data's shape.

The full presets (paper_mlp, paper_lstm, paper_cnn, compare_ae, …) need downloads to run; this is
what can be checked of them offline: the config, the model, and each point of a sweep's grid.
"""

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ggevo.pipeline.run.build import build_model
from ggevo.pipeline.run.validate import validate
from tests.conftest import ROOT

PRESETS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def _sweep_points(cfg):
    """The overrides of each job of a preset's sweep grid (one empty point when it is not a sweep)."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    points = [[]]
    for key, values in params.items():
        points = [p + [f"{key}={v}"] for p in points for v in str(values).split(",")]
    return points


def test_the_presets_include_every_family():
    assert {"paper_ae", "paper_mlp", "paper_lstm", "paper_cnn",
            "mlp_digits", "lstm_mnist5k", "cnn_mnist5k"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_validates_and_builds_its_model(preset):
    cfg = _compose(f"experiment={preset}")
    for point in _sweep_points(cfg):
        validate(_compose(f"experiment={preset}", *point))
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    task = model_cfg.pop("task", "reconstruction")
    model = build_model(model_cfg)
    x = torch.zeros(2, int(cfg.data.features))
    out = model(x)
    if task == "classification":
        assert out.shape == (2, int(cfg.data.classes))
    else:
        assert out.shape[0] == 2 and out[0].numel() in (int(cfg.data.features), model_cfg.get("hidden", 0))
    assert torch.isfinite(out).all()


# the benchmark suite: each preset's network (by its parameter count), budget and the methods it sweeps
BENCH = {"bench_ae": (784 * 500 + 500 + 784, 25000),
         "bench_mlp": (784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10, 10000),
         "bench_lenet5": (None, 5000)}
BASELINES = ["imp", "imp_lr3e-3", "imp_lr1e-2", "gmp", "rigl", "oneshot"]
OURS = {"bench_ae": ["gemonn_plus_trunk", "gemonn_plus"], "bench_mlp": ["gemonn_plus", "gemonn_plus_trunk"],
        "bench_lenet5": ["gemonn_plus", "gemonn_plus_trunk"]}
# methods added later come after the baselines, so the job numbers of the runs before them stay
LATER = {"bench_ae": ["gemonn_plus_gradual"], "bench_mlp": ["gemonn_plus_gradual"], "bench_lenet5": ["gemonn_plus_gradual"]}


@pytest.mark.parametrize("preset", sorted(BENCH))
def test_bench_presets_sweep_every_method_at_one_budget(preset):
    size, budget = BENCH[preset]
    cfg = _compose(f"experiment={preset}")
    assert cfg.budget == budget and cfg.data.name == "mnist5k"
    params = OmegaConf.select(cfg, "hydra.sweeper.params")
    assert str(params.optimizer).split(",") == [*OURS[preset], *BASELINES, *LATER[preset]] and str(params.seed).split(",") == ["0", "1"]
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg.pop("task")
    model = build_model(model_cfg)
    if size is not None:
        assert sum(p.numel() for p in model.parameters()) == size
    else:
        assert type(model).__name__ == "LeNet5"


@pytest.mark.parametrize("task", ["ae", "mlp", "lenet5"])
def test_the_candidate_preset_runs_on_the_baselines_task_in_its_own_sweep(task):
    """experiment=bench_<task>_ours (and its _check) is the baselines' sweep with only the candidate preset:
    the same preset name (the leaderboard merges the two records into one task), budget, model, data and seeds."""
    for suffix in ("", "_check"):
        theirs, ours = _compose(f"experiment=bench_{task}{suffix}"), _compose(f"experiment=bench_{task}{suffix}_ours")
        assert ours.preset == theirs.preset == f"bench_{task}{suffix}"
        for key in ("budget", "model", "data", "score_test", "hv_ref", "downstream", "trainer"):
            assert OmegaConf.select(ours, key) == OmegaConf.select(theirs, key), key
        mine, base = (OmegaConf.select(c, "hydra.sweeper.params") for c in (ours, theirs))
        assert str(mine.optimizer) == "gemonn_plus_rebase" and str(mine.seed) == str(base.seed)
        assert "gemonn_plus_rebase" not in str(base.optimizer).split(",")


@pytest.mark.parametrize("preset, keys", [("bench_mlp", ["optimizer", "seed"]), ("bench_mlp_check", ["optimizer"]),
                                          ("bench_mlp_ours", ["optimizer", "seed"]),
                                          ("bench_mlp_check_ours", ["optimizer"])])
def test_a_sweep_records_the_method_it_sets_with_one_value(preset, keys):
    """The record names each job's method when the sweep sets one for all of them (an _ours sweep), so the
    leaderboard can tell the candidate's jobs from the others'; a single seed stays the job's own seed."""
    from ggevo.pipeline.team.sweep import swept_keys

    assert swept_keys(_compose(f"experiment={preset}")) == keys


def _swept(preset: str) -> dict:
    """A preset's sweep grid as its file writes it (``+rebase_off: none,weight_decay,…``), without composing it."""
    cfg = OmegaConf.load(ROOT / "conf" / "experiment" / f"{preset}.yaml")
    return OmegaConf.select(cfg, "hydra.sweeper.params") or {}


ABLATION_ARMS = sorted((preset, key, arm) for preset in PRESETS for key, values in _swept(preset).items()
                       if str(key).endswith("_off") for arm in str(values).split(",") if arm != "none")


@pytest.mark.parametrize("preset, key, arm", ABLATION_ARMS)
def test_every_arm_of_an_ablation_changes_what_its_task_runs(preset, key, arm):
    """An ablation's arm (``+rebase_off=weight_decay`` …) switches off a setting the preset's model really runs
    with: its optimizer section, each option taken for the model's task, differs from the arm ``none``'s. An arm
    that sets an option only another task reads (the autoencoder's rebase scaling on a classifier) would be a
    second run of the preset under another name."""
    from ggevo.pipeline.run.validate import for_task

    def resolved(choice):
        cfg = _compose(f"experiment={preset}", f"{key}={choice}")
        task = OmegaConf.select(cfg, "model.task") or "reconstruction"
        return {k: for_task(v, task, k) for k, v in OmegaConf.to_container(cfg.optimizer, resolve=True).items()}

    off, full = resolved(arm), resolved("none")
    assert off != full, f"{key}={arm} changes nothing {preset}'s task reads"
