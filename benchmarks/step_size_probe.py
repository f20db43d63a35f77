"""Plain Adam on one bench classifier: held-out accuracy by step size and training length, and of an average of
the weights (docs/RESULTS.md, "LeNet-5: what else was tried"). A quality probe outside the pipeline (no
population, no budget accounting), made to see whether a short trial could choose GEMONN+'s step size.

    python benchmarks/step_size_probe.py --task lenet5 --seed 0           # dense: accuracy after each length
    python benchmarks/step_size_probe.py --task lenet5 --seed 0 --average  # pruned to 0.05 at step 800, raw vs EMA

Reads the prepared MNIST-5k (``dvc repro prepare``: data/mnist5k.npz); one thread.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ggevo.models import MLP, LeNet5

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = (100, 200, 400, 800, 1600, 3200)


def arrays(path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    with np.load(path) as z:
        return {s: (torch.from_numpy(z[f"{s}_x"]).float(), torch.from_numpy(z[f"{s}_y"]).long())
                for s in ("train", "val", "test")}


def network(task: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if task == "lenet5":  # as conf/model/lenet5.yaml on MNIST-5k
        return LeNet5(channels=1, size=28, classes=10, activation="tanh")
    return MLP(inputs=784, widths=[300, 100], classes=10, activation="relu")  # conf/experiment/bench_mlp.yaml


def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


def train(task: str, seed: int, lr: float, data, steps: int, on_step) -> None:
    """``steps`` Adam steps on minibatches of the bench's size; ``on_step(t, net, opt)`` after each."""
    net = network(task, seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x, y = data["train"]
    draw = torch.Generator().manual_seed(seed)
    batch = 64 if task == "lenet5" else 128
    for t in range(1, steps + 1):
        idx = torch.randint(0, len(x), (batch,), generator=draw)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        on_step(t, net, opt)


def by_length(task: str, seed: int, data) -> None:
    for lr in (1e-3, 3e-3, 1e-2):
        row = []
        train(task, seed, lr, data, LENGTHS[-1],
              lambda t, net, _: row.append(f"{t}: {accuracy(net, *data['val']):.3f}") if t in LENGTHS else None)
        print(f"{task} seed {seed} lr {lr:g}  validation accuracy after  " + "  ".join(row), flush=True)


def averaged(task: str, seed: int, data, density: float = 0.05, prune_at: int = 800, steps: int = 2000) -> None:
    """Pruned by global magnitude to ``density`` at ``prune_at`` (its step then 0.005 · density^-0.25, as
    gemonn_plus_gradual's), trained on; test accuracy of the raw weights and of EMAs restarted at the prune."""
    held = tuple(torch.cat(p) for p in zip(data["val"], data["test"]))
    for lr in (1e-3, 5e-3):
        ema = {beta: None for beta in (0.99, 0.998)}
        masks: list[torch.Tensor | None] = []
        row = []

        def on_step(t, net, opt):
            params = list(net.parameters())
            with torch.no_grad():
                if t == prune_at:
                    w = torch.cat([p.abs().flatten() for p in params if p.dim() > 1])
                    cut = w.kthvalue(int((1 - density) * len(w))).values
                    masks.extend((p.abs() > cut).float() if p.dim() > 1 else None for p in params)
                    for group in opt.param_groups:
                        group["lr"] = lr * density ** -0.25
                    for beta in ema:
                        ema[beta] = copy.deepcopy(net)
                for p, m in zip(params, masks):
                    if m is not None:
                        p.mul_(m)
                for beta, avg in ema.items():
                    if avg is not None:
                        for a, p in zip(avg.parameters(), params):
                            a.mul_(beta).add_(p, alpha=1 - beta)
            if t in (1000, 1400, steps):
                row.append(f"{t}: raw {accuracy(net, *held):.3f} " +
                           " ".join(f"ema{b:g} {accuracy(a, *held):.3f}" for b, a in ema.items()))

        train(task, seed, lr, data, steps, on_step)
        print(f"{task} seed {seed} lr {lr:g} density {density:g}  held-out accuracy  " + " | ".join(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("lenet5", "mlp"), default="lenet5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--average", action="store_true", help="raw vs averaged weights of a pruned network")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "mnist5k.npz")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = arrays(args.data)
    (averaged if args.average else by_length)(args.task, args.seed, data)


if __name__ == "__main__":
    main()
