"""Where the compiled crossover kernel's time goes on this CPU: the kernel at the paper's size, and the
operations it is made of, each compiled alone over 10M float32 (large allocations reused, as in ggevo-train).

    python benchmarks/kernel_ops.py               # one thread
    python benchmarks/kernel_ops.py --threads 2
"""

from __future__ import annotations

import argparse

import torch

from ggevo.ea.operators.counter_rng import counter_hash_i32
from ggevo.ea.operators.crossover.sbx_kernel import run_kernel
from phases import median_seconds, set_up_as_ggevo_train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    set_up_as_ggevo_train(args.threads)
    g = torch.Generator().manual_seed(0)
    n, dim = 50, 393_284
    X = torch.randn(n, dim, generator=g) * 0.1
    X[torch.rand(n, dim, generator=g) < 0.5] = 0
    G = torch.randn(n, dim, generator=g)
    pairs = torch.randperm(n, generator=g).view(2, n // 2)
    lo, hi = torch.full((dim,), -10.0), torch.full((dim,), 10.0)
    seconds = median_seconds(lambda: run_kernel(X, G, pairs, eta=20.0, sparsity_preservation=0.5, guided=True,
                                                exchange=True, lower=lo, upper=hi, generator=g, compiled=True),
                             args.repeats, warmup=2)
    coords = pairs.shape[1] * dim
    print(f"crossover kernel, {pairs.shape[1]} pairs x D={dim:,}, {args.threads} thread(s): {seconds * 1e3:.1f} ms, "
          f"{seconds / coords * 1e9 * args.threads:.2f} ns a coordinate pair per thread")
    size = 10_000_000
    x = torch.rand(size, generator=g) * 0.9 + 0.05
    counter = torch.arange(size, dtype=torch.int64)
    key = torch.tensor([12345, 67890])
    ops = {
        "x*a+b": (lambda v: v * 0.5 + 0.25, x),
        "log": (torch.log, x),
        "exp": (torch.exp, x),
        "exp(k*log(x))": (lambda v: torch.exp(0.05 * torch.log(v)), x),
        "32-bit counter hash": (lambda c: counter_hash_i32(c, key), counter),
    }
    for name, (fn, arg) in ops.items():
        compiled = torch.compile(fn, dynamic=False)
        s = median_seconds(lambda: compiled(arg), args.repeats, warmup=2)
        print(f"  {name}: {s / size * 1e9 * args.threads:.2f} ns an element per thread")


if __name__ == "__main__":
    main()
