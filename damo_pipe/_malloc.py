"""glibc malloc tuning for the streaming conversions.

A conversion allocates and frees the same large buffers over and over (4 MiB pieces of
inflated JSON, chunk columns of a few MiB, compressed chunks). With glibc's defaults a
freed block above the mmap threshold goes back to the kernel, and so does the top of a
heap above the trim threshold: the next block of the same size is faulted in afresh, a
page at a time (a 10M-region json_compressed conversion: ~300,000 page faults, 0.6-1.2 s
of system time). :func:`retain_freed_memory` keeps such blocks in the process for reuse
(peak RSS unchanged: it is set by the live data, not by what is kept between uses).
"""
from __future__ import annotations

import ctypes
import sys

#: mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks below this come from the heap (glibc's largest accepted value on 64 bits)
MMAP_THRESHOLD = 32 << 20
#: free memory at a heap's top kept up to this size
TRIM_THRESHOLD = 256 << 20


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (process-wide, so only
    the command line calls it: ``damo-analyze convert``; a library user's process keeps
    its own settings; calling it again is harmless). Returns whether they are set
    (False off glibc, or when mallopt refuses)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    return ok
