"""Per-snapshot aggregation interval, as damo 3.4.3 derives it (SEMANTICS.md §2.3,
SEMANTICS-ACCESS.md §9.1). Shared by the heatmap, ``report access`` and the record
filter, so that all three divide by the same number."""
import math

import numpy as np


def snapshot_aggr_us(intervals, start_ns, end_ns, sample_interval_us):
    """Aggregation interval of one snapshot in µs (int or float, as damo computes it).

    Without an intervals goal it is the record's ``aggr_us``; with one, the snapshot's
    sampling interval (``None``/NaN when unknown) times aggr/sample, or else the
    snapshot's duration unless that is within 10 % of ``aggr_us``.
    """
    iv = intervals
    if iv.goal is None or iv.goal.aggrs == 0:
        return iv.aggr_us
    ratio = iv.aggr_us / iv.sample_us
    if sample_interval_us is not None and not math.isnan(sample_interval_us):
        si = float(sample_interval_us)
        if si.is_integer():
            si = int(si)
        return si * ratio
    d = (end_ns - start_ns) / 1000
    if abs(d - iv.aggr_us) / iv.aggr_us < 0.1:
        return iv.aggr_us
    return d


def chunk_aggr_us(intervals, chunk, k):
    """:func:`snapshot_aggr_us` of snapshot ``k`` of ``chunk`` (a Record or a chunk)."""
    snaps = chunk.snapshots
    return snapshot_aggr_us(intervals, chunk.snapshot_start(k), int(snaps.end_ns[k]),
                            snaps.sample_interval_us[k])


def aggr_us_array(intervals, chunk):
    """:func:`chunk_aggr_us` of every snapshot of ``chunk`` as float64."""
    n = chunk.nr_snapshots
    goal = intervals.goal
    if goal is None or goal.aggrs == 0:
        return np.full(n, float(intervals.aggr_us))
    return np.array([float(chunk_aggr_us(intervals, chunk, k)) for k in range(n)], np.float64)
