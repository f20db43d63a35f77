"""``torch.compile`` where the machine can build kernels: the one rule every layer's fused kernels follow.

Eager torch runs each elementwise op as its own pass over memory; compiled, a function of several
elementwise ops is one fused loop. The population's kernels (``ggevo.ea.compiling``, the operators)
and a model's own gradient rules (``ggevo.models.autoencoder``) are built here, once per process,
and give the same bits as their eager forms (each has a test that compares them).
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings
from collections.abc import Callable

import torch

_CACHE: dict[Callable, Callable] = {}
_BROKEN: set[Callable] = set()


def compile_available(device: torch.device) -> bool:
    """Whether ``torch.compile`` can build kernels here (a C++ compiler on CPU, Triton on CUDA)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def maybe_compiled(fn: Callable, enabled: bool) -> Callable:
    """``fn`` itself, or its compiled form (built once per process). A call with an empty tensor among
    its arguments (no rows to step, no parents to gather) runs ``fn`` eagerly: dynamo specialises a size of
    0, so compiling it would build a second graph, a second or two of a cold start, for no work."""
    if not enabled:
        return fn
    if fn not in _CACHE:
        _trust_cpu_flags()
        # Shape-generic: one build serves every population size and model (and, through
        # inductor's on-disk cache, every later process); ~5% slower than a static build.
        built = torch.compile(fn, dynamic=True, fullgraph=True)

        @functools.wraps(fn)
        def call(*args: object, **kwargs: object) -> object:
            if any(isinstance(a, torch.Tensor) and a.numel() == 0 for a in (*args, *kwargs.values())):
                return fn(*args, **kwargs)
            return built(*args, **kwargs)

        _CACHE[fn] = call
    return _CACHE[fn]


def _trust_cpu_flags() -> None:
    """Let inductor take each vector instruction set ``/proc/cpuinfo`` lists without its generic test (a g++
    build of a test program with the set's flags, and a Python process that loads it, per set): the default
    job's compiling 15.3 -> 9.5 s with an empty kernel cache and 2.8 -> 1.9 s with a warm one on a 2-core AMD
    EPYC, family 25 model 17 (``benchmarks/cold_compile.py``). The checks particular to a set (AVX-512's
    BF16 and VNNI, AMX's tiles) still build and run, so the same set is picked (AVX-512 VNNI there). A
    compiler that cannot build it fails the first kernel instead, and the callers' fallback runs it eagerly
    with a warning. ``TORCHINDUCTOR_VEC_ISA_OK`` set in the environment is kept."""
    if os.environ.get("TORCHINDUCTOR_VEC_ISA_OK") is None:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.vec_isa_ok = True


def compiled_where_available(fn: Callable, *tensors: torch.Tensor) -> torch.Tensor:
    """``fn(*tensors)``, compiled where ``compile_available`` on their device; if the build fails (a
    compiler missing or broken), warn once and run ``fn`` eagerly from then on. For kernels with no
    setting of their own (a model's gradient rule): the numbers are the same either way."""
    if fn not in _BROKEN and compile_available(tensors[0].device):
        try:
            return maybe_compiled(fn, True)(*tensors)
        except Exception as err:
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); {fn.__name__} runs eager")
            _BROKEN.add(fn)
    return fn(*tensors)
