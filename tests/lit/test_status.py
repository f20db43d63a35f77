"""The status schema (``status_metrics``, ``point_status``) and its one way out (``publish``): to the recorder
at the generation's step, and to the progress display as the latest value of each key."""

import pytest
import pytorch_lightning as pl
import torch

from ggevo.lit.status import PROGRESS, STATUS_KEYS, point_status, publish, status_metrics
from tests.lit.tiny_run import RecordingLogger, fit, tiny_module, tiny_trainer


def full_status(**extra) -> dict:
    return {"generation": 3, "evaluations": torch.tensor(24), "nonfinite": 0, "loss/min": torch.tensor(0.5),
            "loss/knee": 0.75, "density/knee": 0.25, "front/size": 2, "hypervolume": 0.125, **extra}


def test_a_status_becomes_floats_and_keeps_an_optimizers_own_keys():
    metrics = status_metrics(full_status(**{"trunk/row": 1}))
    assert metrics == {"generation": 3.0, "evaluations": 24.0, "nonfinite": 0.0, "loss/min": 0.5, "loss/knee": 0.75,
                       "density/knee": 0.25, "front/size": 2.0, "hypervolume": 0.125, "trunk/row": 1.0}
    assert all(type(v) is float for v in metrics.values())


def test_a_status_missing_keys_of_the_schema_is_refused_naming_them():
    status = full_status()
    del status["front/size"], status["hypervolume"]
    with pytest.raises(ValueError, match=r"^a status needs front/size, hypervolume; got \['density/knee'"):
        status_metrics(status)


def test_a_gradient_baselines_status_is_its_one_point_front():
    """One point (density 0.25, loss 0.5) under the reference (1, 1) covers 0.75 · 0.5 = 0.375."""
    status = point_status(7, 70, density=0.25, loss=0.5, front_size=1, hv_ref=(1.0, 1.0))
    assert set(status) == set(STATUS_KEYS)
    assert status == {"generation": 7.0, "evaluations": 70.0, "nonfinite": 0.0, "loss/min": 0.5, "loss/knee": 0.5,
                      "density/knee": 0.25, "front/size": 1.0, "hypervolume": pytest.approx(0.375, abs=1e-12)}
    assert point_status(7, 70, density=0.25, loss=1.5, front_size=1, hv_ref=(1.0, 1.0))["hypervolume"] == 0.0


def attached(logger) -> pl.LightningModule:
    module = pl.LightningModule()
    module.trainer = pl.Trainer(logger=logger, accelerator="cpu", devices=1, enable_progress_bar=False,
                                enable_model_summary=False, enable_checkpointing=False)
    return module


def test_publish_hands_the_recorder_each_batch_at_its_step_and_keeps_the_latest_values_for_the_display():
    logger = RecordingLogger()
    module = attached(logger)
    publish(module, {"hypervolume": 0.1, "loss/min": 0.9}, step=1)
    publish(module, {"loss/min": 0.8, "val/loss_min": 0.95}, step=2)
    publish(module, {"val/loss_min": 0.7}, step=2, progress=False)  # a catch-up validation: recorded only
    assert logger.metrics == [(1, {"hypervolume": 0.1, "loss/min": 0.9}), (2, {"loss/min": 0.8, "val/loss_min": 0.95}),
                              (2, {"val/loss_min": 0.7})]
    assert getattr(module, PROGRESS) == {"hypervolume": 0.1, "loss/min": 0.8, "val/loss_min": 0.95}


def test_publish_without_a_logger_still_feeds_the_display():
    module = attached(False)
    assert module.logger is None
    publish(module, {"hypervolume": 0.1}, step=1)
    assert getattr(module, PROGRESS) == {"hypervolume": 0.1}


def test_a_run_records_every_generations_status_at_the_generation():
    logger = RecordingLogger()
    module = tiny_module()
    fit(tiny_trainer(4, [], logger=logger), module)
    assert [step for step, _ in logger.metrics] == [1, 2, 3, 4]
    for step, metrics in logger.metrics:
        assert set(STATUS_KEYS) <= set(metrics) and metrics["generation"] == step
        assert metrics["evaluations"] == 8 * step  # 4 parents re-scored and 4 children each generation
    assert getattr(module, PROGRESS) == logger.metrics[-1][1]
