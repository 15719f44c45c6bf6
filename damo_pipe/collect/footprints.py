"""Memory footprints recorded beside the snapshots: /proc/PID/statm and /proc/meminfo."""
from __future__ import annotations

import os

import numpy as np

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

#: statm fields (pages) -> stored column (bytes)
STATM_COLUMNS = ("vsz_bytes", "rss_bytes", "shared_bytes", "text_bytes", "lib_bytes",
                 "data_bytes", "dirty_bytes")
FOOTPRINT_COLUMNS = {"time_ns": np.int64, "pid": np.int64,
                     **{c: np.uint64 for c in STATM_COLUMNS}}

#: /proc/meminfo keys recorded (kB in the file, bytes stored)
MEMINFO_KEYS = ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached",
                "Active", "Inactive", "AnonPages", "Mapped", "Shmem", "SwapTotal", "SwapFree",
                "AnonHugePages")
MEMINFO_COLUMNS = {"time_ns": np.int64, **{k: np.uint64 for k in MEMINFO_KEYS}}


def read_statm(pid, proc_root="/proc"):
    """dict of STATM_COLUMNS in bytes, or None when the process is gone."""
    try:
        with open(os.path.join(proc_root, str(pid), "statm"), "rb") as f:
            fields = f.read().split()
    except OSError:
        return None
    vals = [int(x) * PAGE_SIZE for x in fields[:7]]
    vals += [0] * (7 - len(vals))
    return dict(zip(STATM_COLUMNS, vals))


def read_meminfo(proc_root="/proc"):
    """dict of MEMINFO_KEYS in bytes (missing keys 0), or None when unreadable."""
    try:
        with open(os.path.join(proc_root, "meminfo"), "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    out = dict.fromkeys(MEMINFO_KEYS, 0)
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in out:
            parts = rest.split()
            if parts:
                mult = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
                out[key] = int(parts[0]) * mult
    return out
