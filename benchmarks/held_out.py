"""What the held-out score (``optimizer.select_on: val``) costs a generation, by each evaluation strategy: the
bench's N + 2 = 12 networks scored forward only on 500 MNIST-5k images (the validation split's size), as
``EvolutionModule._held_out`` scores them (``PopulationEvaluator.losses``), for the bench's three models: LeNet-5
and the MLP 784-300-100-10 by their error rate, the tied autoencoder 784-500-784 by its MSE. vmap (the runs'
default, ``evaluation.strategy``) and the loop over networks alternate over several rounds in one process; the
last column says whether the two give the same scores bit for bit.

    python benchmarks/held_out.py                # torch's default threads, 5 rounds
    python benchmarks/held_out.py --threads 1 --rounds 8
"""

from __future__ import annotations

import argparse
import statistics

import torch

from ggevo.data.sources import load_arrays
from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.flat import FlatParams
from ggevo.ea.init import initial_population
from ggevo.lit.tasks import accuracy, reconstruction_loss
from ggevo.models import MLP, LeNet5, TiedAutoencoder
from phases import cpu_line, median_seconds

STRATEGIES = ("vmap", "loop")


def cases(images: int):
    """``(name, model, score, batch)`` of the bench's three models on ``images`` MNIST-5k images."""
    x, y = load_arrays("mnist5k")
    x, y = torch.from_numpy(x[:images]), torch.from_numpy(y[:images]).long()
    return [
        ("LeNet-5, error rate", LeNet5(channels=1, size=28, classes=10), accuracy, (x.view(-1, 1, 28, 28), y)),
        ("MLP 784-300-100-10, error rate", MLP(784, [300, 100], 10), accuracy, (x, y)),
        ("tied AE 784-500-784, MSE", TiedAutoencoder(784, 500), reconstruction_loss, (x, y)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=12)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(cpu_line())
    print(f"{args.networks} networks scored forward on {args.images} images, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} alternated rounds, each the median of 5 scorings")
    print(f"{'model':32s} {'vmap ms':>9s} {'loop ms':>9s} {'vmap / loop':>12s}  same scores")
    for name, model, score, batch in cases(args.images):
        flat = FlatParams(model)
        X = initial_population(flat.layout, args.networks, generator=torch.Generator().manual_seed(0))
        evaluators = {s: PopulationEvaluator(flat, score, s) for s in STRATEGIES}
        scores = {s: evaluators[s].losses(X, batch) for s in STRATEGIES}  # also the warm-up
        times: dict[str, list[float]] = {s: [] for s in STRATEGIES}
        for _ in range(args.rounds):
            for s in STRATEGIES:
                times[s].append(median_seconds(lambda s=s: evaluators[s].losses(X, batch), 5) * 1e3)
        v, lp = statistics.median(times["vmap"]), statistics.median(times["loop"])
        same = "yes" if torch.equal(scores["vmap"], scores["loop"]) else \
            f"no (max difference {float((scores['vmap'] - scores['loop']).abs().max()):.1e})"
        print(f"{name:32s} {v:9.1f} {lp:9.1f} {v / lp:11.2f}x  {same}")


if __name__ == "__main__":
    main()
