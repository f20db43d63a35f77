"""The paper configuration's evaluation (``experiment=paper_ae``: N=50 tied autoencoders 784-500-784 with the
sign agreement of their tied gradient, batch 128) with the agreement as one kernel, against the same
evaluation with the agreement computed op by op as before (the sum, the product, the comparison, the
selection: each a pass over all 50 networks' 392,000 tied entries under ``vmap``), interleaved in one process.

Both give the same numbers bit for bit (``tests/models/test_autoencoder.py``); the ratio is the kernel's
saving on a whole evaluation, by ``vmap`` (the configured strategy) and by the loop.

    python benchmarks/tied_gradient.py                # two threads, as ggevo-train on 2 cores
    python benchmarks/tied_gradient.py --threads 1
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager

import torch

from ggevo.compiling import compile_available
from ggevo.data.sources import load_arrays
from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.flat import FlatParams
from ggevo.ea.init import initial_population
from ggevo.lit.tasks import reconstruction_loss
from ggevo.models import TiedAutoencoder, autoencoder
from phases import median_seconds, set_up_as_ggevo_train


def op_by_op(ctx, g_enc: torch.Tensor, g_dec: torch.Tensor):
    """``_TiedUse.backward`` with the agreement as eager torch evaluates it, one operation at a time."""
    return (autoencoder.agreed_sum(g_enc, g_dec) if ctx.agree else g_enc + g_dec), None


@contextmanager
def agreement_op_by_op():
    fused = autoencoder._TiedUse.backward
    autoencoder._TiedUse.backward = staticmethod(op_by_op)
    try:
        yield
    finally:
        autoencoder._TiedUse.backward = staticmethod(fused)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pop-size", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    set_up_as_ggevo_train(args.threads)
    torch.manual_seed(0)
    flat = FlatParams(TiedAutoencoder(784, 500, sign_agreement=True))
    g = torch.Generator().manual_seed(0)
    X = initial_population(flat.layout, args.pop_size, generator=g)
    images = torch.from_numpy(load_arrays("mnist5k")[0])
    batch = (images[torch.randperm(len(images), generator=g)[:128]],)
    print(f"N={args.pop_size}, D={flat.dim:,}, batch 128, torch {torch.__version__}, {args.threads} threads, "
          f"kernel compiled: {compile_available(torch.device('cpu'))}; median of {args.rounds} interleaved rounds "
          f"of {args.repeats} evaluations each")
    for strategy in ("vmap", "loop"):
        evaluate = PopulationEvaluator(flat, reconstruction_loss, strategy)

        def op_by_op_evaluation():
            with agreement_op_by_op():
                evaluate(X, batch)

        fused, old = [], []
        for _ in range(args.rounds):
            fused.append(median_seconds(lambda: evaluate(X, batch), args.repeats, warmup=1))
            old.append(median_seconds(op_by_op_evaluation, args.repeats, warmup=1))
        t_new, t_old = sorted(fused)[args.rounds // 2], sorted(old)[args.rounds // 2]
        print(f"evaluation of {args.pop_size} networks by {strategy}: one kernel {t_new * 1e3:.1f} ms against "
              f"op by op {t_old * 1e3:.1f} ms, ratio {t_new / t_old:.2f}")


if __name__ == "__main__":
    main()
