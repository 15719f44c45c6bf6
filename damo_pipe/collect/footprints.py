"""Memory footprints recorded beside the snapshots: /proc/PID/statm and /proc/meminfo.

:class:`FootprintRecorder` is the side recorder that writes them into the archive's
``collect/footprints`` and ``collect/meminfo`` tables.
"""
from __future__ import annotations

import os
import time

import numpy as np

from damo_pipe.collect.side_recorders import SideRecorder

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
    """dict of STATM_COLUMNS in bytes, or None when the process is gone (also when it is
    a zombie not yet reaped: its statm reads all zeros, its memory is already freed)."""
    try:
        with open(os.path.join(proc_root, str(pid), "statm"), "rb") as f:
            fields = f.read().split()
    except OSError:
        return None
    if not any(int(x) for x in fields):
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


class FootprintRecorder(SideRecorder):
    """statm of the target processes and /proc/meminfo, every ``interval`` seconds of
    snapshots and once more before each archive file closes (the state at the end)."""

    name = "footprints"

    def __init__(self, interval=1.0, proc_root="/proc"):
        self.interval = interval
        self.proc_root = proc_root
        self._next = 0.0
        self._pids = []
        self.t_foot = self.t_mem = None

    def open(self, writer, session):
        spec = session.spec
        self._pids = list(spec.pids) if spec.ops != "paddr" else []
        self.t_foot = writer.add_side_table("footprints", FOOTPRINT_COLUMNS)
        self.t_mem = writer.add_side_table("meminfo", MEMINFO_COLUMNS)

    def sample(self, now):
        if now >= self._next:
            self._next = now + self.interval
            self.record()

    def close(self, writer):
        self.record()

    def record(self):
        """One row per live target process and one meminfo row, stamped now."""
        t = time.time_ns()
        for pid in self._pids:
            st = read_statm(pid, self.proc_root)
            if st is not None:
                self.t_foot.append(time_ns=t, pid=pid, **st)
        mi = read_meminfo(self.proc_root)
        if mi is not None:
            self.t_mem.append(time_ns=t, **mi)
