"""damo's ``adjust_records`` / ``aggregate_snapshots`` (SEMANTICS.md §5), streaming.

Per record: drop the first ``skip`` snapshots, group the following ones into windows
(append until ``group[-1].end - group[0].start >= interval_us * 1000``; a trailing
incomplete group is discarded) and merge each window into one snapshot with damo's
region rule. damo's merge scans the base list linearly for every region (O(R²) per
snapshot); the Cython engine (``RegionMerger``) finds the same regions by bisection in an
address-sorted index and reproduces damo's discovery order and nested
``sz_filter_passed`` scaling exactly. ``_aggregate_py`` is the literal reference twin.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from damo_pipe._engine import ENGINES, select_engine
from damo_pipe.model import Record, RecordBuilder, RegionColumns

#: the compiled twin of the merge (``RegionMerger``)
KERNELS = "damo_pipe.analyze._report_kernels"


# ---------------------------------------------------------------------------
# reference twin: damo's algorithm with Python objects
# ---------------------------------------------------------------------------
class _PyRegion:
    __slots__ = ("start", "end", "samples", "age", "passed")

    def __init__(self, start, end, samples, age, passed):
        self.start, self.end, self.samples, self.age, self.passed = start, end, samples, age, passed

    def size(self):
        return self.end - self.start


def _aggregate_py(snapshots):
    """``snapshots``: list of lists of (start, end, samples, age, passed) tuples.

    Returns the merged base as a list of tuples in discovery order (damo's result).
    """
    base = []

    def add(x, acc):
        for b in base:
            if not (b.end <= x.start or x.end <= b.start):
                acc[id(b)] = (b, max(acc.get(id(b), (b, 0))[1], x.samples))
                parts = []
                if x.start < b.start:
                    parts.append((x.start, b.start))
                if b.end < x.end:
                    parts.append((b.end, x.end))
                for s, e in parts:
                    passed = int(x.passed / x.size() * (e - s)) if x.passed else 0
                    add(_PyRegion(s, e, x.samples, x.age, passed), acc)
                return
        base.append(x)

    for regions in snapshots:
        acc = {}
        for t in regions:
            add(_PyRegion(*t), acc)
        for b, v in acc.values():
            b.samples += v
    return [(b.start, b.end, b.samples, b.age, b.passed) for b in base]


def _regions_tuples(cols, lo, hi):
    return [(int(cols.start[r]), int(cols.end[r]), int(cols.nr_accesses[r]), int(cols.age[r]),
             int(cols.sz_filter_passed[r])) for r in range(lo, hi)]


# ---------------------------------------------------------------------------
# windows
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class MergedSnapshot:
    start: object
    end: int
    regions: RegionColumns

    @property
    def total_bytes(self):
        return int((self.regions.end - self.regions.start).sum()) if len(self.regions) else 0


def _identity_ok(cols, lo, hi):
    """True when a lone snapshot's regions merge into themselves (sorted, disjoint)."""
    if hi - lo <= 1:
        return True
    s = cols.start[lo:hi]
    e = cols.end[lo:hi]
    return bool(np.all(e >= s) and np.all(s[1:] >= e[:-1]))


class Windower:
    """damo's window state machine, fed chunk by chunk (state carried across chunks)."""

    def __init__(self, interval_us, skip=0, engine="cython"):
        self.limit = interval_us * 1000
        self.skip_remaining = skip
        self.K = select_engine(engine, KERNELS)     # None: the reference twin
        self.group_start = None
        self._merger = None
        self._py_group = None

    @property
    def idle(self):
        """No pending (incomplete) window."""
        return self.group_start is None

    def take_skip(self, chunk):
        """Drop the still-to-skip snapshots from the head of ``chunk``."""
        if self.skip_remaining <= 0:
            return chunk
        n = chunk.nr_snapshots
        k = min(n, self.skip_remaining)
        self.skip_remaining -= k
        return chunk.slice_snapshots(k, n) if k < n else None

    def feed(self, chunk):
        """Windows completed by the snapshots of ``chunk`` (list of MergedSnapshot)."""
        K = self.K
        out = []
        chunk = self.take_skip(chunk)
        if chunk is None:
            return out
        cols = chunk.regions
        snaps = chunk.snapshots
        limit = self.limit
        for k in range(chunk.nr_snapshots):
            lo, hi = chunk.region_bounds(k)
            s_start = chunk.snapshot_start(k)
            s_end = int(snaps.end_ns[k])
            if self.group_start is None:
                self.group_start = s_start
                # a window of one snapshot with well-formed regions merges into itself
                if s_end - s_start >= limit and _identity_ok(cols, lo, hi):
                    out.append(MergedSnapshot(s_start, s_end, cols.take(lo, hi)))
                    self.group_start = None
                    continue
                if K is None:
                    self._py_group = []
                else:
                    self._merger = K.RegionMerger()
            if K is None:
                self._py_group.append(_regions_tuples(cols, lo, hi))
            else:
                self._merger.add_snapshot(cols.start, cols.end, cols.nr_accesses, cols.age,
                                          cols.sz_filter_passed, lo, hi)
            if s_end - self.group_start >= limit:
                if K is None:
                    merged = _aggregate_py(self._py_group)
                    arr = np.array(merged, dtype=object).reshape(-1, 5)
                    rc = RegionColumns(np.array(arr[:, 0], np.uint64), np.array(arr[:, 1], np.uint64),
                                       np.array(arr[:, 2], np.int64), np.array(arr[:, 3], np.int64),
                                       np.array(arr[:, 4], np.uint64))
                else:
                    rc = RegionColumns(*self._merger.result())
                out.append(MergedSnapshot(self.group_start, s_end, rc))
                self.group_start = None
                self._merger = None
                self._py_group = None
        return out


def iter_windows(chunks, interval_us, skip=0, engine="cython"):
    """Yield one MergedSnapshot per complete window of the record given as ``chunks``.

    ``chunks``: iterable of Records holding consecutive snapshots of one record.
    A trailing incomplete window is discarded (damo).
    """
    w = Windower(interval_us, skip, engine)
    for chunk in chunks:
        yield from w.feed(chunk)


def adjust_record(meta, chunks, interval_us, skip=0, engine="cython", set_aggr=True):
    """The adjusted record (windows merged); ``meta.intervals.aggr_us`` := interval."""
    out_meta = meta.meta() if hasattr(meta, "meta") else meta
    if set_aggr and out_meta.intervals is not None:
        out_meta = dataclasses.replace(out_meta, intervals=dataclasses.replace(
            out_meta.intervals, aggr_us=interval_us))
    b = RecordBuilder(out_meta)
    first_float = None
    for n, w in enumerate(iter_windows(chunks, interval_us, skip, engine)):
        start = w.start
        if n == 0 and isinstance(start, float):
            first_float = start
            start = int(start)
        b.add_snapshot(start, w.end, w.regions, total_bytes=w.total_bytes)
    rec = b.build()
    if first_float is not None:
        rec.first_start_ns = first_float
    return rec


def adjust_records(records, interval_us, skip=0, engine="cython", set_aggr=True):
    """damo's adjust_records over a list of Records (or a RecordSource)."""
    from damo_pipe.analyze._chunks import RecordSource
    src = RecordSource.of(records)
    return [adjust_record(m, src.iter_chunks(i), interval_us, skip, engine, set_aggr)
            for i, m in enumerate(src.metas)]


def merge_snapshots(snapshot_regions, engine="cython"):
    """Merge a list of RegionColumns (one per snapshot) as damo's aggregate_snapshots.

    Returns RegionColumns of the base in damo's discovery order.
    """
    K = select_engine(engine, KERNELS)
    if K is None:
        merged = _aggregate_py([_regions_tuples(c, 0, len(c)) for c in snapshot_regions])
        if not merged:
            return RegionColumns()
        cols = list(zip(*merged))
        return RegionColumns(np.array(cols[0], np.uint64), np.array(cols[1], np.uint64),
                             np.array(cols[2], np.int64), np.array(cols[3], np.int64),
                             np.array(cols[4], np.uint64))
    m = K.RegionMerger()
    for c in snapshot_regions:
        m.add_snapshot(c.start, c.end, c.nr_accesses, c.age, c.sz_filter_passed, 0, len(c))
    return RegionColumns(*m.result())


__all__ = ["iter_windows", "adjust_record", "adjust_records", "merge_snapshots", "MergedSnapshot",
           "ENGINES", "Record"]
