"""A plain transcription of the reference crossover, pair by pair, for the fused kernel to match.

It follows the reference code's steps literally (sort each pair, pick ``miu`` per child by
the gradient's sign, β by the textbook formula in float64, zeros kept, exchange, unsort),
drawing its uniforms from the same counter hash as the kernel.
"""

from __future__ import annotations

import numpy as np
import torch

from ggevo.ea.operators.counter_rng import bits_to_uniform, counter_hash, remix


def beta_of(u: np.ndarray, eta: float) -> np.ndarray:
    return np.where(u <= 0.5, (2 * u) ** (1 / (eta + 1)), (2 - 2 * u) ** (-1 / (eta + 1)))


def reference_children(X, G, pairs, keep, lower, upper, key, eta, guided, exchange) -> np.ndarray:
    n_pairs, dim = pairs.shape[1], X.shape[1]
    counter = torch.arange(n_pairs * dim, dtype=torch.int64).view(n_pairs, dim)
    h_low = counter_hash(counter, key)
    h_high = remix(h_low)
    v = bits_to_uniform(h_low, torch.float64).numpy()
    w = bits_to_uniform(h_high, torch.float64).numpy()
    coin = ((h_low & 2) == 0).numpy()
    flip = ((h_low & 1) == 1).numpy()
    X, G = X.double().numpy(), G.double().numpy()
    lo, hi = lower.double().numpy(), upper.double().numpy()
    out = np.empty((2, n_pairs, dim))
    for i in range(n_pairs):
        p, q = X[pairs[0, i]].copy(), X[pairs[1, i]].copy()
        gp, gq = G[pairs[0, i]].copy(), G[pairs[1, i]].copy()
        dictor = p > q
        p[dictor], q[dictor] = q[dictor], p[dictor].copy()
        gp[dictor], gq[dictor] = gq[dictor], gp[dictor].copy()
        a, b, ga, gb = p, q, gp, gq
        miu1, miu2 = v[i] / 2, 0.5 + w[i] / 2
        miu_temp = np.where(coin[i], miu1, miu2)
        if guided:
            u1 = np.where(ga > 0, miu2, np.where(ga < 0, miu1, miu_temp))
            u2 = np.where(-ga > 0, miu2, np.where(-ga < 0, miu1, miu_temp))
        else:
            u1 = u2 = miu_temp
        beta1, beta2 = beta_of(u1, eta), beta_of(u2, eta)
        if keep[i]:
            beta1[a == 0] = 1
            beta2[b == 0] = 1
        c1 = (a + b) / 2 - beta1 * (b - a) / 2
        c2 = (a + b) / 2 + beta2 * (b - a) / 2
        if exchange:
            k1 = flip[i] & (ga < 0)
            k2 = flip[i] & (gb > 0)
            c1[k1], c2[k2] = c2[k1].copy(), c1[k2].copy()
        c1[dictor], c2[dictor] = c2[dictor], c1[dictor].copy()
        out[0, i], out[1, i] = np.clip(c1, lo, hi), np.clip(c2, lo, hi)
    return out
