"""The connection picture: which input–hidden weights of the first layer are nonzero (issue figure (d)).

One row per model: a map of how many hidden units each input pixel still feeds, then the
incoming connections of a few hidden units, each as an image (white = connected). A sweep's record keeps
the masks it draws bit-packed (``record.sweep_record.pack_mask``).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def image_side(inputs: int) -> int | None:
    side = math.isqrt(inputs)
    return side if side * side == inputs else None


def connection_plot(path: Path, layers: dict[str, torch.Tensor], units: int = 8, title: str = "") -> None:
    """``layers`` maps a row label to its first-layer weight or its nonzero mask (hidden × inputs); inputs
    must be a square image."""
    fig, axes = plt.subplots(len(layers), units + 1, figsize=(1.4 * (units + 1), 1.6 * len(layers)), squeeze=False)
    for row, (name, weight) in zip(axes, layers.items()):
        mask = (weight != 0).cpu()
        side = image_side(mask.shape[1])
        if side is None:
            raise ValueError(f"{name}: {mask.shape[1]} inputs are not a square image")
        counts = mask.sum(0).reshape(side, side).float()
        im = row[0].imshow(counts, cmap="viridis", vmin=0, vmax=mask.shape[0])
        row[0].set_title(f"{name}\nlayer density {mask.float().mean():.3f}", fontsize=7)
        fig.colorbar(im, ax=row[0], fraction=0.046, pad=0.02).ax.tick_params(labelsize=5)
        # the units with the most connections: an all-zero unit shows nothing
        order = torch.argsort(mask.sum(1), descending=True, stable=True)[:units]
        for ax, u in zip(row[1:], order.tolist()):
            ax.imshow(mask[u].reshape(side, side), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"unit {u}: {int(mask[u].sum())}", fontsize=6)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title or "first-layer connections (left: hidden units fed by each pixel)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
