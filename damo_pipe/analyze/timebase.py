"""One time origin and one unit style for our own pictures and pages (``info``, heatmap
and WSS pictures, HTML, batch): times are seconds from the recording's start (the
earliest first-snapshot start, as the JSON outputs' ``time_origin_ns``), and the start
itself is shown once as an UTC date (wall-clock records) or as a time on the trace clock
(seconds since boot). damo's own text keeps damo's units.

Gaps: snapshots are taken one aggregation interval after the other; a space between one
snapshot's end and the next one's start longer than half the usual snapshot length
(the median of ``end - start``) is a gap -- missed aggregations, a paused recorder.
Pictures show a gap as a gap (no line drawn through it), ``info`` lists them.
"""
from __future__ import annotations

import dataclasses

import numpy as np

#: stamps beyond this (ns) are wall-clock (epoch) times, not seconds since boot
EPOCH_THRESHOLD_NS = 10 * 365 * 24 * 3600 * 10 ** 9

#: a space between snapshots longer than this fraction of the usual snapshot is a gap
GAP_FACTOR = 0.5


def recording_origin(records):
    """The recording's start in ns (int): the earliest ``start_ns[0]`` of ``records``
    (Records, or anything with ``snapshot_table(i)`` and ``len()``), None without
    snapshots."""
    starts = []
    if hasattr(records, "snapshot_table"):
        tables = (records.snapshot_table(i) for i in range(len(records)))
    else:
        tables = (r.snapshots for r in records)
    for snaps in tables:
        if len(snaps):
            starts.append(int(snaps.start_ns[0]))
    return min(starts) if starts else None


def is_wall_clock(t_ns):
    return t_ns is not None and t_ns >= EPOCH_THRESHOLD_NS


def instant_text(t_ns, precision=0):
    """The origin as people read it: ``2026-11-29 13:58:50 UTC`` (wall clock; with
    ``precision`` decimals of the second), or ``1234.567 s on the trace clock``
    (seconds since boot)."""
    if t_ns is None:
        return "-"
    if not is_wall_clock(t_ns):
        return "%.3f s on the trace clock" % (t_ns / 1e9)
    import datetime
    sec, rest = divmod(int(t_ns), 10 ** 9)
    t = datetime.datetime.fromtimestamp(sec, tz=datetime.timezone.utc)
    frac = (".%09d" % rest)[:precision + 1] if precision > 0 else ""
    return t.strftime("%Y-%m-%d %H:%M:%S") + frac + " UTC"


def seconds_text(seconds):
    """Seconds in the one style: ``94.888 s`` (three decimals, no ``-0.000``)."""
    return "%.3f s" % (seconds if abs(seconds) >= 5e-4 else 0.0)


def span_text(start_ns, end_ns, origin_ns):
    """``0.000 s to 94.888 s (94.888 s)``: a time span in seconds from ``origin_ns``."""
    a = (start_ns - origin_ns) / 1e9
    b = (end_ns - origin_ns) / 1e9
    return "%s to %s (%s)" % (seconds_text(a), seconds_text(b), seconds_text(b - a))


@dataclasses.dataclass(frozen=True)
class Gap:
    """No snapshot between ``start_ns`` (the end of snapshot ``before - 1``) and
    ``end_ns`` (the start of snapshot ``before``)."""

    before: int
    start_ns: int
    end_ns: int

    @property
    def duration_ns(self):
        return self.end_ns - self.start_ns


def find_gaps(start_ns, end_ns, factor=GAP_FACTOR):
    """The gaps of one record's snapshot table (``start_ns``/``end_ns`` columns in time
    order), see the module docstring. Snapshots without a length (a format without
    starts) take the median spacing of their ends as the usual length instead."""
    s = np.asarray(start_ns, np.int64)
    e = np.asarray(end_ns, np.int64)
    if len(e) < 2:
        return []
    lengths = (e - s)[e > s]
    usual = float(np.median(lengths)) if len(lengths) else float(np.median(np.diff(e)))
    if usual <= 0:
        return []
    space = s[1:] - e[:-1]
    idx = np.flatnonzero(space > factor * usual)
    return [Gap(int(k) + 1, int(e[k]), int(s[k + 1])) for k in idx]


def step_series(start_ns, end_ns, values, gaps=(), origin_ns=0, unit_ns=1e9):
    """(x, y) of a per-snapshot value drawn as what it is: flat over each snapshot
    ``[start, end]`` (x in ``unit_ns`` from ``origin_ns``), joined to the next snapshot
    across the short space between them, and broken (a NaN point) at every gap."""
    s = (np.asarray(start_ns, np.float64) - origin_ns) / unit_ns
    e = (np.asarray(end_ns, np.float64) - origin_ns) / unit_ns
    v = np.asarray(values, np.float64)
    n = len(v)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    x = np.empty(2 * n)
    y = np.empty(2 * n)
    x[0::2], x[1::2] = s, e
    y[0::2], y[1::2] = v, v
    breaks = sorted(g.before for g in gaps if 0 < g.before < n)
    if breaks:
        pos = [2 * k for k in breaks]
        x = np.insert(x, pos, np.nan)
        y = np.insert(y, pos, np.nan)
    return x, y
