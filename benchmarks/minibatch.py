"""The minibatch's gather, once per generation: ``MinibatchStream.batch`` (``index_select``) against indexing the
training split with the permutation's slice, the same rows, on MNIST-5k's training split (4,000 x 784) at the
bench's batch sizes, measured side by side in one run.

    python benchmarks/minibatch.py                # two threads, as ggevo-train on a 2-core machine
    python benchmarks/minibatch.py --threads 1
"""

from __future__ import annotations

import argparse

import torch

from ggevo.data.stream import MinibatchStream
from phases import median_seconds, set_up_as_ggevo_train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    set_up_as_ggevo_train(args.threads)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4000, 784, generator=g), torch.randint(0, 10, (4000,), generator=g)
    for size in (64, 128):
        stream = MinibatchStream(x, y, size, seed=0)

        def indexed() -> None:
            for t in range(args.batches):
                epoch, k = divmod(t, stream.per_epoch)
                idx = stream._order(epoch)[k * size : (k + 1) * size]
                x[idx], y[idx]

        def streamed() -> None:
            for t in range(args.batches):
                stream.batch(t)

        a, b = median_seconds(indexed, args.repeats, warmup=1), median_seconds(streamed, args.repeats, warmup=1)
        xs, ys, _ = stream.batch(5)
        idx = stream._order(0)[5 * size : 6 * size]
        assert torch.equal(xs, x[idx]) and torch.equal(ys, y[idx])  # the same rows
        print(f"batch {size}: x[idx] {a / args.batches * 1e6:.1f} us, MinibatchStream.batch (index_select) "
              f"{b / args.batches * 1e6:.1f} us a batch (the step's tensor included): {b / a:.2f}x")


if __name__ == "__main__":
    main()
