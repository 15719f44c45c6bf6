"""Per-archive summary used by ``damo-analyze batch`` and ``report html``.

One summary is a JSON-serialisable dict describing one record file: its time span,
snapshot/region counts and, per target (record), the monitored space, the footprint
(bytes ever seen accessed), WSS percentiles and the hottest address ranges.

Definitions (all vectorised numpy, no Python loop per region):

* **WSS** of a snapshot: total size of its regions with ``nr_accesses >= acc_thres``
  and ``size >= sz_thres`` -- damo ``report wss`` with its defaults (work_time 1 µs,
  so every snapshot is its own window), computed by :mod:`damo_pipe.analyze.wss`. The first ``exclude_samples`` snapshots are
  dropped (damo's default is 20), the rest sorted ascending, and percentile ``p`` is
  ``sorted[min(int(p / 100 * n), n - 1)]`` like damo.
* **gaps**: spaces between snapshots longer than half a snapshot
  (:func:`damo_pipe.analyze.timebase.find_gaps`).
* **footprint**: size of the union of all regions with ``nr_accesses > 0`` over
  every snapshot.
* **hottest ranges**: the address space is cut at every region boundary; each piece
  gets its time-weighted mean ``nr_accesses`` over the record's duration (and, with
  intervals, its mean access frequency in Hz: samples per second of aggregation). The
  fewest pieces, hottest first, that hold 80 % of the record's total access
  (``mean * size * time``) are merged into runs of adjacent pieces, and the runs with
  the largest share of the total access are listed: what most of the access touches
  (what the heatmap pictures draw by default, the busiest range), not a tiny corner
  that is hot per byte and holds almost none of it.
"""
from __future__ import annotations

import math
import os

import numpy as np

#: percentiles shown by default (damo ``report wss --range 0 101 25``)
DEFAULT_PERCENTILES = (0, 25, 50, 75, 100)


def record_wss(record, acc_thres=1, sz_thres=1, exclude_samples=0):
    """(end times ns, WSS bytes) per snapshot of ``record`` after the first
    ``exclude_samples``, in time order: damo ``report wss --sortby time`` with work_time
    1 µs, computed by :mod:`damo_pipe.analyze.wss` (its window rules included)."""
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.wss import record_wss_streaming
    if record.nr_snapshots == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    src = RecordSource.of([record])
    return record_wss_streaming(src.iter_chunks(0), acc_thres, sz_thres, 1, exclude_samples)


def wss_per_snapshot(record, acc_thres=1, sz_thres=1):
    """WSS (bytes, uint64) of every snapshot of ``record``, in time order."""
    return record_wss(record, acc_thres, sz_thres, 0)[1]


def damo_percentile_index(p, n):
    """Index into a sorted list of ``n`` values that damo uses for percentile ``p``."""
    idx = int(p / 100.0 * n)
    return n - 1 if idx >= n else idx


def wss_percentiles(wss_sorted, percentiles=DEFAULT_PERCENTILES):
    """``{p: value}`` per damo's index rule; empty dict when no value."""
    n = len(wss_sorted)
    if n == 0:
        return {}
    return {p: int(wss_sorted[damo_percentile_index(p, n)]) for p in percentiles}


def _address_sweep(record):
    """Elementary address pieces of the record with their access statistics.

    Returns ``(bounds, mean_rate, accessed, mean_hz)``: pieces are ``[bounds[i],
    bounds[i+1])``; ``mean_rate[i]`` is the time-weighted mean nr_accesses of piece i
    over the record's total snapshot time, ``mean_hz[i]`` the same in Hz (None without
    intervals); ``accessed[i]`` tells whether any snapshot saw it accessed.
    """
    regions = record.regions
    if len(regions) == 0:
        return np.zeros(0, np.uint64), np.zeros(0), np.zeros(0, bool), None
    snaps = record.snapshots
    dur = (snaps.end_ns - snaps.start_ns).astype(np.float64)
    dur[dur < 0] = 0
    total_time = float(dur.sum())
    region_dur = np.repeat(dur, snaps.nr_regions)
    bounds = np.unique(np.concatenate([regions.start, regions.end]))
    i_start = np.searchsorted(bounds, regions.start)
    i_end = np.searchsorted(bounds, regions.end)
    m = len(bounds)

    def sweep(weights):
        out = np.cumsum(np.bincount(i_start, weights=weights, minlength=m)
                        - np.bincount(i_end, weights=weights, minlength=m))[:-1]
        return np.maximum(out / total_time if total_time > 0 else out, 0.0)

    w = regions.nr_accesses.astype(np.float64) * region_dur
    rate = sweep(w)
    hz = None
    if record.intervals is not None:
        from damo_pipe.analyze.intervals import aggr_us_array
        aggr_s = aggr_us_array(record.intervals, record) / 1e6
        aggr_s[aggr_s <= 0] = np.nan
        hz = np.nan_to_num(sweep(w / np.repeat(aggr_s, snaps.nr_regions)))
    acc = (regions.nr_accesses > 0).astype(np.int64)
    seen = np.cumsum(np.bincount(i_start, weights=acc, minlength=m)
                     - np.bincount(i_end, weights=acc, minlength=m))[:-1] > 0.5
    return bounds, rate, seen, hz


#: the hottest pieces taken until they hold this share of the total access
HOT_COVER = 0.8


def hottest_ranges(bounds, rate, limit=5, cover=HOT_COVER, hz=None):
    """Runs of the hottest pieces holding ``cover`` of the total access; see module doc."""
    if len(rate) == 0 or not np.any(rate > 0):
        return []
    sizes = np.diff(bounds).astype(np.float64)
    mass = rate * sizes
    total = float(mass.sum())
    order = np.argsort(-rate, kind="stable")
    held = np.cumsum(mass[order])
    nr_hot = int(np.searchsorted(held, cover * total, side="left")) + 1
    hot = np.zeros(len(rate), bool)
    hot[order[:nr_hot]] = True
    hot &= rate > 0
    edges = np.diff(np.concatenate([[0], hot.astype(np.int8), [0]]))
    run_starts = np.flatnonzero(edges == 1)
    run_ends = np.flatnonzero(edges == -1)      # exclusive piece index
    cum = np.concatenate([[0.0], np.cumsum(mass)])
    cum_hz = None if hz is None else np.concatenate([[0.0], np.cumsum(hz * sizes)])
    runs = []
    for a, b in zip(run_starts, run_ends):
        start, end = int(bounds[a]), int(bounds[b])
        run_mass = float(cum[b] - cum[a])
        runs.append({
            "start": start,
            "end": end,
            "size": end - start,
            "mean_nr_accesses": run_mass / (end - start) if end > start else 0.0,
            "mean_access_hz": (None if cum_hz is None or end <= start
                               else float(cum_hz[b] - cum_hz[a]) / (end - start)),
            "access_share": run_mass / total if total > 0 else 0.0,
        })
    runs.sort(key=lambda r: (-r["access_share"], r["start"]))
    return runs[:limit]


def _intervals_dict(intervals):
    if intervals is None:
        return None
    return {"sample_us": intervals.sample_us, "aggr_us": intervals.aggr_us,
            "ops_update_us": intervals.ops_update_us}


def _num(x):
    """JSON-friendly number: ints stay ints, integral floats become ints."""
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isfinite(x) and x == int(x):
            return int(x)
        return x
    return x


def summarize_target(record, *, exclude_samples=20, acc_thres=1, sz_thres=1,
                     percentiles=DEFAULT_PERCENTILES, nr_hottest=5):
    """Summary dict of one record (one monitoring target)."""
    snaps = record.snapshots
    n = record.nr_snapshots
    out = {
        "target_id": record.target_id,
        "kdamond_idx": record.kdamond_idx,
        "context_idx": record.context_idx,
        "scheme_idx": record.scheme_idx,
        "intervals_us": _intervals_dict(record.intervals),
        "nr_snapshots": n,
        "nr_regions": record.nr_regions,
        "start_ns": None, "end_ns": None, "duration_ns": None,
        "monitored_bytes": 0,
        "footprint_bytes": 0,
        "wss_percentiles": {},
        "wss_avg_bytes": None,
        "wss_nr_samples": 0,
        "hottest_ranges": [],
        "gaps": [],
    }
    if n == 0:
        return out
    start = _num(record.snapshot_start(0))
    end = int(snaps.end_ns.max())
    from damo_pipe.analyze.timebase import find_gaps
    out["gaps"] = [{"before_snapshot": g.before, "start_ns": g.start_ns, "end_ns": g.end_ns}
                   for g in find_gaps(snaps.start_ns, snaps.end_ns)]
    out.update(start_ns=start, end_ns=end, duration_ns=_num(end - start),
               monitored_bytes=int(snaps.total_bytes.max()),
               regions_per_snapshot={"min": int(snaps.nr_regions.min()),
                                     "max": int(snaps.nr_regions.max()),
                                     "mean": float(snaps.nr_regions.mean())})
    wss = record_wss(record, acc_thres, sz_thres, exclude_samples)[1]
    if len(wss):
        ws = np.sort(wss)
        out["wss_percentiles"] = {str(p): v for p, v in wss_percentiles(ws, percentiles).items()}
        out["wss_avg_bytes"] = sum(ws.tolist()) / len(ws)     # exact int sum, like damo
        out["wss_nr_samples"] = int(len(ws))
    bounds, rate, seen, hz = _address_sweep(record)
    if len(bounds):
        sizes = np.diff(bounds)
        out["footprint_bytes"] = int(sizes[seen].sum())
        out["address_span"] = [int(bounds[0]), int(bounds[-1])]
        out["hottest_ranges"] = hottest_ranges(bounds, rate, limit=nr_hottest, hz=hz)
    return out


def summarize_records(records, path=None, **options):
    """Summary dict of one record file (``records`` as read by ``read_records``)."""
    targets = [summarize_target(r, **options) for r in records]
    starts = [t["start_ns"] for t in targets if t["start_ns"] is not None]
    ends = [t["end_ns"] for t in targets if t["end_ns"] is not None]
    out = {
        "path": None if path is None else os.fspath(path),
        "nr_records": len(records),
        "nr_snapshots": int(sum(t["nr_snapshots"] for t in targets)),
        "nr_regions": int(sum(t["nr_regions"] for t in targets)),
        "start_ns": min(starts) if starts else None,
        "end_ns": max(ends) if ends else None,
        "duration_ns": (_num(max(ends) - min(starts)) if starts and ends else None),
        # the origin of every picture's and page's times (analyze/timebase.py)
        "time_origin_ns": _origin(records),
        "footprint_bytes": int(sum(t["footprint_bytes"] for t in targets)),
        "wss_options": {"exclude_samples": options.get("exclude_samples", 20),
                        "acc_thres": options.get("acc_thres", 1),
                        "sz_thres": options.get("sz_thres", 1)},
        "targets": targets,
    }
    if path is not None:
        try:
            out["file_bytes"] = os.path.getsize(path)
        except OSError:
            pass
    return out


def _origin(records):
    from damo_pipe.analyze.timebase import recording_origin
    return recording_origin(records)


def format_bytes(b):
    """Short human size (damo's format_sz thresholds, strictly exceeded)."""
    if b is None:
        return "-"
    f = float(b)
    for unit, shift in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if f > 2 ** shift:
            return "%.3f %s" % (f / 2 ** shift, unit)
    return "%d B" % f


def format_duration_ns(ns):
    """Short human duration."""
    if ns is None:
        return "-"
    t = float(ns)
    for unit, scale in (("h", 3600e9), ("m", 60e9), ("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(t) >= scale:
            v = t / scale
            return ("%d %s" % (v, unit)) if v == int(v) else ("%.3f %s" % (v, unit))
    return "%d ns" % t


def format_bytes_short(b):
    """Compact human size with 3 significant digits (``72.0 MiB``, ``120 MiB``)."""
    if b is None:
        return "-"
    f = float(b)
    for unit, shift in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if f >= 2 ** shift:
            v = f / 2 ** shift
            if v < 9.995:
                return "%.2f %s" % (v, unit)
            if v < 99.95:
                return "%.1f %s" % (v, unit)
            return "%d %s" % (round(v), unit)
    return "%d B" % f
