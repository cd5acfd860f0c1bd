"""Keep freed CPU memory in the process for reuse, instead of giving large blocks back to the OS.

Why: glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it on
free. PyTorch's CPU allocator has no cache, so each large activation (a 1024 px StyleGAN2 layer: 134 MB per image)
starts as untouched pages, and the first write to each 4 KiB page faults into the kernel, which zeroes it. On the
test machine that made a copy of 134 MB take 0.19 s instead of 0.025 s; the 1024 px decoder's figures with and
without it are in BENCHMARKS.md (``python -m benchmarks.bench_psp``). With the thresholds raised, freed blocks
return to malloc's heap and the next layer reuses them, already mapped.

The cost: the process keeps its peak heap size until it exits (the memory is reused, not returned to the OS).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Mapping, Optional

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# the largest value mallopt takes (an int); above any single block a 1024 px batch of 8 allocates
_RETAIN_BYTES = 2**31 - 1
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")


def retain_freed_memory(env: Optional[Mapping[str, str]] = None) -> bool:
    """Raise glibc's mmap and trim thresholds so freed blocks stay mapped for reuse; True when applied.

    A no-op (False) off Linux/glibc, and when the user configured the allocator (``MALLOC_*_`` variables,
    ``GLIBC_TUNABLES``, or another malloc through ``LD_PRELOAD``), whose choice wins.
    """
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or any(env.get(name) for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # the trim threshold first: once mmap is off for large blocks, freed ones must not be trimmed away either
    return bool(mallopt(_M_TRIM_THRESHOLD, _RETAIN_BYTES)) and bool(mallopt(_M_MMAP_THRESHOLD, _RETAIN_BYTES))
