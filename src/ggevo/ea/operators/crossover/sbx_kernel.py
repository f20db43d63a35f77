"""The fused per-coordinate kernel behind plain SBX and GEMONN's gradient-guided SBX.

One function computes both children of every pair in a single pass, so ``torch.compile``
fuses it into one loop (docs/ALGORITHM.md, "Gradient-guided crossover", every rule):

- ``a = min(p, q)``, ``b = max(p, q)``; ``ga``/``gb`` the gradients of the parents holding them;
- spread factor ``β(u) = (2u)^(1/(η+1))`` for ``u ≤ 0.5`` else ``(2 − 2u)^(−1/(η+1))``;
- guided: child 1's ``u`` lies in (0.5, 1) where ``ga > 0`` and in (0, 0.5) where ``ga < 0``;
  child 2 takes the other half (the reference's ``miu1``/``miu2``, two independent uniforms);
  where ``ga = 0`` both children share one ``u ~ U(0, 1)`` (symmetric, plain SBX);
- sparsity preservation: in flagged pairs, ``β = 1`` where the parent on that side is 0;
- gradient-directed exchange: on the coordinates whose random bit is set, child 1 takes
  child 2's value where ``ga < 0`` and child 2 takes child 1's where ``gb > 0``;
- children returned in the parents' order, clipped to ``[lower, upper]``.
"""

from __future__ import annotations

import torch

from ggevo.compiling import maybe_compiled
from ggevo.ea.operators.counter_rng import (
    bits_to_uniform,
    bits_to_uniform_i32,
    counter_hash_i32,
    remix_i32,
)


def spreads(h_low: torch.Tensor, h_high: torch.Tensor, eta: float, dtype: torch.dtype):
    """β from the lower SBX half ``u ~ U(0, 0.5)`` and from the upper half ``u ~ U(0.5, 1)``.

    The two halves come from independent uniforms, as in the reference (its ``miu1``/``miu2``).
    Written as ``v^k`` and ``(1 − w)^(−k)`` for uniforms ``v, w`` in (0, 1): ``u = (1 + w)/2``
    itself rounds to 1 in float32 for ``w`` near 1, which would make β infinite.
    """
    k = 1.0 / (eta + 1.0)
    v = bits_to_uniform(h_low, dtype)
    w = bits_to_uniform(h_high, dtype)
    return torch.exp(k * torch.log(v)), torch.exp(-k * torch.log(1.0 - w))


def spread(h_low: torch.Tensor, high: torch.Tensor, eta: float, dtype: torch.dtype) -> torch.Tensor:
    """β of each coordinate from the upper SBX half where ``high``, else from the lower half.

    Exactly ``torch.where(high, *reversed(spreads(h_low, remix(h_low), eta, dtype)))``, written as one
    logarithm and one exponential of the selected uniform: the compiled kernel then computes one
    spread per child instead of both halves, and keeps no N×D intermediate between loops.
    ``h_low`` holds the hash words as int32 (``counter_hash_i32``).
    """
    k = 1.0 / (eta + 1.0)
    v = bits_to_uniform_i32(h_low, dtype)
    w = bits_to_uniform_i32(remix_i32(h_low), dtype)
    return torch.exp(torch.where(high, -k, k) * torch.log(torch.where(high, 1.0 - w, v)))


def sbx_kernel(
    X: torch.Tensor,
    G: torch.Tensor,
    pairs: torch.Tensor,
    keep_zeros: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    key: torch.Tensor,
    eta: float,
    guided: bool,
    exchange: bool,
) -> torch.Tensor:
    """Children (2×P×D) of the pairs ``(X[pairs[0, i]], X[pairs[1, i]])`` of a population ``X`` (n×D).

    ``[0, i]`` takes the place of ``pairs[0, i]``, ``[1, i]`` of ``pairs[1, i]``. ``G`` (n×D) holds
    the gradients (ignored unless ``guided`` or ``exchange``), ``keep_zeros`` (P×1 bool) flags the
    pairs under sparsity preservation, ``lower``/``upper`` (D,) are the bounds and ``key`` (2,)
    int64 keys the per-coordinate random bits. Indexing inside the kernel lets the compiled
    form read the parents in place instead of gathering copies.
    """
    p, q = X[pairs[0]], X[pairs[1]]
    gp, gq = G[pairs[0]], G[pairs[1]]
    n_pairs, dim = p.shape
    counter = torch.arange(n_pairs * dim, device=p.device, dtype=torch.int64).view(n_pairs, dim)
    h_low = counter_hash_i32(counter, key)  # int32 words: twice the lanes of int64 per instruction
    # u ~ U(0, 1) is a fair coin between the two halves: plain SBX and the ga = 0 case use it.
    coin = (h_low & 2) != 0

    swap = p > q
    a = torch.where(swap, q, p)
    b = torch.where(swap, p, q)
    if guided:
        ga = torch.where(swap, gq, gp)
        high1 = (ga > 0) | ((ga == 0) & coin)
        high2 = (ga < 0) | ((ga == 0) & coin)
        beta1 = spread(h_low, high1, eta, p.dtype)
        beta2 = spread(h_low, high2, eta, p.dtype)
    else:
        beta1 = beta2 = spread(h_low, coin, eta, p.dtype)
    beta1 = torch.where(keep_zeros & (a == 0), 1.0, beta1)
    beta2 = torch.where(keep_zeros & (b == 0), 1.0, beta2)

    mid = 0.5 * (a + b)
    half = 0.5 * (b - a)
    c1 = mid - beta1 * half
    c2 = mid + beta2 * half
    if exchange:
        ga = torch.where(swap, gq, gp)
        gb = torch.where(swap, gp, gq)
        flip = (h_low & 1) == 1
        c1, c2 = torch.where(flip & (ga < 0), c2, c1), torch.where(flip & (gb > 0), c1, c2)

    cp = torch.clamp(torch.where(swap, c2, c1), lower, upper)
    cq = torch.clamp(torch.where(swap, c1, c2), lower, upper)
    return torch.stack((cp, cq))


def run_kernel(
    X: torch.Tensor,
    G: torch.Tensor | None,
    pairs: torch.Tensor,
    *,
    eta: float,
    sparsity_preservation: float,
    guided: bool,
    exchange: bool,
    lower: torch.Tensor | None,
    upper: torch.Tensor | None,
    generator: torch.Generator,
    compiled: bool = False,
) -> torch.Tensor:
    """Validate, draw the pair flags and the hash key from ``generator``, run the kernel.

    ``X`` (n×D) population, ``G`` (n×D) gradients or None, ``pairs`` (2×P) row indices.
    """
    if X.dim() != 2 or pairs.dim() != 2 or pairs.shape[0] != 2:
        raise ValueError(f"need X (n, D) and pairs (2, P), got {tuple(X.shape)} and {tuple(pairs.shape)}")
    if eta < 0:
        raise ValueError(f"eta must be non-negative, got {eta}")
    if not 0.0 <= sparsity_preservation <= 1.0:
        raise ValueError(f"sparsity_preservation must be a probability, got {sparsity_preservation}")
    n_pairs, dim = pairs.shape[1], X.shape[1]
    if n_pairs * dim >= 2**32:
        raise ValueError("more than 2**32 coordinates per generation: the counter hash would repeat")
    if G is None:
        if guided or exchange:
            raise ValueError("gradient-guided rules need the parents' gradients")
        G = X
    elif G.shape != X.shape:
        raise ValueError(f"gradients {tuple(G.shape)} must match the population {tuple(X.shape)}")
    dev, dt = X.device, X.dtype
    keep = (torch.rand(n_pairs, 1, generator=generator) < sparsity_preservation).to(dev)
    key = torch.randint(0, 2**32, (2,), generator=generator, dtype=torch.int64).to(dev)
    inf = torch.tensor(float("inf"), dtype=dt, device=dev)
    lower = (-inf).expand(dim) if lower is None else lower
    upper = inf.expand(dim) if upper is None else upper
    fn = maybe_compiled(sbx_kernel, compiled)
    return fn(X, G, pairs.to(dev), keep, lower, upper, key, float(eta), guided, exchange)


def pair_rows(parents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """View parents (2×P×D) as a population (2P×D) and the pairs (2×P) that index it."""
    if parents.dim() != 3 or parents.shape[0] != 2:
        raise ValueError(f"parents must be (2, P, D), got {tuple(parents.shape)}")
    n_pairs = parents.shape[1]
    return parents.reshape(2 * n_pairs, -1), torch.arange(2 * n_pairs).view(2, n_pairs)
