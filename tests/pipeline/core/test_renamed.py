"""Renamed config keys fail in one line naming the new key: on the command line, in a preset file of
one's own, and a stacked autoencoder's widths written with the input first."""

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.renamed import RENAMED, check_renamed_keys, check_renamed_overrides
from ggevo.pipeline.run.validate import validate


@pytest.mark.parametrize("arg, new", [("experiment_name=mine", "preset"),
                                      ("optimizer.crossover_rate=0.5", "optimizer.crossover_prob"),
                                      ("+model.outputs=3", "model.classes"), ("~experiment_name", "preset")])
def test_an_old_key_on_the_command_line_names_the_new_one(arg, new):
    with pytest.raises(ConfigError, match=rf"^{arg.split('=')[0].lstrip('+~')}: renamed {new}$"):
        check_renamed_overrides(["seed=1", arg])
    check_renamed_overrides(["seed=1", f"{new}=1", "logger.experiment_name=x"])  # the new keys pass


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_an_old_key_in_a_composed_config_names_the_new_one(compose_cfg, old):
    cfg = compose_cfg("model=mlp", "data=digits", "~model.hidden", "hv_ref=[1.1,2.5]", "optimizer=gemonn_plus")
    validate(cfg)
    assert OmegaConf.select(cfg, RENAMED[old]) is not None  # every new key is in the shipped configs
    with open_dict(cfg):
        OmegaConf.update(cfg, old, 0.5, force_add=True)
    with pytest.raises(ConfigError, match=rf"^{old}: renamed {RENAMED[old]}$"):
        validate(cfg)


def test_stacked_widths_with_the_input_first_are_refused(compose_cfg):
    cfg = compose_cfg("model=stacked_ae", "~model.hidden", "data.limit=300")
    check_renamed_keys(cfg)
    assert cfg.model.inputs == 784 and list(cfg.model.widths) == [500, 250]
    cfg.model.widths = [784, 500, 250]
    with pytest.raises(ConfigError, match=r"model.widths: the hidden widths only .*write \[500, 250\]"):
        check_renamed_keys(cfg)


def test_a_config_written_before_the_renames_loads_as_the_new_one(compose_cfg):
    from ggevo.pipeline.core.renamed import upgrade_config
    from ggevo.pipeline.run.build import build_model

    new = compose_cfg("model=mlp", "data=digits", "~model.hidden", "hv_ref=[1.1,2.5]", "optimizer=gemonn_plus")
    old = OmegaConf.to_container(new, resolve=True)
    old["experiment_name"] = old.pop("preset")
    old["model"]["outputs"] = old["model"].pop("classes")
    old["optimizer"]["crossover_rate"] = old["optimizer"].pop("crossover_prob")
    upgraded = upgrade_config(OmegaConf.create(old))
    assert upgraded == OmegaConf.create(OmegaConf.to_container(new, resolve=True))
    check_renamed_keys(upgraded)
    assert build_model(OmegaConf.to_container(upgraded.model))(torch.zeros(2, 64)).shape == (2, 10)
    stacked = OmegaConf.create({"model": {"_target_": "ggevo.models.StackedAutoencoder", "widths": [784, 500, 250]}})
    assert OmegaConf.to_container(upgrade_config(stacked).model) == {
        "_target_": "ggevo.models.StackedAutoencoder", "widths": [500, 250], "inputs": 784}
