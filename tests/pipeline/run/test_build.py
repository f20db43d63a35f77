"""The callbacks config group: its entries built in order, one can be dropped or added, a wrong one is one line."""

import pytest
from omegaconf import open_dict

from ggevo.lit.progress import GenerationProgress
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.run.build import build_callbacks


def test_the_callbacks_group_builds_the_progress_display(compose_cfg):
    built = build_callbacks(compose_cfg())
    assert [type(c) for c in built] == [GenerationProgress] and built[0].lines == 10


def test_a_callback_can_be_dropped_and_one_added(compose_cfg):
    assert build_callbacks(compose_cfg("~callbacks.progress")) == []
    cfg = compose_cfg("+callbacks.timer={_target_: pytorch_lightning.callbacks.Timer, duration: '00:00:10:00'}")
    assert [type(c).__name__ for c in build_callbacks(cfg)] == ["GenerationProgress", "Timer"]


@pytest.mark.parametrize("spec, message", [
    ({"_target_": "no.such.Callback"}, r"^callbacks.bad: "),
    ({"_target_": "collections.OrderedDict"}, r"^callbacks.bad: OrderedDict is not a Lightning callback$"),
])
def test_a_wrong_callback_fails_in_one_line_naming_it(compose_cfg, spec, message):
    cfg = compose_cfg()
    with open_dict(cfg):
        cfg.callbacks.bad = spec
    with pytest.raises(ConfigError, match=message) as err:
        build_callbacks(cfg)
    assert "\n" not in str(err.value)
