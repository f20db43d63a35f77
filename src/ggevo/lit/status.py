"""The status schema every optimizer reports each generation, and its one way to the recorder."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from ggevo.ea.front import hypervolume

STATUS_KEYS = ("generation", "evaluations", "nonfinite", "loss/min", "loss/knee", "density/knee", "front/size",
               "hypervolume")


def status_metrics(status: dict) -> dict[str, float]:
    """``status`` as floats, checked to hold every key of ``STATUS_KEYS`` (an optimizer may add its own)."""
    missing = [k for k in STATUS_KEYS if k not in status]
    if missing:
        raise ValueError(f"a status needs {', '.join(missing)}; got {sorted(status)}")
    return {k: float(v) for k, v in status.items()}


def point_status(step: int, evaluations: int, density: float, loss: float, front_size: int,
                 hv_ref) -> dict[str, float]:
    """The status of a gradient baseline: its front is the one point (density, loss)."""
    return status_metrics({"generation": step, "evaluations": evaluations, "nonfinite": 0, "loss/min": loss,
                           "loss/knee": loss, "density/knee": density, "front/size": front_size,
                           "hypervolume": hypervolume(torch.tensor([[density, loss]]), hv_ref)})


PROGRESS = "ggevo_progress"  # the module attribute the progress display reads (``lit.progress``)


def publish(module: pl.LightningModule, metrics: dict[str, float], step: int, progress: bool = True) -> None:
    """To the recorder at ``step`` (the generation), and (``progress``) to the progress display.

    The display reads the latest values from the module (``PROGRESS``) rather than through Lightning's
    ``log_dict``, whose per-key bookkeeping cost a one-network generation (a trunk's) a third of its
    evaluation; nothing else reads them from Lightning.
    """
    if module.logger is not None:
        module.logger.log_metrics(metrics, step=step)
    if progress:
        setattr(module, PROGRESS, {**getattr(module, PROGRESS, {}), **metrics})
