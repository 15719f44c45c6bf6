"""The columnar record model every reader produces and every report consumes.

A *record* is the monitoring history of one target (FORMATS.md §0). Its metadata are
plain Python values; its snapshots and regions are numpy columns, one array per field,
so no Python object exists per region. Regions of snapshot ``k`` are the rows
``region_offset[k] : region_offset[k] + nr_regions[k]`` of the region columns (CSR).
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Optional

import numpy as np

#: ``age`` value stored when a format carries no age (binary files, no-age traces).
AGE_UNKNOWN = -1

#: per-snapshot ``sample_interval_us`` value meaning "not recorded".
NO_SAMPLE_INTERVAL = float("nan")

REGION_DTYPES = {
    "start": np.uint64,        # bytes, inclusive
    "end": np.uint64,          # bytes, exclusive
    "nr_accesses": np.int64,   # positive samples in the aggregation interval
    "age": np.int64,           # aggregation intervals; AGE_UNKNOWN when unknown
    "sz_filter_passed": np.uint64,  # bytes that passed DAMOS filters
}

#: optional float64 region columns (NaN = null), present only when a source gave them
OPTIONAL_REGION_COLUMNS = ("age_usec", "nr_accesses_percent")

DAMOS_STAT_FIELDS = (
    "nr_tried", "sz_tried", "nr_applied", "sz_applied",
    "sz_ops_filter_passed", "qt_exceeds", "nr_snapshots", "max_nr_snapshots",
)

SNAPSHOT_DTYPES = {
    "start_ns": np.int64,
    "end_ns": np.int64,
    "region_offset": np.int64,
    "nr_regions": np.int64,
    "total_bytes": np.uint64,
    "sample_interval_us": np.float64,   # NaN = not recorded
    "has_damos_stats": np.bool_,
    **{"damos_" + f: np.uint64 for f in DAMOS_STAT_FIELDS},
}


@dataclasses.dataclass
class IntervalsGoal:
    """DAMON's intervals auto-tuning goal; ``aggrs == 0`` means tuning is off."""

    access_bp: float = 0.0
    aggrs: int = 0
    min_sample_us: float = 0
    max_sample_us: float = 0


@dataclasses.dataclass
class Intervals:
    """Monitoring intervals in microseconds (ints when the source gave whole numbers)."""

    sample_us: float
    aggr_us: float
    ops_update_us: float
    goal: Optional[IntervalsGoal] = None


def _empty(dtype):
    return np.zeros(0, dtype=dtype)


class RegionColumns:
    """Per-region columns of equal length (see REGION_DTYPES)."""

    __slots__ = tuple(REGION_DTYPES) + ("probe_offset", "probe_hits") + OPTIONAL_REGION_COLUMNS

    def __init__(self, start=None, end=None, nr_accesses=None, age=None,
                 sz_filter_passed=None, probe_offset=None, probe_hits=None,
                 age_usec=None, nr_accesses_percent=None):
        self.start = np.ascontiguousarray(start if start is not None else _empty(np.uint64), np.uint64)
        n = len(self.start)
        self.end = np.ascontiguousarray(end if end is not None else _empty(np.uint64), np.uint64)
        self.nr_accesses = np.ascontiguousarray(
            nr_accesses if nr_accesses is not None else np.zeros(n, np.int64), np.int64)
        self.age = np.ascontiguousarray(
            age if age is not None else np.full(n, AGE_UNKNOWN, np.int64), np.int64)
        self.sz_filter_passed = np.ascontiguousarray(
            sz_filter_passed if sz_filter_passed is not None else np.zeros(n, np.uint64), np.uint64)
        # Optional ragged probe_hits (damo 3.x): hits of region i are
        # probe_hits[probe_offset[i]:probe_offset[i+1]]; None when no region has any.
        self.probe_offset = probe_offset
        self.probe_hits = probe_hits
        # Optional values a source stated explicitly (damo JSON ``age.usec`` /
        # ``nr_accesses.percent``; DAMON_STAT records give ages only in µs): float64,
        # NaN where the source left them null. None when no region has one.
        self.age_usec = None if age_usec is None else np.ascontiguousarray(age_usec, np.float64)
        self.nr_accesses_percent = (None if nr_accesses_percent is None
                                    else np.ascontiguousarray(nr_accesses_percent, np.float64))
        for name in tuple(REGION_DTYPES) + OPTIONAL_REGION_COLUMNS:
            if getattr(self, name) is None:
                continue
            if len(getattr(self, name)) != n:
                raise ValueError("region column %r has %d rows, expected %d"
                                 % (name, len(getattr(self, name)), n))

    def __len__(self):
        return len(self.start)

    def take(self, lo, hi):
        """Rows ``lo:hi`` as a new RegionColumns (views, no copy)."""
        po = ph = None
        if self.probe_offset is not None:
            po = self.probe_offset[lo:hi + 1] - self.probe_offset[lo]
            ph = self.probe_hits[self.probe_offset[lo]:self.probe_offset[hi]]
        return RegionColumns(self.start[lo:hi], self.end[lo:hi], self.nr_accesses[lo:hi],
                             self.age[lo:hi], self.sz_filter_passed[lo:hi], po, ph,
                             **{name: None if getattr(self, name) is None else getattr(self, name)[lo:hi]
                                for name in OPTIONAL_REGION_COLUMNS})

    def probe_hits_of(self, i):
        if self.probe_offset is None:
            return []
        return [int(x) for x in self.probe_hits[self.probe_offset[i]:self.probe_offset[i + 1]]]

    @staticmethod
    def concat(parts):
        parts = list(parts)
        if not parts:
            return RegionColumns()
        cols = {name: np.concatenate([getattr(p, name) for p in parts]) for name in REGION_DTYPES}
        po = ph = None
        if any(p.probe_offset is not None for p in parts):
            offs, hits, base = [np.zeros(1, np.int64)], [], 0
            for p in parts:
                if p.probe_offset is None:
                    offs.append(np.full(len(p), base, np.int64))
                else:
                    offs.append(p.probe_offset[1:] + base)
                    hits.append(p.probe_hits)
                    base += int(p.probe_offset[-1])
            po = np.concatenate(offs)
            ph = np.concatenate(hits) if hits else np.zeros(0, np.int64)
        for name in OPTIONAL_REGION_COLUMNS:
            if any(getattr(p, name) is not None for p in parts):
                cols[name] = np.concatenate([np.full(len(p), np.nan) if getattr(p, name) is None
                                             else getattr(p, name) for p in parts])
        return RegionColumns(probe_offset=po, probe_hits=ph, **cols)


class SnapshotColumns:
    """Per-snapshot columns of equal length (see SNAPSHOT_DTYPES)."""

    __slots__ = tuple(SNAPSHOT_DTYPES)

    def __init__(self, **columns):
        n = len(columns["end_ns"]) if "end_ns" in columns else 0
        for name, dtype in SNAPSHOT_DTYPES.items():
            value = columns.pop(name, None)
            if value is None:
                if name == "sample_interval_us":
                    value = np.full(n, np.nan)
                else:
                    value = np.zeros(n, dtype)
            value = np.ascontiguousarray(value, dtype)
            if len(value) != n:
                raise ValueError("snapshot column %r has %d rows, expected %d" % (name, len(value), n))
            setattr(self, name, value)
        if columns:
            raise TypeError("unknown snapshot columns: %s" % ", ".join(sorted(columns)))

    def __len__(self):
        return len(self.end_ns)

    def window(self, time_range):
        """[lo, hi) of the snapshots whose ``[start_ns, end_ns]`` meets ``time_range``
        (all for None): the first whose end is >= its start up to the first whose start
        is >= its end (time-ordered snapshots)."""
        if time_range is None:
            return 0, len(self)
        lo = int(np.searchsorted(self.end_ns, time_range[0], side="left"))
        hi = int(np.searchsorted(self.start_ns, time_range[1], side="left"))
        return lo, max(lo, hi)

    def take(self, lo, hi):
        return SnapshotColumns(**{name: getattr(self, name)[lo:hi] for name in SNAPSHOT_DTYPES})

    def damos_stats_of(self, k):
        """The DAMOS stats of snapshot k as a dict, or None."""
        if not self.has_damos_stats[k]:
            return None
        return {f: int(getattr(self, "damos_" + f)[k]) for f in DAMOS_STAT_FIELDS}


@dataclasses.dataclass
class Record:
    """One monitoring target's history: metadata plus columnar snapshots and regions.

    ``first_start_ns`` holds the exact (possibly fractional) start of the first snapshot
    when a reader deduced it from end times (trace and binary formats, FORMATS.md §0);
    ``snapshots.start_ns[0]`` then holds its truncation. It is None when the start was
    read from the file.
    """

    target_id: int
    snapshots: SnapshotColumns = dataclasses.field(default_factory=SnapshotColumns)
    regions: RegionColumns = dataclasses.field(default_factory=RegionColumns)
    kdamond_idx: Optional[int] = None
    context_idx: Optional[int] = None
    scheme_idx: Optional[int] = None
    intervals: Optional[Intervals] = None
    scheme_filters: list = dataclasses.field(default_factory=list)
    data_source: str = "unknown"
    ops: Optional[str] = None
    pid: Optional[int] = None
    first_start_ns: Optional[float] = None

    @property
    def nr_snapshots(self):
        return len(self.snapshots)

    @property
    def nr_regions(self):
        return len(self.regions)

    def snapshot_start(self, k):
        """Start of snapshot k as damo sees it (a float for a deduced first start)."""
        if k == 0 and self.first_start_ns is not None:
            return self.first_start_ns
        return int(self.snapshots.start_ns[k])

    def snapshot_regions(self, k):
        """Region rows of snapshot k (views)."""
        lo = int(self.snapshots.region_offset[k])
        return self.regions.take(lo, lo + int(self.snapshots.nr_regions[k]))

    def region_bounds(self, k):
        lo = int(self.snapshots.region_offset[k])
        return lo, lo + int(self.snapshots.nr_regions[k])

    def meta_dict(self):
        """Metadata fields as a dict (for comparisons and display)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("snapshots", "regions")}

    def meta(self):
        """Metadata only (same record with no snapshots)."""
        return dataclasses.replace(self, snapshots=SnapshotColumns(), regions=RegionColumns(),
                                   first_start_ns=None)

    def slice_snapshots(self, lo, hi):
        """Snapshots lo:hi as a record whose region offsets start at 0."""
        lo = max(0, lo)
        hi = min(hi, self.nr_snapshots)
        if hi <= lo:
            return self.meta()
        r_lo = int(self.snapshots.region_offset[lo])
        r_hi = int(self.snapshots.region_offset[hi - 1] + self.snapshots.nr_regions[hi - 1])
        snaps = self.snapshots.take(lo, hi)
        snaps.region_offset = snaps.region_offset - r_lo
        return dataclasses.replace(self, snapshots=snaps, regions=self.regions.take(r_lo, r_hi),
                                   first_start_ns=self.first_start_ns if lo == 0 else None)

    def check(self):
        """Validate internal consistency; raise ValueError on the first problem."""
        s = self.snapshots
        if len(s) and (s.region_offset[0] != 0 or np.any(s.region_offset[1:] != np.cumsum(s.nr_regions)[:-1])):
            raise ValueError("snapshot region offsets are not contiguous")
        if int(s.nr_regions.sum()) != len(self.regions):
            raise ValueError("snapshots reference %d regions but %d are stored"
                             % (int(s.nr_regions.sum()), len(self.regions)))


class RecordBuilder:
    """Accumulates snapshots into growing numpy columns (amortised O(1) appends).

    Readers use it to build a record snapshot by snapshot without a Python object
    per region.
    """

    def __init__(self, meta: Record):
        self.meta = meta
        self._snap = {name: [] for name in SNAPSHOT_DTYPES}
        self._regions = []
        self._nr_regions_total = 0

    def add_snapshot(self, start_ns, end_ns, regions: RegionColumns, total_bytes=None,
                     sample_interval_us=None, damos_stats=None):
        n = len(regions)
        if total_bytes is None:
            total_bytes = int((regions.end - regions.start).sum()) if n else 0
        snap = self._snap
        snap["start_ns"].append(start_ns)
        snap["end_ns"].append(end_ns)
        snap["region_offset"].append(self._nr_regions_total)
        snap["nr_regions"].append(n)
        snap["total_bytes"].append(total_bytes)
        snap["sample_interval_us"].append(math.nan if sample_interval_us is None else sample_interval_us)
        snap["has_damos_stats"].append(damos_stats is not None)
        for f in DAMOS_STAT_FIELDS:
            snap["damos_" + f].append(0 if damos_stats is None else int(damos_stats.get(f, 0)))
        self._regions.append(regions)
        self._nr_regions_total += n

    def build(self) -> Record:
        snaps = SnapshotColumns(**{name: np.array(vals, dtype=SNAPSHOT_DTYPES[name])
                                   if vals else np.zeros(0, SNAPSHOT_DTYPES[name])
                                   for name, vals in self._snap.items()})
        return dataclasses.replace(self.meta, snapshots=snaps,
                                   regions=RegionColumns.concat(self._regions))


def concat_records(parts):
    """Join chunks of one record (same metadata, consecutive snapshots) into one record."""
    parts = [p for p in parts if p.nr_snapshots]
    if not parts:
        raise ValueError("nothing to concatenate")
    if len(parts) == 1:
        return parts[0]
    cols = {}
    base = 0
    offsets = []
    for p in parts:
        offsets.append(p.snapshots.region_offset + base)
        base += p.nr_regions
    for name in SNAPSHOT_DTYPES:
        cols[name] = (np.concatenate(offsets) if name == "region_offset"
                      else np.concatenate([getattr(p.snapshots, name) for p in parts]))
    return dataclasses.replace(parts[0], snapshots=SnapshotColumns(**cols),
                               regions=RegionColumns.concat(p.regions for p in parts))


class ChunkPiece(NamedTuple):
    """A chunk from :meth:`damo_pipe.archive.ArchiveReader.iter_pieces`: ``chunk`` (a Record) starting at
    snapshot ``first_index`` of its record; ``continues``: its (only) snapshot goes on
    from the previous piece; ``goes_on``: it goes on in the next piece."""

    chunk: Record
    first_index: int
    continues: bool
    goes_on: bool
