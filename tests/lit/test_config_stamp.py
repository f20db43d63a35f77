"""``ConfigStamp``: every checkpoint carries the config keys that fix its population's meaning, so a resume
(``pipeline.run.checks.load_checkpoint``) takes a checkpoint of the same config and refuses another."""

import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from ggevo.lit.config_stamp import STAMP_KEY, ConfigStamp
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.run.checks import config_stamp, load_checkpoint
from tests.lit.tiny_run import fit, tiny_module, tiny_trainer


def test_every_checkpoint_of_a_run_carries_the_stamp_it_was_given(tmp_path):
    given = {"seed": "0", "optimizer.pop_size": "4"}
    stamp = ConfigStamp(given)
    given["seed"] = "1"  # the caller's dict changing afterwards does not change the stamp
    periodic = ModelCheckpoint(dirpath=tmp_path, filename="{step}", every_n_train_steps=2, save_top_k=-1)
    trainer = tiny_trainer(4, [stamp, periodic])
    fit(trainer, tiny_module())
    trainer.save_checkpoint(tmp_path / "final.ckpt", weights_only=False)  # as the run's end and an interrupt save
    paths = sorted(tmp_path.glob("*.ckpt"))
    assert [p.name for p in paths] == ["final.ckpt", "step=2.ckpt", "step=4.ckpt"]
    for path in paths:
        assert torch.load(path, weights_only=False)[STAMP_KEY] == {"seed": "0", "optimizer.pop_size": "4"}, path


def checkpoint(tmp_path, stamp: dict | None):
    """A real checkpoint of a tiny run, stamped with ``stamp`` (or not stamped, as before stamps existed)."""
    trainer = tiny_trainer(1, [] if stamp is None else [ConfigStamp(stamp)])
    fit(trainer, tiny_module())
    path = tmp_path / "stamped.ckpt"
    trainer.save_checkpoint(path, weights_only=False)
    return path


def test_a_checkpoint_resumes_under_its_own_config_and_where_only_free_keys_changed(compose_cfg, tmp_path):
    stamp = config_stamp(compose_cfg())
    assert stamp["optimizer.pop_size"] == "8" and "optimizer.compile" not in stamp and "data.data_dir" not in stamp
    path = checkpoint(tmp_path, stamp)
    assert load_checkpoint(compose_cfg(f"ckpt_path={path}")).path == path
    moved = compose_cfg(f"ckpt_path={path}", "optimizer.compile=true", f"data.data_dir={tmp_path / 'elsewhere'}")
    assert load_checkpoint(moved).path == path


def test_a_checkpoint_made_under_another_config_is_refused_naming_what_differs(compose_cfg, tmp_path):
    path = checkpoint(tmp_path, config_stamp(compose_cfg()))
    with pytest.raises(ConfigError) as err:
        load_checkpoint(compose_cfg(f"ckpt_path={path}", "optimizer.pop_size=10", "model.hidden=32"))
    assert str(err.value) == (f"ckpt_path: {path} was made under another config: "
                              f"model.hidden=16 (now 32), optimizer.pop_size=8 (now 10)")


def test_a_checkpoint_from_before_stamps_is_not_refused(compose_cfg, tmp_path):
    path = checkpoint(tmp_path, None)
    assert STAMP_KEY not in torch.load(path, weights_only=False)
    assert load_checkpoint(compose_cfg(f"ckpt_path={path}", "optimizer.pop_size=10")).path == path
