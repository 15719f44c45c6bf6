"""Build the frozen back-compat archive ``archive-v1.h5`` (format version 1).

The archive under tests/data was written once, by the damo-pipe of 2026-12-04 (format
version 1, commit a38b37d), with ``python -m tests.data.make_archive_v1 OUT``. It is kept
as it was written: tests/unit/test_backcompat.py reads it with today's reader and
compares it with :func:`expected_records` / :func:`expected_side_rows`, which rebuild
the same content in memory from the same seed. Never regenerate the file with newer
code: the point is that later versions keep reading what this version wrote.
"""
import sys

import numpy as np

from damo_pipe.model import Intervals, IntervalsGoal, Record, RecordBuilder, RegionColumns

SEED = 20261204
#: the side-table columns the collector of format version 1 wrote (frozen here on purpose)
STATM_COLUMNS = ("vsz_bytes", "rss_bytes", "shared_bytes", "text_bytes", "lib_bytes",
                 "data_bytes", "dirty_bytes")
MEMINFO_KEYS = ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached",
                "Active", "Inactive", "AnonPages", "Mapped", "Shmem", "SwapTotal", "SwapFree",
                "AnonHugePages")
BASE_NS = 1_764_800_000_000_000_000
AGGR_NS = 2_000_000_000
NR_SNAPSHOTS = 24


def expected_records():
    """Two vaddr targets of one context: contiguous regions, a hot range that moves."""
    rng = np.random.default_rng(SEED)
    out = []
    for target_id, base in ((0, 0x55_0000_0000), (1, 0x7F00_0000_0000)):
        meta = Record(target_id=target_id, kdamond_idx=0, context_idx=0, pid=4000 + target_id,
                      intervals=Intervals(5000, 100000, 1000000, IntervalsGoal(0.0, 0, 0, 0)),
                      ops="vaddr", data_source="sysfs")
        b = RecordBuilder(meta)
        for k in range(NR_SNAPSHOTS):
            n = int(rng.integers(3, 12))
            sizes = rng.integers(1, 512, size=n).astype(np.uint64) * np.uint64(4096)
            ends = np.uint64(base) + np.cumsum(sizes, dtype=np.uint64)
            starts = ends - sizes
            acc = rng.integers(0, 21, size=n).astype(np.int64)
            acc[k % n] = 20
            age = rng.integers(0, 50, size=n).astype(np.int64)
            end_ns = BASE_NS + (k + 1) * AGGR_NS
            b.add_snapshot(end_ns - AGGR_NS, end_ns, RegionColumns(starts, ends, acc, age))
        out.append(b.build())
    return out


def expected_side_rows():
    """{table: [row dict, ...]} of the side tables the collector writes."""
    rows = {"footprints": [], "meminfo": []}
    for k in range(0, NR_SNAPSHOTS, 4):
        t = BASE_NS + k * AGGR_NS
        for pid in (4000, 4001):
            row = {c: (i + 1) * 4096 * (k + 10 + pid % 7) for i, c in enumerate(STATM_COLUMNS)}
            rows["footprints"].append(dict(time_ns=t, pid=pid, **row))
        mem = {key: (i + 1) * 1024 * (1000 + k) for i, key in enumerate(MEMINFO_KEYS)}
        rows["meminfo"].append(dict(time_ns=t, **mem))
    return rows


def write(path):
    from damo_pipe.archive import ArchiveWriter
    records = expected_records()
    with ArchiveWriter(path, swmr=True, provenance={"command": "make_archive_v1"}) as w:
        idx = [w.add_record(r) for r in records]
        tables = {"footprints": w.add_side_table("footprints", {
            "time_ns": np.int64, "pid": np.int64, **{c: np.uint64 for c in STATM_COLUMNS}}),
                  "meminfo": w.add_side_table("meminfo", {
            "time_ns": np.int64, **{k: np.uint64 for k in MEMINFO_KEYS}})}
        for k in range(NR_SNAPSHOTS):
            for i, r in zip(idx, records):
                w.append(i, r.slice_snapshots(k, k + 1))
            w.flush()
        for name, rows in expected_side_rows().items():
            for row in rows:
                tables[name].append(**row)
        w.flush()


if __name__ == "__main__":
    write(sys.argv[1])
