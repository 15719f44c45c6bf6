"""Synthetic DAMON records for benchmarks (and tests): ``make_record`` plus writers of
every input flavour (legacy binary, trace text in perf/trace-cmd/trace_pipe layouts;
json/json_compressed come from ``damo_pipe.formats.write_records``).

Usable by every benchmark::

    from benchmarks.gen import make_record
    rec = make_record(nr_snapshots=1000, regions_per_snapshot=1000, seed=1)

The data look like a vaddr monitoring run: ascending, contiguous regions over a few
address ranges, snapshots 100 ms apart, small nr_accesses and ages.
"""
from __future__ import annotations

import struct

import numpy as np

from damo_pipe.model import (AGE_UNKNOWN, Intervals, IntervalsGoal, Record, RegionColumns,
                             SnapshotColumns)

BASE_NS = 1_000_000_000_000
AGGR_NS = 100_000_000


def make_record(nr_snapshots, regions_per_snapshot, seed, with_intervals=True,
                target_id=0, with_age=True) -> Record:
    """A record of ``nr_snapshots`` x ``regions_per_snapshot`` regions (deterministic)."""
    rng = np.random.default_rng(seed)
    n = nr_snapshots * regions_per_snapshot
    # region boundaries: per snapshot, contiguous 4 KiB-aligned regions from a base
    sizes = (rng.integers(1, 2048, size=n, dtype=np.int64) * 4096).astype(np.uint64)
    sizes2 = sizes.reshape(nr_snapshots, regions_per_snapshot)
    base = np.uint64(0x7F00_0000_0000)
    ends = base + np.cumsum(sizes2, axis=1, dtype=np.uint64)
    starts = ends - sizes2
    nr_acc = rng.integers(0, 21, size=n, dtype=np.int64)
    age = (rng.integers(0, 500, size=n, dtype=np.int64) if with_age
           else np.full(n, AGE_UNKNOWN, np.int64))
    end_ns = BASE_NS + AGGR_NS * np.arange(1, nr_snapshots + 1, dtype=np.int64) \
        + rng.integers(0, 1000, size=nr_snapshots, dtype=np.int64) * 1000
    start_ns = np.concatenate([[end_ns[0] - AGGR_NS], end_ns[:-1]]).astype(np.int64)
    nr = np.full(nr_snapshots, regions_per_snapshot, np.int64)
    snaps = SnapshotColumns(start_ns=start_ns, end_ns=end_ns,
                            region_offset=np.arange(nr_snapshots, dtype=np.int64) * regions_per_snapshot,
                            nr_regions=nr, total_bytes=sizes2.sum(axis=1, dtype=np.uint64))
    regions = RegionColumns(starts.ravel(), ends.ravel(), nr_acc, age)
    intervals = None
    if with_intervals:
        intervals = Intervals(5000, 100000, 1000000, IntervalsGoal(0.0, 0, 0, 0))
    return Record(target_id=target_id, snapshots=snaps, regions=regions, kdamond_idx=0,
                  context_idx=0, intervals=intervals)


# ---------------------------------------------------------------- file writers

def write_binary(records, path, version=2):
    """Legacy binary record file (one target per block, record after record, as damo
    <= 2.0.1 wrote it)."""
    with open(path, "wb") as f:
        if version >= 1:
            f.write(b"damon_recfmt_ver" + struct.pack("<i", version))
        tid_fmt = "<i" if version == 1 else "<Q"
        dt = np.dtype([("s", "<u8"), ("e", "<u8"), ("a", "<u4")])
        for rec in records:
            S, R = rec.snapshots, rec.regions
            for k in range(rec.nr_snapshots):
                end = int(S.end_ns[k])
                lo, n = int(S.region_offset[k]), int(S.nr_regions[k])
                f.write(struct.pack("<qqI", end // 1_000_000_000, end % 1_000_000_000, 1))
                f.write(struct.pack(tid_fmt, rec.target_id) + struct.pack("<I", n))
                arr = np.empty(n, dt)
                arr["s"] = R.start[lo:lo + n]
                arr["e"] = R.end[lo:lo + n]
                arr["a"] = R.nr_accesses[lo:lo + n]
                f.write(arr.tobytes())


_STYLES = {
    "perf": "       kdamond.0  4452 [001] %s: damon:damon_aggregated: target_id=%d nr_regions=%d %d-%d: %d%s\n",
    "trace-cmd": "       kdamond.0-4452  [001] .....  %s: damon_aggregated:     target_id=%d nr_regions=%d %d-%d: %d%s\n",
    "trace_pipe": "       kdamond.0-207     [000] .....    %s: damon_aggregated: target_id=%d nr_regions=%d %d-%d: %d%s\n",
}


def iter_trace_text(records, style="perf"):
    """Trace text lines (bytes, one snapshot per item) of records in the given style."""
    fmt = _STYLES[style]
    for rec in records:
        S, R = rec.snapshots, rec.regions
        starts, ends = R.start.tolist(), R.end.tolist()
        accs, ages = R.nr_accesses.tolist(), R.age.tolist()
        for k in range(rec.nr_snapshots):
            ts = "%.6f" % (int(S.end_ns[k]) / 1e9)
            lo, n = int(S.region_offset[k]), int(S.nr_regions[k])
            yield "".join(fmt % (ts, rec.target_id, n, starts[i], ends[i], accs[i],
                                 "" if ages[i] == AGE_UNKNOWN else " %d" % ages[i])
                          for i in range(lo, lo + n)).encode()


def write_trace_text(records, path, style="perf"):
    with open(path, "wb") as f:
        for piece in iter_trace_text(records, style):
            f.write(piece)


# ---------------------------------------------------------------- big inputs, bounded memory

def iter_slices(nr_snapshots, regions_per_snapshot, step=1000, with_intervals=True):
    """``make_record`` slices of ``step`` snapshots making one record of
    ``nr_snapshots`` x ``regions_per_snapshot`` regions (slice k seeded k, times
    continuing): big inputs are written slice by slice, never held whole."""
    for k in range(0, nr_snapshots, step):
        r = make_record(min(step, nr_snapshots - k), regions_per_snapshot, seed=k,
                        with_intervals=with_intervals)
        r.snapshots.end_ns += k * AGGR_NS
        r.snapshots.start_ns += k * AGGR_NS
        yield r


def write_binary_big(path, nr_snapshots, regions_per_snapshot, step=1000, target_id=0):
    """A legacy binary v2 file of one record, written slice by slice (vectorised: one
    structured array per slice, snapshot headers included)."""
    with open(path, "wb") as f:
        f.write(b"damon_recfmt_ver" + struct.pack("<i", 2))
        for r in iter_slices(nr_snapshots, regions_per_snapshot, step):
            f.write(_binary_slice_bytes(r, target_id))


def _binary_slice_bytes(rec, target_id):
    n = regions = int(rec.snapshots.nr_regions[0])
    assert (rec.snapshots.nr_regions == n).all()
    dt = np.dtype([("sec", "<i8"), ("nsec", "<i8"), ("nt", "<u4"), ("tid", "<u8"),
                   ("n", "<u4"), ("r", [("s", "<u8"), ("e", "<u8"), ("a", "<u4")], (regions,))])
    arr = np.zeros(rec.nr_snapshots, dt)
    end = rec.snapshots.end_ns
    arr["sec"], arr["nsec"], arr["nt"] = end // 1_000_000_000, end % 1_000_000_000, 1
    arr["tid"], arr["n"] = target_id, n
    R = rec.regions
    arr["r"]["s"] = R.start.reshape(-1, regions)
    arr["r"]["e"] = R.end.reshape(-1, regions)
    arr["r"]["a"] = R.nr_accesses.reshape(-1, regions)
    return arr.tobytes()


def write_trace_text_big(path, nr_snapshots, regions_per_snapshot, step=1000, style="perf"):
    """Trace text of one record, written slice by slice."""
    with open(path, "wb") as f:
        for r in iter_slices(nr_snapshots, regions_per_snapshot, step):
            for piece in iter_trace_text([r], style):
                f.write(piece)


def write_archive_big(path, nr_snapshots, regions_per_snapshot, step=1000, compression="lz4"):
    """An archive of one record (with the heatmap guide summary, as ``damo-collect`` and
    ``convert`` write it), appended slice by slice."""
    from damo_pipe.analyze.heatmap import GuideBuilder
    from damo_pipe.archive import ArchiveWriter
    meta = make_record(1, 1, seed=0)
    with ArchiveWriter(path, compression=compression, summariser=GuideBuilder,
                       provenance={"source_format": "benchmark"}) as w:
        w.add_record(Record(target_id=0, kdamond_idx=0, context_idx=0,
                            intervals=meta.intervals))
        for r in iter_slices(nr_snapshots, regions_per_snapshot, step):
            w.append(0, r)
            w.flush()


def write_page_archive(path, nr_snapshots, regions_per_snapshot, piece=1 << 20,
                       gap_every=1 << 20, compression="lz4"):
    """A page-granularity archive: ``nr_snapshots`` snapshots of ``regions_per_snapshot``
    4 KiB regions each (a 2 s aggregation interval), a 64 MiB unmapped gap after every
    ``gap_every`` regions (mappings), access counts and ages varying by region and
    snapshot. Each snapshot is streamed to the writer in pieces of ``piece`` regions
    (``append_open``/``end_open``, as the tracer writes one too big to hold): bounded
    memory whatever the sizes."""
    from damo_pipe.archive import ArchiveWriter
    aggr_ns = 2_000_000_000
    meta = Record(target_id=0, intervals=Intervals(5000, 2_000_000, 20_000_000,
                                                   IntervalsGoal(0.0, 0, 0, 0)))
    page = 4096
    with ArchiveWriter(str(path), compression=compression,
                       provenance={"source_format": "benchmark"}) as w:
        idx = w.add_record(meta)
        for k in range(nr_snapshots):
            for lo in range(0, regions_per_snapshot, piece):
                i = np.arange(lo, min(regions_per_snapshot, lo + piece), dtype=np.uint64)
                start = np.uint64(0x7f0000000000) + i * np.uint64(page) \
                    + (i // np.uint64(gap_every)) * np.uint64(64 << 20)
                acc = ((i * np.uint64(7) + np.uint64(k * 3)) % np.uint64(21)).astype(np.int64)
                acc[(i // np.uint64(4096)) % np.uint64(3) == 0] = 0   # cold stretches
                age = ((i * np.uint64(13) + np.uint64(k)) % np.uint64(50)).astype(np.int64)
                w.append_open(idx, RegionColumns(start, start + np.uint64(page), acc, age))
            end = BASE_NS + (k + 1) * aggr_ns
            w.end_open(idx, end - aggr_ns, end)
            w.flush()
