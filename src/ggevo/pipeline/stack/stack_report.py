"""What ``ggevo-stack`` leaves to read: one panel per layer's front, a per-layer table, the whole stack in one file."""

from __future__ import annotations

from pathlib import Path

import torch

from ggevo.models.stacked import load_encoders
from ggevo.pipeline.core.files import save_torch, write_text
from ggevo.pipeline.core.plotting import plt
from ggevo.pipeline.record.front_csv import read_front_csv


def stack_plot(path: Path, out: Path, progress: dict) -> None:
    """One panel per layer: its final front (train MSE against density), the member passed up and the
    variance of the layer's input (the MSE of predicting its mean)."""
    layers, widths = progress["layers"], progress["widths"]
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.8), dpi=120, squeeze=False)
    for ax, done in zip(axes[0], layers):
        k = done["layer"]
        front = read_front_csv(out / done["run_dir"] / "front.csv")
        ax.plot(front["density"], front["train_loss"], "o-", ms=4, color="tab:blue", label="final front")
        ax.plot([done["density"]], [done["train_loss"]], "*", ms=14, color="tab:red",
                label=f"{progress['select']} (passed up)")
        ax.axhline(done["input_variance"], color="0.5", ls=":", label="variance of the layer's input")
        ax.set(title=f"layer {k}: {widths[k]}→{widths[k + 1]}", xlabel="density", ylabel="train MSE", yscale="log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def stack_table(path: Path, progress: dict, title: str) -> None:
    """``stack.md``: per layer, the member passed up, its MSE against its input's variance, the
    downstream accuracy of the stack up to it, the front's hypervolume and the layer's wall time."""
    widths = progress["widths"]
    lines = [f"## {title}: stacked autoencoder {'-'.join(map(str, widths))}, each layer passes up its "
             f"{progress['select']}", "",
             "| layer | shape | density passed up | train MSE | variance of the input | unexplained variance "
             "| downstream accuracy (stack to here) | hypervolume | best train MSE (density) | wall time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for d in progress["layers"]:
        k = d["layer"]
        accuracy = f"{d['downstream_accuracy']:.4f}" if "downstream_accuracy" in d else "—"
        lines.append(f"| {k} | {widths[k]}→{widths[k + 1]} | {d['density']:.4f} | {d['train_loss']:.5f} "
                     f"| {d['input_variance']:.5f} | {d['unexplained_variance']:.1%} | {accuracy} "
                     f"| {d['final/hypervolume']:.4f} | {d['final/train_loss_best']:.5f} "
                     f"({d['final/density_at_best']:.3f}) | {d['wall_time_s']:.0f} |")
    write_text(path, "\n".join(lines) + "\n")


def save_stack_model(path: Path, out: Path, progress: dict) -> None:
    """Every passed-up encoder in one file: the top layer's state with the lower encoders as its frozen
    buffers, which ``load_encoders`` (or ``model.previous``, to grow the stack) reads as the whole stack."""
    files = [str(out / done["passed_up"]) for done in progress["layers"]]
    top = torch.load(files[-1], map_location="cpu", weights_only=True)["state_dict"]
    state = {k: v for k, v in top.items() if not k.startswith("frozen_")}
    for i, (w, b) in enumerate(load_encoders(files)[:-1]):
        state[f"frozen_weight_{i}"], state[f"frozen_bias_{i}"] = w, b
    save_torch(path, {"state_dict": state, "widths": progress["widths"], "select": progress["select"],
                      "density_per_layer": [done["density"] for done in progress["layers"]]})
