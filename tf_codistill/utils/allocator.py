"""glibc malloc arenas, capped before TensorFlow starts its thread pools.

glibc gives threads their own malloc arenas (up to 8 per core). TensorFlow's CPU thread
pools then allocate and free a step's buffers across many arenas, and glibc unmaps and
remaps them every step. Measured with the time-to-target experiment's codistilled group
(``configs/experiment_hmm.flags``, XLA, 2 cores): about 390 mmap/munmap pairs and 25-30 ms
of system time per step, more than the teacher's forward pass itself, where a plain step
makes half as many. Two arenas remove that. A ``MALLOC_ARENA_MAX`` the user sets wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

ENV = "MALLOC_ARENA_MAX"
DEFAULT_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt parameter, <malloc.h>


def cap_malloc_arenas(count: int = DEFAULT_ARENAS) -> int | None:
    """Caps this process's malloc arenas at ``count`` and sets ``MALLOC_ARENA_MAX`` for the
    processes it starts; returns the cap applied, or None (the user's own setting, which
    glibc read at start, or not glibc: macOS, musl)."""
    if ENV in os.environ:
        return None
    os.environ[ENV] = str(count)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    return count if mallopt(_M_ARENA_MAX, count) == 1 else None
