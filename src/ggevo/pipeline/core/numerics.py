"""Subnormal floats flushed to zero on the CPU, in every thread that computes (``flush_denormal``).

As the sigmoid autoencoder trains, small weights, their gradients and Adam's second moments
drift into float32's subnormal range (below 1.18e-38). x86 cores handle subnormal operands in
microcode: on an Intel Xeon a 128×500 @ 500×784 matmul whose inputs are subnormal costs a few
hundred times a normal one, an elementwise ``x*b+x`` several times (AMD cores pay less), so late
generations of a run cost several times its first ones (``benchmarks/generation.py`` prints both).
The CPU's flush-to-zero (FTZ) and denormals-are-zero (DAZ) modes make such values 0 instead; a
value that small changes no loss at float32 precision, but the last bits of a run can differ, so
``flush_denormal: false`` keeps the CPU's default (gradual underflow) and today's numbers.

The modes live in each thread's MXCSR register. ``torch.set_flush_denormal`` sets the calling
thread's only, and a thread copies its creator's when it starts, so torch's OpenMP workers,
started at the first parallel operation, miss a setting made after them. ``flush_denormals``
therefore also runs the setting inside one OpenMP parallel region of the runtime torch loaded
(libgomp), once on each of its threads, and likewise in any other copy of libgomp loaded beside it
(scikit-learn ships one; picking the wrong copy leaves torch's threads unset): the setting holds
wherever torch computes, whenever it is made, and switching it off restores every thread. A process started from a flushing one can start
flushing too (seen on the Intel machine), so a run sets the mode explicitly either way.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from pathlib import Path

import torch

from ggevo.pipeline.core.errors import ConfigError

_REGION = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _openmp_runtimes() -> list[ctypes.CDLL]:
    """Every OpenMP runtime (libgomp) this process loaded, torch's own first; empty on another platform.

    Other packages bring their own copy (scikit-learn's ``scikit_learn.libs/libgomp-*.so``), each with
    its own threads, and ``/proc/self/maps`` lists them by address, not by owner: torch's is the one
    that lies under torch's installation.
    """
    if not sys.platform.startswith("linux"):
        return []
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    paths = list(dict.fromkeys(line.split()[-1] for line in maps if "libgomp" in line.rsplit("/", 1)[-1]))
    home = Path(torch.__file__).resolve().parent
    paths.sort(key=lambda path: not _under(Path(path), home))
    runtimes = []
    for path in paths:
        try:
            gomp = ctypes.CDLL(path)  # already loaded: the same instance, the same threads
        except OSError:
            continue
        if hasattr(gomp, "GOMP_parallel"):
            gomp.GOMP_parallel.argtypes = [_REGION, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
            gomp.GOMP_parallel.restype = None
            runtimes.append(gomp)
    return runtimes


def _under(path: Path, home: Path) -> bool:
    """Whether ``path`` is torch's: inside its package folder or the wheel's ``torch.libs`` beside it."""
    resolved = path.resolve()
    return resolved.is_relative_to(home) or resolved.is_relative_to(home.parent / "torch.libs")


def flush_denormals(on: bool) -> int:
    """FTZ and DAZ ``on`` (or off) in the calling thread and in every thread of each OpenMP pool.

    Returns how many threads of torch's pool (the calling one included) took the setting; 1 where
    no OpenMP runtime is loaded, 0 where the CPU has no such mode (e.g. not x86).
    """
    if not torch.set_flush_denormal(on) and on:
        return 0
    counts = []
    for gomp in _openmp_runtimes():
        threads: set[int] = {threading.get_ident()}
        lock = threading.Lock()

        def region(_: int | None, threads=threads, lock=lock) -> None:  # once on each thread of the pool
            torch.set_flush_denormal(on)
            with lock:
                threads.add(threading.get_ident())

        callback = _REGION(region)  # kept referenced until the region has ended
        gomp.GOMP_parallel(callback, None, torch.get_num_threads(), 0)
        counts.append(len(threads))
    return counts[0] if counts else 1  # no runtime: threads started from now on copy the calling thread's mode


def apply_numerics_setting(cfg) -> bool:
    """``cfg.flush_denormal`` (default true) applied to this process; returns whether flushing is on."""
    setting = cfg.get("flush_denormal", True)
    if not isinstance(setting, bool):
        raise ConfigError(f"flush_denormal: must be true or false, got {setting!r}")
    taken = flush_denormals(setting)
    return setting and taken > 0
