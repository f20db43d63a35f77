"""The GEMONN+ generation's work beyond its evaluations on its two children, at the paper's size (D=393,284):
each operation by the path a run takes and by the path it replaced, interleaved in one process, with the ratio.

- a child's magnitude pruning (``magnitude_prune_``): NumPy's vectorised loops against torch's boolean indexing
  and masked fill (``_prune_row``, still the path off CPU), two children of about half nonzero entries;
- the moments two children inherit (``inherit``): compiled against eager.

Each pair gives the same numbers bit for bit (``tests/ea/operators/mutation/test_magnitude_prune.py``,
``tests/ea/operators/test_lamarck.py``).

    python benchmarks/population_ops.py               # two threads, as ggevo-train on 2 cores
    python benchmarks/population_ops.py --threads 1
"""

from __future__ import annotations

import argparse

import torch

from ggevo.compiling import compile_available
from ggevo.ea.operators.lamarck import Moments, inherit
from ggevo.ea.operators.mutation.magnitude_prune import _prune_row, magnitude_prune_
from phases import median_seconds, set_up_as_ggevo_train

DIM = 393_284  # the paper's tied autoencoder 784-500-784


def interleaved(new, old, rounds: int, repeats: int) -> tuple[float, float]:
    """Median seconds of ``new`` and of ``old``, timed in alternating rounds so both see the same machine."""
    news, olds = [], []
    for _ in range(rounds):
        news.append(median_seconds(new, repeats, warmup=3))
        olds.append(median_seconds(old, repeats, warmup=3))
    return sorted(news)[rounds // 2], sorted(olds)[rounds // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    set_up_as_ggevo_train(args.threads)
    compiled = compile_available(torch.device("cpu"))
    print(f"D={DIM:,}, torch {torch.__version__}, {args.threads} threads, compiled kernels: {compiled}; "
          f"median of {args.rounds} interleaved rounds of {args.repeats} calls each")
    g = torch.Generator().manual_seed(0)
    parents = torch.randn(10, DIM, generator=g) * 0.1
    parents[torch.rand(10, DIM, generator=g) < 0.5] = 0
    children = parents[:2].clone()
    work = children.clone()
    prunable = torch.ones(DIM, dtype=torch.bool)
    prunable[-1284:] = False  # the biases, exempt

    def prune_numpy() -> None:
        work.copy_(children)
        magnitude_prune_(work, probability=1.0, fraction=0.3, prunable=prunable, generator=g, min_nonzero=7866)

    def prune_torch() -> None:
        work.copy_(children)
        for row in work:
            _prune_row(row, prunable, 0.3, 7866)

    moments = Moments(torch.randn(10, DIM, generator=g), torch.rand(10, DIM, generator=g), torch.zeros(10))
    rows = torch.tensor([3, 7])
    cases = [
        ("magnitude pruning of 2 children (NumPy / torch)", prune_numpy, prune_torch),
        ("moments inherited by 2 children (compiled / eager)",
         lambda: inherit(moments, rows, children, compiled=compiled), lambda: inherit(moments, rows, children)),
    ]
    for name, new, old in cases:
        t_new, t_old = interleaved(new, old, args.rounds, args.repeats)
        print(f"{name}: {t_new * 1e3:.3f} ms against {t_old * 1e3:.3f} ms, ratio {t_new / t_old:.2f}")


if __name__ == "__main__":
    main()
