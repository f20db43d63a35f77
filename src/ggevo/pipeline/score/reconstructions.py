"""What an autoencoder's front is worth against a constant: the mean-image baseline, each member's
explained variance, and pictures of the same validation digits reconstructed across the front.

Predicting the mean training image scores an MSE equal to the mean per-pixel variance; a member's
explained variance is ``1 − MSE / that``, so 0 is no better than the constant and 1 is perfect.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ggevo.ea.flat import FlatParams  # noqa: E402
from ggevo.ea.front import within  # noqa: E402
from ggevo.pipeline.score.connections import image_side  # noqa: E402

SHOWN = 8      # validation digits in the picture
DENSITIES = 5  # front members in the picture


def mean_image_mse(data) -> dict[str, float]:
    """MSE of predicting the training split's mean input, on the train and validation splits."""
    x_train = data.splits["train"][0].flatten(1).double()
    mean = x_train.mean(0)
    out = {}
    for split in ("train", "val"):
        x = data.splits[split][0].flatten(1).double()
        out[split] = float(((x - mean) ** 2).mean()) if len(x) else float("nan")
    return out


def add_explained_variance(table: dict[str, torch.Tensor], baseline: dict[str, float]) -> None:
    """Adds ``train_explained_variance`` and ``val_explained_variance`` (k,) to a front table."""
    for split in ("train", "val"):
        table[f"{split}_explained_variance"] = 1.0 - table[f"{split}_loss"] / baseline[split]


def spread_members(density: torch.Tensor, count: int = DENSITIES) -> list[int]:
    """Up to ``count`` rows of a front (by rising density) spread evenly over its log-density range."""
    d = density.double().clamp_min(1e-6).log()
    targets = torch.linspace(float(d.min()), float(d.max()), count, dtype=torch.float64)
    return sorted({int((d - t).abs().argmin()) for t in targets})


@torch.no_grad()
def reconstruct(flat: FlatParams, X: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Outputs (k×m×inputs) of the members ``X`` (k×D) on ``images`` (m×inputs)."""
    return torch.stack([flat(x, images.to(x.device)).cpu() for x in X])


def reconstruction_record(flat: FlatParams, X: torch.Tensor, table: dict[str, torch.Tensor], data) -> dict:
    """The same ``SHOWN`` validation images, the members spread over the front's densities, their
    reconstructions, densities and train losses (saved as ``reconstructions.pt`` and drawn)."""
    images = data.splits["val"][0][:SHOWN].flatten(1).float().clone()  # its own storage: not the whole split's
    rows = spread_members(table["density"])
    return {"images": images, "outputs": reconstruct(flat, X[rows], images),
            "density": table["density"][rows].clone(), "train_loss": table["train_loss"][rows].clone(),
            "explained_variance": table["train_explained_variance"][rows].clone()}


def reconstruction_plot(path: Path, rows: dict[str, tuple[torch.Tensor, str]], images: torch.Tensor,
                        title: str) -> None:
    """A grid: the originals on top, then one row of reconstructions per label of ``rows``
    (label → (outputs m×inputs, description)). Inputs must be square images."""
    side = image_side(images.shape[1])
    if side is None:
        raise ValueError(f"{images.shape[1]} inputs are not a square image")
    every = {"original": (images, "validation digits")} | rows
    fig, axes = plt.subplots(len(every), images.shape[0] + 1,
                             figsize=(1.05 * (images.shape[0] + 1.8), 1.1 * len(every)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.8] + [1] * images.shape[0]})
    for row, (name, (outputs, text)) in zip(axes, every.items()):
        row[0].text(0.0, 0.5, f"{name}\n{text}", fontsize=6.5, va="center", ha="left", transform=row[0].transAxes)
        row[0].axis("off")
        for ax, img in zip(row[1:], outputs):
            ax.imshow(img.reshape(side, side).clamp(0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_record(path: Path, *, record: dict, title: str) -> None:
    """``reconstructions.png`` of one run: the originals and each chosen front member."""
    rows = {f"density {float(d):.3f}": (out, f"train MSE {float(loss):.4f}\nexpl. var. {float(ev):.2f}")
            for d, out, loss, ev in zip(record["density"], record["outputs"], record["train_loss"],
                                        record["explained_variance"])}
    reconstruction_plot(path, rows, record["images"], title)


def autoencoder_record(flat: FlatParams, X: torch.Tensor, table: dict[str, torch.Tensor], data,
                       title: str) -> tuple[dict[str, float], dict[str, Callable[[Path], None]]]:
    """For a reconstruction run: explained variance added to ``table``; the baseline and
    explained-variance metrics; and the writers (``name -> writer(path)``) of ``reconstructions.pt``
    and ``reconstructions.png`` (image inputs only)."""
    baseline = mean_image_mse(data)
    add_explained_variance(table, baseline)
    k, best = int(table["knee"].argmax()), int(table["train_loss"].argmin())
    ev = table["train_explained_variance"]
    metrics = {"baseline/mean_image_mse": baseline["train"], "baseline/mean_image_val_mse": baseline["val"],
               "final/explained_variance_knee": float(ev[k]), "final/explained_variance_best": float(ev[best]),
               "final/val_explained_variance_knee": float(table["val_explained_variance"][k])}
    val = data.splits["val"][0]
    if not len(val) or image_side(val.flatten(1).shape[1]) is None:
        return metrics, {}
    record = reconstruction_record(flat, X, table, data)
    return metrics, {"reconstructions.pt": partial(torch.save, record),
                     "reconstructions.png": partial(plot_record, record=record, title=title)}


def comparison_plot(path: Path, records: dict[str, dict], title: str, budget: float = 0.1) -> None:
    """One row per method (label → its ``reconstructions.pt`` record): the member of lowest train loss
    within the density ``budget`` among those recorded, else its sparsest, on the same validation digits."""
    rows, images = {}, None
    for name, record in records.items():
        density, loss = record["density"].double(), record["train_loss"].double()
        ok = within(density, budget)
        i = int(torch.where(ok, loss, torch.inf).argmin()) if ok.any() else int(density.argmin())
        rows[name] = (record["outputs"][i], f"density {float(density[i]):.3f}, MSE {float(loss[i]):.4f}")
        images = record["images"] if images is None else images
    if images is not None:
        reconstruction_plot(path, rows, images, title)
