"""Counter-based random bits: one 32-bit hash per tensor entry from a key drawn off a Generator.

Drawing ``P×D`` uniforms from torch's Mersenne Twister costs more than the whole crossover
arithmetic (benchmarks/generation.py). A keyed integer hash of each entry's index gives the
same stream in eager and compiled code, costs a few fused integer ops, and keeps the run a
pure function of the ``torch.Generator``: only the two 32-bit keys are drawn from it.
"""

from __future__ import annotations

import torch

_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    # (x * c) mod 2**32 without overflowing int64: split c into 16-bit halves.
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    # "lowbias32" integer finaliser (C. Wellons), a bijection on 32-bit words.
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def counter_hash(counter: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """32-bit hash (int64 in [0, 2**32)) of each entry of ``counter`` (int64, < 2**32) under ``key`` (2,)."""
    return _mix32(_mix32(counter ^ key[0]) ^ key[1])


def remix(h: torch.Tensor) -> torch.Tensor:
    """A second 32-bit word per entry, derived from the first by one more mixing round."""
    return _mix32(h ^ 0x9E3779B9)


def bits_to_uniform(h: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Open-interval uniforms in (0, 1) from bits 9..31 of ``h``: ``(2k + 1) / 2**24``, exact in float32."""
    return ((h >> 9) * 2 + 1).to(dtype) * (2.0**-24)


# The same words in int32 lanes (twice as many per vector instruction as int64): multiplication
# wraps modulo 2**32 as the 32-bit hash needs, and right shifts are masked to be logical.
def _to_i32(x: torch.Tensor) -> torch.Tensor:
    """int64 values in [0, 2**32) (or any int64, taken modulo 2**32) as int32 words with the same bits."""
    return (((x + 2**31) & _M32) - 2**31).to(torch.int32)


def _signed(c: int) -> int:
    return c - 2**32 if c >= 2**31 else c


def _mix32_i32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _signed(0x7FEB352D)
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * _signed(0x846CA68B)
    return x ^ ((x >> 16) & 0xFFFF)


def counter_hash_i32(counter: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """``counter_hash`` as int32 words (same bits): ``counter`` int64 (< 2**32), ``key`` (2,) int64."""
    k = _to_i32(key)
    return _mix32_i32(_mix32_i32(_to_i32(counter) ^ k[0]) ^ k[1])


def remix_i32(h: torch.Tensor) -> torch.Tensor:
    """``remix`` of int32 words."""
    return _mix32_i32(h ^ _signed(0x9E3779B9))


def bits_to_uniform_i32(h: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``bits_to_uniform`` of int32 words: the same uniforms."""
    return (((h >> 9) & 0x7FFFFF) * 2 + 1).to(dtype) * (2.0**-24)
