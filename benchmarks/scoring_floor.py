"""How near its floor the population's scoring is: N tied autoencoders' loss and gradient on one minibatch by
``evaluation.strategy=vmap`` and ``loop``, against the same forward and backward written by hand as batched
matmuls (one autograd graph for all N), and one network alone; medians of 30 calls (the default job: N=10, H=100).

    python benchmarks/scoring_floor.py               # N=10, H=100, batch 128
    python benchmarks/scoring_floor.py --hidden 500
"""

from __future__ import annotations

import argparse

import torch

from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.init import initial_population
from ggevo.lit.tasks import reconstruction_loss
from ggevo.pipeline.core.memory import reuse_large_allocations
from ggevo.pipeline.core.numerics import flush_denormals
from generation import setup
from phases import cpu_line, median_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pop-size", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    reuse_large_allocations()
    flush_denormals(True)
    n, h = args.pop_size, args.hidden
    model, flat, g, batch = setup(n, h, args.batch_size)
    X = initial_population(flat.layout, n, generator=g)
    print(cpu_line())
    print(f"N={n}, 784-{h}-784 tied AE, batch {args.batch_size}, {torch.get_num_threads()} threads")
    for strategy in ("vmap", "loop"):
        ev = PopulationEvaluator(flat, reconstruction_loss, strategy)
        ms = median_seconds(lambda: ev(X, batch), args.repeats, warmup=2) * 1e3
        print(f"evaluation.strategy={strategy}: {ms:.2f} ms for {n} networks")
    W = X[:, :h * 784].reshape(n, h, 784).clone().requires_grad_()
    b_h = torch.zeros(n, 1, h, requires_grad=True)
    b_o = torch.zeros(n, 1, 784, requires_grad=True)
    x = batch[0].flatten(1)

    def batched():
        hidden = torch.sigmoid(torch.matmul(x, W.transpose(1, 2)) + b_h)
        out = torch.sigmoid(torch.matmul(hidden, W) + b_o)
        torch.autograd.grad(((out - x) ** 2).mean(dim=(1, 2)).sum(), (W, b_h, b_o))

    def one():
        w = W[0].detach().requires_grad_()
        out = torch.sigmoid(torch.sigmoid(x @ w.T) @ w)
        torch.autograd.grad(((out - x) ** 2).mean(), w)

    print(f"hand-batched matmuls (the floor): {median_seconds(batched, args.repeats, warmup=2) * 1e3:.2f} ms "
          f"for {n} networks")
    print(f"one network, plain autograd: {median_seconds(one, args.repeats, warmup=2) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
