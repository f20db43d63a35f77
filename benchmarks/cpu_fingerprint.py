"""Not a timing: which operations of a training step give other bits on this CPU than on another.

Runs made on an AMD EPYC part from their records on an Intel Xeon, plain Adam's as GEMONN+'s (docs/RESULTS.md,
"Every method's runs move with the CPU"). This script computes each piece of one step from
one fixed state, built from the project's counter hash and the shipped MNIST-5k images (no random generator whose
vector code could itself differ), and prints a short hash of each result, one operation per line:

- an MLP 784-300-100-10 and LeNet-5: the gradient of the cross-entropy as the baselines take it (the module's
  own parameters), as a GEMONN trunk takes it (the module pointed at row ``r`` of a population, each row at
  another offset from a 64-byte boundary: ``FlatParams.bound``), and by vmap over four rows;
- the masked Adam step with decoupled decay (``masked_adam_step``), eager and compiled, and torch's AdamW;
- float32 ``exp``, ``log``, ``sqrt`` and ``pow(·, -0.25)`` (eager) over a fixed grid.

Run it on two machines and compare the lines: the first that differs names the operation to look at.
``python benchmarks/cpu_fingerprint.py`` (one thread, as the bench runs).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from ggevo.data.sources import load_arrays
from ggevo.ea import FlatParams
from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.operators.counter_rng import bits_to_uniform, counter_hash
from ggevo.ea.operators.lamarck import masked_adam_step
from ggevo.lit.tasks import classification_loss
from ggevo.models import MLP, LeNet5

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phases import cpu_line  # noqa: E402

ROWS = 4


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()[:12]


def fixed_values(n: int, salt: int, scale: float) -> torch.Tensor:
    """``n`` float32 values in (-scale, scale) from the project's counter hash keyed by ``salt`` (integer
    arithmetic, then exact conversions): the same bits on any machine."""
    h = counter_hash(torch.arange(n, dtype=torch.int64), torch.tensor([salt, 0x5EED], dtype=torch.int64))
    return ((bits_to_uniform(h, torch.float64) * 2 - 1) * scale).to(torch.float32)


def population(flat: FlatParams, rows: int) -> torch.Tensor:
    """``rows`` networks (rows×D): each a fixed vector, a fifth of its weights zero (a pruned network)."""
    X = torch.stack([fixed_values(flat.dim, r, 0.1) for r in range(rows)])
    zero = fixed_values(X.numel(), 99, 1.0).view_as(X).abs() < 0.2
    return X.masked_fill(zero, 0.0)


def report_model(name: str, model: torch.nn.Module, batch) -> None:
    flat = FlatParams(model)
    X = population(flat, ROWS)
    # the baselines' path: the module's own (fresh, aligned) parameters
    flat.load_(X[0])
    model.zero_grad()
    classification_loss(model(batch[0]), batch).backward()
    own = torch.cat([p.grad.reshape(-1) for p in flat.params])
    print(f"{name}: gradient, module's own parameters: {digest(own)}")
    # the trunk's path: the module pointed at a row of a population (rows start at other byte offsets)
    loop = PopulationEvaluator(flat, classification_loss, "loop")
    for r in range(ROWS):
        flat.load_(X[r])
        model.zero_grad()
        classification_loss(model(batch[0]), batch).backward()
        ref = torch.cat([p.grad.reshape(-1) for p in flat.params])
        loss, grad = loop(X[r:r + 1], batch)
        same = "the same bits" if torch.equal(grad[0], ref) else "OTHER BITS"
        print(f"{name}: gradient, row {r} of the population (byte offset {X[r].data_ptr() % 64} from 64): "
              f"{digest(grad[0])}, {same} as the module's own; loss {digest(loss)}")
    vm = PopulationEvaluator(flat, classification_loss, "vmap")
    losses, grads = vm(X, batch)
    print(f"{name}: gradients of {ROWS} rows by vmap: {digest(grads)}; losses {digest(losses)}")


def report_step() -> None:
    D = 100_003
    X = fixed_values(D, 1, 0.1).unsqueeze(0).masked_fill(fixed_values(D, 2, 1.0).abs().unsqueeze(0) < 0.2, 0.0)
    G = fixed_values(D, 3, 1e-2).unsqueeze(0)
    M, V = fixed_values(D, 4, 1e-3).unsqueeze(0), fixed_values(D, 5, 1e-5).unsqueeze(0).abs()
    T = torch.tensor([7.0])
    for compiled in (False, True):
        out = masked_adam_step(X, G, M, V, T, lr=0.005, compiled=compiled, weight_decay=0.5)
        print(f"masked Adam step with decay ({'compiled' if compiled else 'eager'}): "
              + ", ".join(f"{k} {digest(v)}" for k, v in zip("XMV", out[:3])))
    p = torch.nn.Parameter(X[0].clone())
    opt = torch.optim.AdamW([p], lr=0.005, weight_decay=0.5)
    p.grad = G[0].clone()
    opt.step()
    print(f"torch.optim.AdamW step (the baselines' kind): {digest(p)}")


def report_math() -> None:
    x = fixed_values(4_000_003, 7, 20.0)
    print(f"float32 exp: {digest(torch.exp(x))}; log: {digest(torch.log(x.abs() + 1e-3))}; "
          f"sqrt: {digest(torch.sqrt(x.abs()))} ({(torch.sqrt(x.abs()) != x.abs().double().sqrt().float()).sum().item()} "
          f"of {x.numel()} not correctly rounded)")
    # a density's step-size factor (GEMONN+'s lr_density_exponent: density ** -0.25), over a long tensor and over
    # a population's 10 rows and a trunk's 1 (shorter than one vector)
    d = x.abs() / 20.0 + 1e-4
    print(f"float32 pow(density, -0.25): {digest(d.pow(-0.25))}; 10 values {digest(d[:10].pow(-0.25))}; "
          f"1 value {digest(d[:1].pow(-0.25))} ({(d.pow(-0.25) != d.double().pow(-0.25).float()).sum().item()} of "
          f"{d.numel()} not correctly rounded)")


def main() -> None:
    torch.set_num_threads(1)
    print(cpu_line())
    print(f"torch {torch.__version__}, 1 thread, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    images, labels = load_arrays("mnist5k")
    x = torch.from_numpy(np.ascontiguousarray(images[:64]))
    y = torch.from_numpy(np.ascontiguousarray(labels[:64]))
    report_model("MLP 784-300-100-10", MLP(784, [300, 100], 10), (x, y))
    report_model("LeNet-5", LeNet5(channels=1, size=28), (x, y))
    report_step()
    report_math()


if __name__ == "__main__":
    main()
