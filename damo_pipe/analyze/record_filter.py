"""damo's record filter (SEMANTICS.md §6), used by ``report access`` and ``adjust``.

API (stable; the access report imports it)::

    add_filter_arguments(parser)          # the damo options, defaults 'min'/'max'
    filt = build_filter(args)              # RecordFilter; UsageError with damo's messages
    records = apply_record_filter(records, filt)   # new Records, inputs untouched
    cf = ChunkFilter(filt); part = cf(chunk)     # same, chunk by chunk of one record
    percent = region_percent(record)       # float64 array, NaN when the record has no intervals
    usec = region_usec(record)             # float64 array (age * aggr µs), NaN without intervals

Filling of ``nr_accesses.percent`` and ``age.usec``: damo computes them in place for
records with intervals (``percent = int(samples * 100.0 / (aggr / sample))``,
``usec = aggr_intervals * aggr``). The columnar model has no such columns, so they are
derived on demand by :func:`region_percent` / :func:`region_usec` with exactly those
formulas; :func:`apply_record_filter` uses the same functions to test the pattern.

Order of application (damo's): access pattern (size always; percent and age only with
intervals) -> address ranges (regions clipped) -> snapshot size -> snapshot time ->
snapshot index -> temperature. The ``--age`` quirk is kept: its values are µs.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from damo_pipe.errors import UsageError
from damo_pipe.model import OPTIONAL_REGION_COLUMNS, RecordBuilder, RegionColumns

U64_MAX = 2 ** 64 - 1

__all__ = ["RecordFilter", "ChunkFilter", "add_filter_arguments", "build_filter", "apply_record_filter",
           "region_percent", "region_usec", "region_temperature", "default_filter"]


@dataclasses.dataclass
class RecordFilter:
    """Inclusive [min, max] ranges; None = option not given (no test)."""

    sz_region: tuple = (0, U64_MAX)
    access_rate: tuple = (0, U64_MAX)      # percent
    age_us: tuple = (0, U64_MAX)           # µs (damo's --age quirk)
    address: Optional[list] = None         # [(start, end), ...] half-open
    sz_snapshot: Optional[tuple] = None
    snapshot_time: Optional[tuple] = None  # ns, absolute
    snapshot_idx: Optional[tuple] = None
    temperature: Optional[tuple] = None
    temperature_weights: tuple = (0, 100, 100)


def default_filter():
    return RecordFilter()


def add_filter_arguments(parser):
    """damo's filter options (each takes <min> <max>; --address is repeatable)."""
    parser.add_argument("--sz_region", metavar=("<min>", "<max>"), nargs=2,
                        help="only regions of this size range (bytes)")
    parser.add_argument("--access_rate", metavar=("<min>", "<max>"), nargs=2,
                        help="only regions of this access rate range (percent)")
    parser.add_argument("--age", metavar=("<min>", "<max>"), nargs=2,
                        help="only regions of this age range (the values are taken as µs, as damo does)")
    parser.add_argument("--address", metavar=("<start>", "<end>"), nargs=2, action="append",
                        help="only this address range (repeatable; regions are clipped)")
    parser.add_argument("--sz_snapshot", metavar=("<min>", "<max>"), nargs=2,
                        help="only snapshots of this total size range (bytes)")
    parser.add_argument("--snapshot_time", metavar=("<min>", "<max>"), nargs=2,
                        help="only snapshots within this time range (ns)")
    parser.add_argument("--snapshot_idx", metavar=("<min>", "<max>"), nargs=2,
                        help="only snapshots of this index range (per record, inclusive)")
    parser.add_argument("--temperature", metavar=("<min>", "<max>"), nargs=2,
                        help="only regions of this temperature range")


def _pair(words, conv, name):
    if words is None:
        return None
    try:
        lo, hi = conv(words[0]), conv(words[1])
    except (ValueError, TypeError, IndexError) as e:
        raise UsageError("wrong --%s input (%s)" % (name, e))
    if lo > hi:
        raise UsageError("wrong --%s input (start > end)" % name)
    return (lo, hi)


def build_filter(args):
    """RecordFilter from parsed options (attributes missing from ``args`` count as unset)."""
    from damo_pipe.formats.numbers import (damo_text_to_ns, damo_text_to_us, text_to_bytes,
                                           text_to_nr, text_to_percent)

    def pct(x):
        if x == "min":
            return 0
        if x == "max":
            return U64_MAX
        return text_to_percent(x)

    def nr(x):
        if x == "min":
            return 0
        if x == "max":
            return U64_MAX
        return text_to_nr(x)

    f = RecordFilter()
    get = lambda name: getattr(args, name, None)
    f.sz_region = _pair(get("sz_region"), text_to_bytes, "sz_region") or f.sz_region
    f.access_rate = _pair(get("access_rate"), pct, "access_rate") or f.access_rate
    f.age_us = _pair(get("age"), damo_text_to_us, "age") or f.age_us
    if get("address"):
        ranges = []
        for words in get("address"):
            try:
                s, e = text_to_bytes(words[0]), text_to_bytes(words[1])
                if isinstance(s, float) or isinstance(e, float):
                    s, e = int(s), int(e)
            except (ValueError, TypeError) as ex:
                raise UsageError("wrong --address input (conversion to bytes failed (%s))" % ex)
            if s > e:
                raise UsageError("wrong --address input (start > end)")
            ranges.append((s, e))
        srt = sorted(ranges)
        for a, b in zip(srt, srt[1:]):
            if b[0] < a[1]:
                raise UsageError("wrong --address input (overlapping ranges)")
        f.address = ranges
    f.sz_snapshot = _pair(get("sz_snapshot"), text_to_bytes, "sz_snapshot")
    f.snapshot_time = _pair(get("snapshot_time"), damo_text_to_ns, "snapshot_time")
    f.snapshot_idx = _pair(get("snapshot_idx"), nr, "snapshot_idx")
    f.temperature = _pair(get("temperature"), nr, "temperature")
    w = get("temperature_weights")
    if w:
        f.temperature_weights = tuple(text_to_nr(x) for x in w)
    return f


# ---------------------------------------------------------------------------
def region_percent(record):
    """``int(samples * 100.0 / (aggr / sample))`` per region (float64; NaN without intervals)."""
    n = record.nr_regions
    iv = record.intervals
    if iv is None:
        return np.full(n, np.nan)
    max_samples = iv.aggr_us / iv.sample_us
    derived = np.trunc(record.regions.nr_accesses.astype(np.float64) * 100.0 / max_samples)
    stated = record.regions.nr_accesses_percent
    return derived if stated is None else np.where(np.isnan(stated), derived, stated)


def region_usec(record):
    """``aggr_intervals * aggr`` per region (float64; NaN without intervals)."""
    n = record.nr_regions
    iv = record.intervals
    if iv is None:
        return np.full(n, np.nan)
    derived = record.regions.age.astype(np.float64) * iv.aggr_us
    stated = record.regions.age_usec
    return derived if stated is None else np.where(np.isnan(stated), derived, stated)


def region_temperature(record, weights=(0, 100, 100)):
    """damo's temperature: size*ws + percent*wa + usec*wg, negated when percent <= 0."""
    ws, wa, wg = weights
    size = (record.regions.end - record.regions.start).astype(np.float64)
    pct = region_percent(record)
    t = size * ws + pct * wa + region_usec(record) * wg
    return np.where(pct > 0, t, -t)


def _in(arr, rng):
    lo, hi = rng
    return (arr >= lo) & (arr <= hi)


def _rebuild(record, keep_snap, region_mask=None, new_regions=None, recompute_total=False):
    """A record with the kept snapshots and regions (columnar rebuild)."""
    b = RecordBuilder(record.meta())
    snaps = record.snapshots
    for k in np.flatnonzero(keep_snap):
        k = int(k)
        lo, hi = record.region_bounds(k)
        if new_regions is not None:
            regs = new_regions[k]
        elif region_mask is not None:
            idx = np.arange(lo, hi)[region_mask[lo:hi]]
            regs = _take(record.regions, idx)
        else:
            regs = record.regions.take(lo, hi)
        tb = None if recompute_total else int(snaps.total_bytes[k])
        b.add_snapshot(record.snapshot_start(k) if k == 0 else int(snaps.start_ns[k]),
                       int(snaps.end_ns[k]), regs, total_bytes=tb,
                       sample_interval_us=None if np.isnan(snaps.sample_interval_us[k])
                       else float(snaps.sample_interval_us[k]),
                       damos_stats=snaps.damos_stats_of(k))
    out = b.build()
    if keep_snap.size and keep_snap[0] and record.first_start_ns is not None:
        out.first_start_ns = record.first_start_ns
        out.snapshots.start_ns[0] = int(record.first_start_ns)
    return out


def _take(regions, idx):
    po = ph = None
    if regions.probe_offset is not None:
        counts = regions.probe_offset[idx + 1] - regions.probe_offset[idx]
        po = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        ph = (np.concatenate([regions.probe_hits[regions.probe_offset[i]:regions.probe_offset[i + 1]]
                              for i in idx]) if len(idx) else np.zeros(0, np.int64))
    optional = {name: None if getattr(regions, name) is None else getattr(regions, name)[idx]
                for name in OPTIONAL_REGION_COLUMNS}
    return RegionColumns(regions.start[idx], regions.end[idx], regions.nr_accesses[idx],
                         regions.age[idx], regions.sz_filter_passed[idx], po, ph, **optional)


def _clip_to_ranges(record, ranges):
    """Per snapshot: regions intersected with each address range (region order, then range order)."""
    out = {}
    reg = record.regions
    for k in range(record.nr_snapshots):
        lo, hi = record.region_bounds(k)
        starts, ends, idx = [], [], []
        for r in range(lo, hi):
            s, e = int(reg.start[r]), int(reg.end[r])
            for a, b in ranges:
                cs, ce = max(s, a), min(e, b)
                if cs < ce:
                    starts.append(cs)
                    ends.append(ce)
                    idx.append(r)
        idx = np.array(idx, np.int64)
        cols = _take(reg, idx)
        cols.start = np.array(starts, np.uint64)
        cols.end = np.array(ends, np.uint64)
        out[k] = cols
    return out


def apply_record_filter(records, filt=None):
    """Apply ``filt`` (default: damo's default filter) to every record; returns new Records."""
    if filt is None:
        filt = RecordFilter()
    return [_filter_one(rec, filt) for rec in records]


class ChunkFilter:
    """The record filter applied chunk by chunk to one record (bounded memory).

    Every step is local to a snapshot except ``--snapshot_idx``, whose index counts the
    snapshots kept by the earlier steps; that count is carried across chunks.
    """

    def __init__(self, filt=None):
        self.filt = filt or RecordFilter()
        self.kept_before = 0

    def __call__(self, chunk):
        out, kept = _filter_one(chunk, self.filt, idx_offset=self.kept_before, count_kept=True)
        self.kept_before += kept
        return out


def _filter_one(rec, f, idx_offset=0, count_kept=False):
    n_s = rec.nr_snapshots
    regs = rec.regions
    # 1. access pattern
    size = (regs.end - regs.start)
    mask = _in(size, f.sz_region) if len(size) else np.zeros(0, bool)
    if rec.intervals is not None and len(size):
        pct = region_percent(rec)
        usec = region_usec(rec)
        mask &= _in(pct, tuple(float(x) for x in f.access_rate))
        mask &= _in(usec, tuple(float(x) for x in f.age_us))
    mask = np.asarray(mask, bool)
    cur = _rebuild(rec, np.ones(n_s, bool), region_mask=mask)
    # 2. address ranges
    if f.address:
        clipped = _clip_to_ranges(cur, f.address)
        cur = _rebuild(cur, np.ones(n_s, bool), new_regions=clipped, recompute_total=True)
    # 3. snapshot size (sum of the remaining region sizes)
    keep = np.ones(cur.nr_snapshots, bool)
    if f.sz_snapshot is not None:
        for k in range(cur.nr_snapshots):
            lo, hi = cur.region_bounds(k)
            sz = int((cur.regions.end[lo:hi] - cur.regions.start[lo:hi]).sum())
            keep[k] = f.sz_snapshot[0] <= sz <= f.sz_snapshot[1]
    # 4. snapshot time
    if f.snapshot_time is not None:
        lo_t, hi_t = f.snapshot_time
        for k in range(cur.nr_snapshots):
            if keep[k]:
                keep[k] = cur.snapshot_start(k) >= lo_t and int(cur.snapshots.end_ns[k]) <= hi_t
    if not keep.all():
        cur = _rebuild(cur, keep)
    kept_by_time = cur.nr_snapshots
    # 5. snapshot index
    if f.snapshot_idx is not None:
        lo_i, hi_i = f.snapshot_idx
        keep = np.zeros(cur.nr_snapshots, bool)
        idx = np.arange(cur.nr_snapshots) + idx_offset
        keep[(idx >= lo_i) & (idx <= hi_i)] = True
        cur = _rebuild(cur, keep)
    # 6. temperature
    if f.temperature is not None and cur.nr_regions:
        if cur.intervals is None:
            from damo_pipe.errors import ReportError
            raise ReportError("--temperature needs records with monitoring intervals")
        t = region_temperature(cur, f.temperature_weights)
        tmask = _in(t, tuple(float(x) for x in f.temperature))
        cur = _rebuild(cur, np.ones(cur.nr_snapshots, bool), region_mask=tmask, recompute_total=True)
    if count_kept:
        return cur, kept_by_time
    return cur
