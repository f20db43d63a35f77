"""Config values, each checked in one place before anything runs: one line naming the key."""

import pytest

from tests.pipeline.records import fails_before_any_run as _fails_before_any_run


@pytest.mark.parametrize("override, key", [
    ("optimizer.weight_bound=-1", "optimizer.weight_bound"),
    ("optimizer.mutation_rate=5", "optimizer.mutation_rate"),
    ("evaluation.chunk_size=0", "evaluation.chunk_size"),
    ("checkpoint.every_n_steps=0", "checkpoint.every_n_steps"),
])
def test_every_option_fails_before_any_run_opens(compose_cfg, override, key):
    _fails_before_any_run(compose_cfg(override), key)


@pytest.mark.parametrize(("overrides", "key"), [
    (("optimizer=gmp", "budget=120"), "optimizer.update_every"),  # 3 updates of 100 steps cannot land on 5 targets
    (("optimizer=gmp", "budget=5000", "optimizer.target_densities=[0.1,0.5]"), "optimizer.target_densities"),
    (("optimizer=oneshot", "budget=5000", "optimizer.target_densities=[0.5,1.0]"), "optimizer.target_densities"),
    (("optimizer=rigl", "budget=5000", "optimizer.budget_per_density=half"), "optimizer.budget_per_density"),
    (("optimizer=rigl", "budget=5000"), None),
    (("optimizer=rigl", "budget=500"), "optimizer.update_every"),  # T_end = 75 of 100 steps: no update every 100
    (("optimizer=rigl", "budget=5000", "optimizer.drop_fraction=1.5"), "optimizer.drop_fraction"),
    (("optimizer=oneshot", "budget=5000", "optimizer.dense_fraction=1"), "optimizer.dense_fraction"),
    (("optimizer=gmp", "budget=5000", "optimizer.method=lottery"), "optimizer.method"),
])
def test_sparse_method_keys_fail_as_one_line_naming_the_key(compose_cfg, overrides, key):
    from ggevo.pipeline.core.errors import ConfigError
    from ggevo.pipeline.run.validate import validate

    cfg = compose_cfg(*overrides)
    if key is None:
        validate(cfg)
        return
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')}: ") as err:
        validate(cfg)
    assert "\n" not in str(err.value)


def test_a_misspelt_optimizer_key_fails_naming_the_key_it_was_meant_to_be(compose_cfg):
    message = _fails_before_any_run(compose_cfg("optimizer=gemonn_plus_gradual", "+optimizer.floor_breed=false"),
                                    "optimizer.floor_breed")
    assert message.endswith("(did you mean optimizer.floor_breeds?)"), message


@pytest.mark.parametrize("overrides", [
    ("optimizer=imp", "optimizer.pop_size=4"),  # GEMONN's key in Adam's section: a shared preset key, dropped
    ("optimizer=gmp", "budget=5000", "optimizer.prune_start=0.2"),  # a sparse method's schedule
    ("optimizer=gemonn_plus_trunk", "optimizer.trunk_fraction=0.5"),  # read by the run, not the optimizer
])
def test_a_key_some_optimizer_or_the_run_reads_is_accepted(compose_cfg, overrides):
    from ggevo.pipeline.run.validate import validate

    validate(compose_cfg(*overrides))


def test_an_option_given_by_task_takes_the_models_tasks_value(compose_cfg):
    """optimizer=gemonn_plus_decay gives weight_decay by the model's task: a classifier's GEMONN decays, an
    autoencoder's does not; a mapping without the model's task fails before any run, naming the key."""
    from ggevo.pipeline.run.build import build_module

    mlp = ("model=mlp", "~model.hidden", "model.widths=[16]", "data=digits")
    for preset in ("gemonn_plus_decay", "gemonn_plus_rebase"):  # the candidate inherits the rule
        for overrides, decay in ((mlp, 0.5), ((), 0.0)):
            hp = build_module(compose_cfg(f"optimizer={preset}", *overrides)).configure_optimizers().hp
            assert hp["weight_decay"] == decay
            assert hp["trunk_rebase"] == (preset == "gemonn_plus_rebase")
            # the branches' own weights at the rebase: an autoencoder's scaled down, a classifier's kept
            assert hp["rebase_extras"] == (0.1 if preset == "gemonn_plus_rebase" and not overrides else 1.0)
    _fails_before_any_run(compose_cfg("optimizer=gemonn_plus_decay", *mlp, "~optimizer.weight_decay.classification"),
                          "optimizer.weight_decay")
    message = _fails_before_any_run(compose_cfg("optimizer=gemonn_plus_decay", *mlp, "+optimizer.weight_decay.regression=1"),
                                    "optimizer.weight_decay")
    assert "'regression' is not a model task" in message


def test_what_selection_scores_may_be_given_by_task(compose_cfg):
    """optimizer=gemonn_plus_rebase selects a classifier on held-out data and an autoencoder on its training
    minibatch; a mapping without the model's task, or a value no selection knows, fails before any run."""
    from ggevo.pipeline.run.build import build_module

    mlp = ("model=mlp", "~model.hidden", "model.widths=[16]", "data=digits")
    assert build_module(compose_cfg("optimizer=gemonn_plus_rebase", *mlp)).select_on == "val"
    assert build_module(compose_cfg("optimizer=gemonn_plus_rebase")).select_on == "train"
    assert build_module(compose_cfg("optimizer=gemonn_plus_decay")).select_on == "val"  # one value for every task
    _fails_before_any_run(compose_cfg("optimizer=gemonn_plus_rebase", *mlp, "~optimizer.select_on.classification"),
                          "optimizer.select_on")
    _fails_before_any_run(compose_cfg("optimizer=gemonn_plus_rebase", "optimizer.select_on.reconstruction=test"),
                          "optimizer.select_on")


@pytest.mark.parametrize(("overrides", "key"), [
    (("data=digits",), "model.inputs"),  # the autoencoder's 784 inputs against 8x8 images
    (("model=lenet5", "data=digits"), "model.size"),
    (("model=lstm", "data=digits"), "model.inputs"),  # 28 steps of 28 against 64 features
])
def test_a_model_whose_inputs_the_data_cannot_fill_fails_naming_the_key(compose_cfg, overrides, key):
    message = _fails_before_any_run(compose_cfg(*overrides), key)
    assert "data=digits has 64" in message, message
