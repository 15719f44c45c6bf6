"""Memory-footprint distributions: damo's ``report footprints`` and holistic's table.

Sources: damo's ``.mem_footprint`` file (:func:`damo_pipe.formats.footprints.read_mem_footprint`)
or a damo-pipe archive's side tables ``/collect/footprints`` (statm columns in bytes, one
row per pid and time) and ``/collect/meminfo`` (bytes, one row per time). A footprint
snapshot of an archive is one distinct ``time_ns`` of either table.

Metrics, per snapshot, as damo computes them: ``vsz`` = Σ over the pids of statm size,
``rss`` = Σ resident, ``sys_used`` = MemTotal - MemFree (of the system entry; 0 when a
snapshot has none). damo multiplies pages by a fixed 4096 and KiB by 1024; archive
columns are already bytes (pages * the real page size), so both give damo's numbers on
4 KiB-page machines and archives stay exact elsewhere.
"""
from __future__ import annotations

import numpy as np

from damo_pipe.errors import RecordFormatError, ReportError
from damo_pipe.formats.footprints import MEMINFO_FIELDS, STATM_FIELDS, MemFootprints

__all__ = ["METRICS", "load_footprints", "archive_footprints", "footprint_values",
           "select_time_range", "format_footprints", "footprints_json", "footprints_csv",
           "plot_footprints",
           "footprints_for"]

METRICS = ("vsz", "rss", "sys_used")
_PROC_COLUMN = {"vsz": "vsz_bytes", "rss": "rss_bytes"}


def _is_archive(path):
    import os

    from damo_pipe.formats import detect_format
    if not os.path.exists(path):
        raise RecordFormatError("no such file", path=path)
    try:
        return detect_format(path) == "hdf5"
    except RecordFormatError:
        return False     # empty or odd: let the footprint parser say what is wrong


def load_footprints(path):
    """MemFootprints of ``path``: a damo ``.mem_footprint`` file or an archive."""
    from damo_pipe.formats.footprints import read_mem_footprint
    path = str(path)
    if _is_archive(path):
        fp = archive_footprints(path)
        if fp is None:
            raise RecordFormatError("the archive holds no memory footprints "
                                    "(no /collect/footprints or /collect/meminfo table)", path=path)
        return fp
    return read_mem_footprint(path)


def archive_footprints(path):
    """MemFootprints from an archive's side tables, or None when it holds neither table."""
    from damo_pipe.archive.sidetables import read_side_table
    try:
        procs = read_side_table(path, "footprints")
        meminfo = read_side_table(path, "meminfo")
    except OSError as e:
        raise RecordFormatError("cannot read the archive's side tables (%s)" % e, path=path)
    if procs is None and meminfo is None:
        return None
    empty = np.zeros(0, np.int64)
    p_time = procs["time_ns"] if procs is not None and "time_ns" in procs else empty
    m_time = meminfo["time_ns"] if meminfo is not None and "time_ns" in meminfo else empty
    times = np.unique(np.concatenate([p_time.astype(np.int64), m_time.astype(np.int64)]))
    proc_cols = {}
    for col in STATM_FIELDS.values():
        if procs is not None and col in procs:
            proc_cols[col] = procs[col]
        else:
            proc_cols[col] = np.zeros(len(p_time), np.uint64)
    pid = procs["pid"] if procs is not None and "pid" in procs else np.zeros(len(p_time), np.int64)
    has_sys = np.zeros(len(times), bool)
    sys_cols = {col: np.zeros(len(times), np.uint64) for col in MEMINFO_FIELDS.values()}
    if len(m_time):
        idx = np.searchsorted(times, m_time)
        has_sys[idx] = True
        for col in sys_cols:
            if col in meminfo:
                sys_cols[col][idx] = meminfo[col]
    return MemFootprints.from_columns(times, np.searchsorted(times, p_time), pid, proc_cols,
                                      has_sys, sys_cols, source=str(path))


def footprint_values(fp, metric, sort=True):
    """Per-snapshot byte values of ``metric`` (Python ints; sorted when ``sort``)."""
    if metric in _PROC_COLUMN:
        values = fp.per_snapshot_sum(_PROC_COLUMN[metric])
    elif metric == "sys_used":
        total = fp.sys["MemTotal"].tolist()
        free = fp.sys["MemFree"].tolist()
        values = [t - f if has else 0 for t, f, has in zip(total, free, fp.has_sys.tolist())]
    else:
        raise ReportError("unknown footprint metric %r (one of %s)" % (metric, ", ".join(METRICS)))
    if sort:
        values.sort()
    return values


class _Span:
    """What heatmap's time-range resolver calls a guide: the first and last snapshot."""

    def __init__(self, start_time, end_time):
        self.start_time, self.end_time = start_time, end_time


def select_time_range(fp, words):
    """The snapshots whose time lies in ``--time_range START END [BASE]`` (half-open).

    Same syntax as ``report heatmap --time_range``: times in ns or with units (``20s``);
    BASE ``guided`` adds the first snapshot's time, ``guided_end`` the last one's, or a
    time of its own. Footprint times are wall-clock (``time.time()``) times.
    """
    from damo_pipe.analyze.heatmap import resolve_time_range
    if words is None:
        return fp
    n = fp.nr_snapshots
    span = _Span(int(fp.time_ns[0]) if n else 0, int(fp.time_ns[-1]) if n else 0)
    start, end = resolve_time_range(words, span)
    t = fp.time_ns
    return fp.take((t >= start) & (t < end))


def format_footprints(fp, metrics, percentiles, sortby="size", raw=False, all_values=False,
                      nr_cols_bar=59):
    """damo's ``report footprints`` text: one distribution block per metric."""
    from damo_pipe.analyze.dist import format_dist
    return "\n".join(format_dist(m, footprint_values(fp, m, sortby == "size"), percentiles, raw,
                                 all_values, nr_cols_bar) for m in metrics)


def footprints_json(fp, metrics, percentiles, sortby="size", all_values=False, *,
                    inputs=None, origin_ns=None, options=None):
    """``report footprints --json`` (docs/json.md, ``damo-pipe/footprints``): per metric
    the average, percentiles and (``all_values``) every value, in bytes; footprint times
    are the wall clock. ``origin_ns``: the first footprint snapshot's time (default: of
    ``fp``)."""
    from damo_pipe.analyze.export import document, percentile_rows, seconds, time_fields
    n = fp.nr_snapshots
    if origin_ns is None and n:
        origin_ns = int(fp.time_ns[0])
    body = {"source": fp.source, "nr_snapshots": n}
    body.update(time_fields("first", int(fp.time_ns[0]) if n else None, origin_ns))
    body.update(time_fields("last", int(fp.time_ns[-1]) if n else None, origin_ns))
    body["metrics"] = {}
    for m in metrics:
        values = footprint_values(fp, m, sortby == "size")
        entry = {"nr_values": len(values),
                 "average_bytes": sum(values) / len(values) if values else None,
                 "percentiles": percentile_rows(values, percentiles)}
        if all_values:
            entry["values_bytes"] = values
            if sortby == "time":
                entry["time_ns"] = [int(t) for t in fp.time_ns]
                entry["time_s"] = [seconds(t, origin_ns) for t in entry["time_ns"]]
        body["metrics"][m] = entry
    options = dict(options or {}, sortby=sortby)
    return document("footprints", body, inputs=inputs, time_origin_ns=origin_ns,
                    options=options, units={"metrics": "vsz, rss: summed over the monitored "
                                            "processes; sys_used: MemTotal - MemFree"})


def footprints_csv(doc):
    """``report footprints --csv``: ``metric,percentile,bytes`` rows or, when the
    document lists every value, ``metric,index,bytes,time_ns,time_s``."""
    from damo_pipe.analyze.export import csv_text
    metrics = doc["metrics"]
    if any("values_bytes" in e for e in metrics.values()):
        rows = []
        for m, e in metrics.items():
            n = len(e["values_bytes"])
            times, secs = e.get("time_ns") or [None] * n, e.get("time_s") or [None] * n
            rows += [(m, k, v, times[k], secs[k]) for k, v in enumerate(e["values_bytes"])]
        return csv_text(["metric", "index", "bytes", "time_ns", "time_s"], rows)
    return csv_text(["metric", "percentile", "bytes"],
                    [(m, p["percentile"], p["bytes"]) for m, e in metrics.items()
                     for p in e["percentiles"]])


def plot_footprints(fp, metrics, sortby, path):
    """Images of the distributions (percentile vs bytes) or, with ``sortby == 'time'``, of
    the footprints over time; one image per metric (``NAME.METRIC.EXT`` for several)."""
    from damo_pipe.analyze import plots
    for metric in metrics:
        out = path
        if len(metrics) > 1:
            stem, _, ext = str(path).rpartition(".")
            out = "%s.%s.%s" % (stem, metric, ext) if stem else "%s.%s" % (path, metric)
        label = "memory footprint (%s)" % metric
        if sortby == "time":
            values = footprint_values(fp, metric, sort=False)
            plots.save_wss_over_time(fp.time_ns, np.array(values, np.float64), out,
                                     title="%s over time" % metric, ylabel=label)
            continue
        values = footprint_values(fp, metric, sort=True)
        pcts = list(range(0, 101)) if values else []
        from damo_pipe.analyze.dist import percentile_value
        plots.save_wss_distribution(pcts, [percentile_value(values, p) for p in pcts], out,
                                    title="%s distribution" % metric, ylabel=label)


def footprints_for(access_pattern, given=None):
    """The memory footprints that belong to an access record (``report holistic``):
    ``given`` (``--footprints``) if any; else the archive's own tables when
    ``access_pattern`` is an archive holding them; else damo's side file
    ``<access_pattern>.mem_footprint``."""
    if given is not None:
        return load_footprints(given)
    path = str(access_pattern)
    if _is_archive(path):
        fp = archive_footprints(path)
        if fp is not None:
            return fp
    return load_footprints("%s.mem_footprint" % path)
