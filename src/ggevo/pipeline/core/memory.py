"""Large CPU tensors allocated once per process, not once per generation.

A generation allocates several N×D tensors (children, their gradients, the vmap outputs): 79 MB
each at the paper's size. glibc serves every allocation above 32 MB with a fresh ``mmap`` and
returns it with ``munmap`` when freed, so each new tensor pays one page fault per 4 KiB page
as it is first written: ~24 ms per 79 MB tensor on the 2-core machine, more than the operators
that fill it (``benchmarks/generation.py --no-reuse-memory`` shows the difference). With
``reuse_memory: true`` (the default) the training process serves large blocks from the heap
and keeps freed ones for the next generation instead of handing them back to the kernel:
the process holds its peak memory until it ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from ggevo.pipeline.core.errors import ConfigError

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# freed memory at the heap's top kept for reuse up to this size (a C int)
_KEEP_BYTES = 2**31 - 1


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return libc if hasattr(libc, "mallopt") else None  # musl has no mallopt
    except OSError:
        return None


def reuse_large_allocations() -> bool:
    """Serve large allocations from the heap and keep freed memory for reuse (glibc only).

    Returns whether the allocator took the settings (False elsewhere: nothing changes).
    """
    libc = _libc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
    return ok and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES) == 1


def apply_memory_setting(cfg) -> bool:
    """``cfg.reuse_memory`` (default true) applied to this process; returns whether it is in effect."""
    setting = cfg.get("reuse_memory", True)
    if not isinstance(setting, bool):
        raise ConfigError(f"reuse_memory: must be true or false, got {setting!r}")
    return reuse_large_allocations() if setting else False
