"""Where one GEMONN generation spends its time, as ratios measured in one run.

On the paper's configuration (N=50, 784-500-784 tied autoencoder, batch 128) it times
  (a) evaluating N networks (loss + gradient) by the per-individual loop and by vmap,
  (b) the variation operators (fused gradient-guided SBX + zeroing mutation),
  (c) selection and bookkeeping (ranking, crowding, tournament, survival, densities, status),
and prints (operators + selection) / evaluation and vmap / loop.

(b) and (c) are measured inside real ``GEMONN.step`` calls: the step's wall time minus the
time its evaluator spent, so nothing of the generation is left out.

    python benchmarks/generation.py                  # paper configuration
    python benchmarks/generation.py --hidden 100     # the default run's model
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ggevo.data.sources import load_arrays
from ggevo.ea import GEMONN, FlatParams
from ggevo.ea.evaluate import PopulationEvaluator, resolve_strategy
from ggevo.ea.init import initial_population
from ggevo.ea.operators.sbx_kernel import run_kernel
from ggevo.ea.operators.zero_mutation import zero_mutation_
from ggevo.ea.selection import binary_tournament, rank_and_crowding
from ggevo.lit.tasks import reconstruction_loss
from ggevo.models import TiedAutoencoder


def timed(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


class TimedEvaluator:
    """Wraps an evaluator and accumulates the seconds spent in it."""

    def __init__(self, evaluator: PopulationEvaluator):
        self.evaluator, self.seconds, self.calls = evaluator, 0.0, 0

    def __call__(self, X, batch):
        start = time.perf_counter()
        out = self.evaluator(X, batch)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pop-size", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--compile", choices=("auto", "true", "false"), default="auto")
    args = ap.parse_args()
    compile_opt = {"auto": "auto", "true": True, "false": False}[args.compile]
    torch.manual_seed(0)

    x, _ = load_arrays("mnist5k")
    data = torch.from_numpy(x)
    model = TiedAutoencoder(784, args.hidden)
    flat = FlatParams(model)
    n, dim = args.pop_size, flat.dim
    g = torch.Generator().manual_seed(0)
    batch = (data[torch.randperm(len(data), generator=g)[: args.batch_size]], torch.zeros(args.batch_size))
    X = initial_population(flat.layout, n, generator=g)
    print(f"N={n}, D={dim:,} (784-{args.hidden}-784 tied AE), batch {args.batch_size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    # (a) evaluation
    loop = PopulationEvaluator(flat, reconstruction_loss, "loop")
    vmap = PopulationEvaluator(flat, reconstruction_loss, "vmap")
    loop(X[:2], batch), vmap(X[:2], batch)
    t_loop = timed(lambda: loop(X, batch), args.repeats)
    t_vmap = timed(lambda: vmap(X, batch), args.repeats)
    _, G = loop(X, batch)

    # (b) the operators alone, on the same population
    opt = GEMONN(model.parameters(), pop_size=n, compile=compile_opt)
    compiled = opt._compiled()
    lo, hi = opt.bounds()
    pairs = binary_tournament(*rank_and_crowding(torch.rand(n, 2, generator=g)), n, generator=g).view(2, -1)

    def operators():
        children = run_kernel(X, G, pairs, eta=20.0, sparsity_preservation=0.5, guided=True, exchange=True,
                              lower=lo, upper=hi, generator=g, compiled=compiled).view(n, dim)
        zero_mutation_(children, generator=g)

    start = time.perf_counter()
    operators()
    first = time.perf_counter() - start
    t_ops = timed(operators, args.repeats)

    # (b)+(c) inside real generations (evaluated by what `auto` picks): step time minus evaluation time
    auto = resolve_strategy("auto", X.device)
    results = {}
    for reevaluate in (False, True):
        opt = GEMONN(model.parameters(), pop_size=n, compile=compiled, reevaluate_parents=reevaluate)
        ev = TimedEvaluator(loop if auto == "loop" else vmap)
        opt.step(lambda: (lambda P: ev(P, batch)))  # initialisation + first generation (warm-up)
        overheads, evals = [], []
        for _ in range(args.generations):
            ev.seconds = 0.0
            start = time.perf_counter()
            opt.step(lambda: (lambda P: ev(P, batch)))
            total = time.perf_counter() - start
            overheads.append(total - ev.seconds)
            evals.append(ev.seconds)
        results[reevaluate] = (statistics.median(overheads), statistics.median(evals))

    overhead = results[False][0]
    print(f"(a) evaluation of {n} networks: loop {t_loop:.3f} s, vmap {t_vmap:.3f} s")
    print(f"(b) operators ({'compiled' if compiled else 'eager'}; first call {first:.1f} s): {t_ops:.3f} s")
    print(f"(c) selection and bookkeeping: {max(overhead - t_ops, 0.0):.3f} s")
    print(f"in generations, population evaluated by {auto} (evaluation.strategy=auto)")
    print(f"generation without re-scoring: evaluation {results[False][1]:.3f} s, everything else {overhead:.3f} s")
    print(f"generation with re-scoring:    evaluation {results[True][1]:.3f} s, everything else {results[True][0]:.3f} s")
    print(f"ratio (operators+selection)/evaluation [N evaluations]:  {overhead / results[False][1]:.2f}")
    print(f"ratio (operators+selection)/evaluation [2N evaluations]: {results[True][0] / results[True][1]:.2f}")
    print(f"ratio vmap/loop: {t_vmap / t_loop:.2f}")


if __name__ == "__main__":
    main()
