"""Writers of damo's record formats, byte-identical to damo 3.4.3 (FORMATS.md §3/§4).

* ``json``: ``json.dumps([record.to_kvpairs(raw=True)...], indent=4)`` — record and
  snapshot values raw (decimal strings), region values *non-raw* (Q13: addresses with
  thousands separators, ``aggr_intervals`` as a separated string, ``sz_filter_passed``
  as a human size, ``usec`` as a human duration).
* ``json_compressed``: ``zlib.compress`` (default level) of the json bytes.
* ``perf_script``: one ``kdamond.x xxxx xxxx <end/1e9 %f>: damon:damon_aggregated: ...``
  line per region; a fake snapshot after single-snapshot records; missing age printed
  as ``None`` (Q14).

Text is generated directly (no Python object per region beyond the formatted string);
every piece equals what ``json.dumps`` would print for damo's object.
"""
from __future__ import annotations

import json
import math
import os
import zlib

import numpy as np

from damo_pipe._atomic import atomic_output
from damo_pipe.numfmt import format_nr, format_sz, format_time_ns_min_unit
from damo_pipe.model import AGE_UNKNOWN, Record


# damo 3.4.3 writes these damos_stats keys (the ones present in its files)
DAMOS_STATS_KEYS = ("nr_tried", "sz_tried", "nr_applied", "sz_applied",
                    "sz_ops_filter_passed", "qt_exceeds")


# ------------------------------------------------------------ damo number formats
# one home: damo_pipe/numfmt.py (damo's formatters, shared with the reports)


def format_time_us_exact(t_us, raw=False):
    return format_time_ns_min_unit(t_us * 1000, raw)


def _js(v):
    """json.dumps of a scalar (str/int/float/None/bool)."""
    return json.dumps(v)


def _dump_nested(obj, indent):
    """json.dumps(obj, indent=4) re-indented to sit at ``indent`` spaces."""
    text = json.dumps(obj, indent=4)
    return text.replace("\n", "\n" + " " * indent)


# ------------------------------------------------------------ JSON

def _intervals_obj(iv):
    if iv is None:
        return None
    d = {"sample_us": "%d" % iv.sample_us, "aggr_us": "%d" % iv.aggr_us,
         "ops_update_us": "%d" % iv.ops_update_us}
    g = iv.goal
    if g is None:
        from damo_pipe.model import IntervalsGoal
        g = IntervalsGoal()
    d["intervals_goal"] = {"access_bp": "%f" % g.access_bp, "aggrs": "%d" % g.aggrs,
                           "min_sample_us": "%d" % g.min_sample_us,
                           "max_sample_us": "%d" % g.max_sample_us}
    return d


_REGION_TMPL = (
    '                    {\n'
    '                        "start": "%s",\n'
    '                        "end": "%s",\n'
    '                        "nr_accesses": {\n'
    '                            "samples": %d,\n'
    '                            "percent": %s\n'
    '                        },\n'
    '                        "age": {\n'
    '                            "usec": %s,\n'
    '                            "aggr_intervals": %s\n'
    '                        },\n'
    '                        "probe_hits": %s,\n'
    '                        "sz_filter_passed": "%s"\n'
    '                    }')


def _sz_texts(passed):
    """format_sz of a uint64 array (fast path for <= 1024 bytes: '%d B')."""
    vals = passed.tolist()
    if len(passed) == 0 or int(passed.max()) <= 1024:
        return ["%d B" % v for v in vals]
    return [("%d B" % v) if v <= 1024 else format_sz(v) for v in vals]


def _stated(col, lo, hi):
    """Stated values of rows lo:hi as a list (None = null), or None when all null."""
    if col is None:
        return None
    part = col[lo:hi]
    if np.isnan(part).all():
        return None
    return [None if v != v else (int(v) if float(v).is_integer() else float(v))
            for v in part.tolist()]


def _fast_regions(R, lo, hi):
    """Cython formatter for the common case (no percent/usec/probe hits), else None."""
    if R.probe_offset is not None and R.probe_offset[hi] != R.probe_offset[lo]:
        return None
    try:
        from damo_pipe.formats._json_kernels import json_regions_text
    except ImportError:
        return None
    passed = R.sz_filter_passed[lo:hi]
    sz_texts = None
    if len(passed) and int(passed.max()) > 1024:
        sz_texts = [None if v <= 1024 else format_sz(v) for v in passed.tolist()]
    return json_regions_text(R.start[lo:hi], R.end[lo:hi], R.nr_accesses[lo:hi],
                             R.age[lo:hi], passed, sz_texts).decode("ascii")


def _rel(values, lo, hi):
    if values is None:
        return None
    part = values[lo:hi]
    return part.tolist() if hasattr(part, "tolist") else list(part)


def _region_lines(rec: Record, lo, hi, percent=None, usec=None):
    """Text of regions lo:hi (each an indented object, joined with ',\\n').

    ``percent`` / ``usec``: per-region values indexed like the record's rows (from
    ``region_values``); when both are None the values the source stated (damo JSON
    ``nr_accesses.percent`` / ``age.usec``, kept in the optional region columns) are
    written."""
    R = rec.regions
    n = hi - lo
    if n <= 0:
        return ""
    if percent is None and usec is None:
        pcts_v = _stated(R.nr_accesses_percent, lo, hi)
        usecs_v = _stated(R.age_usec, lo, hi)
    else:
        pcts_v = _rel(percent, lo, hi)
        usecs_v = _rel(usec, lo, hi)
    if pcts_v is None and usecs_v is None:
        fast = _fast_regions(R, lo, hi)
        if fast is not None:
            return fast
    starts = [format(v, ",") for v in R.start[lo:hi].tolist()]
    ends = [format(v, ",") for v in R.end[lo:hi].tolist()]
    accs = R.nr_accesses[lo:hi].tolist()
    ages = ['"%s"' % format(a, ",") if a != AGE_UNKNOWN else "null"
            for a in R.age[lo:hi].tolist()]
    szs = _sz_texts(R.sz_filter_passed[lo:hi])
    if pcts_v is None:
        pcts = ["null"] * n
    else:
        pcts = ["null" if v is None or (isinstance(v, float) and math.isnan(v)) else _js(v)
                for v in pcts_v]
    if usecs_v is None:
        usecs = ["null"] * n
    else:
        usecs = ["null" if v is None or (isinstance(v, float) and math.isnan(v))
                 else _js(format_time_us_exact(v)) for v in usecs_v]
    if R.probe_offset is None:
        hits = ["[]"] * n
    else:
        hits = []
        for i in range(lo, hi):
            h = R.probe_hits_of(i)
            hits.append("[]" if not h else _dump_nested(h, 24))
    tmpl = _REGION_TMPL
    return ",\n".join([tmpl % (starts[i], ends[i], accs[i], pcts[i], usecs[i], ages[i],
                                hits[i], szs[i]) for i in range(n)])


def _snapshot_text(rec: Record, k, percent=None, usec=None):
    S = rec.snapshots
    lo = int(S.region_offset[k])
    hi = lo + int(S.nr_regions[k])
    ind = " " * 16
    regions = _region_lines(rec, lo, hi, percent, usec)
    regions_js = "[]" if hi == lo else "[\n" + regions + "\n" + ind + "]"
    stats = S.damos_stats_of(k)
    if stats is None:
        stats_js = "null"
    else:
        stats_js = _dump_nested({f: "%d" % stats[f] for f in DAMOS_STATS_KEYS}, 16)
    siv = float(S.sample_interval_us[k])
    siv_js = "null" if math.isnan(siv) else '"%d"' % siv
    start = rec.snapshot_start(k)
    return ('            {\n'
            f'{ind}"start_time": "{"%d" % start}",\n'
            f'{ind}"end_time": "{"%d" % int(S.end_ns[k])}",\n'
            f'{ind}"regions": {regions_js},\n'
            f'{ind}"total_bytes": "{"%d" % int(S.total_bytes[k])}",\n'
            f'{ind}"damos_stats": {stats_js},\n'
            f'{ind}"sample_interval_us": {siv_js}\n'
            '            }')


def _record_head(rec: Record):
    ind = " " * 8
    filters = rec.scheme_filters or []
    filters_js = "[]" if not filters else _dump_nested(filters, 8)
    iv = _intervals_obj(rec.intervals)
    iv_js = "null" if iv is None else _dump_nested(iv, 8)
    return ('    {\n'
            f'{ind}"kdamond_idx": {_js(0 if rec.kdamond_idx is None else rec.kdamond_idx)},\n'
            f'{ind}"context_idx": {_js(0 if rec.context_idx is None else rec.context_idx)},\n'
            f'{ind}"intervals": {iv_js},\n'
            f'{ind}"scheme_idx": {_js(rec.scheme_idx)},\n'
            f'{ind}"target_id": {_js(rec.target_id)},\n'
            f'{ind}"scheme_filters": {filters_js},\n')


def _record_tail(rec: Record):
    return '        "data_source": %s\n    }' % _js(rec.data_source)


class ChunkedRecord:
    """A record given as its metadata plus a (lazy) iterable of consecutive chunks, so
    that writers can stream a record of any size."""

    __slots__ = ("meta", "chunks")

    def __init__(self, meta, chunks):
        self.meta = meta
        self.chunks = chunks


def _head_and_chunks(item):
    """(metadata record, iterator of chunks) of a writer input item."""
    if isinstance(item, ChunkedRecord):
        return item.meta, iter(item.chunks)
    if isinstance(item, (list, tuple)):
        if not item:
            return None, iter(())
        return item[0], iter(item)
    return item, iter((item,))


def iter_json_text(records, region_values=None):
    """Yield the json text of ``records`` in pieces (joined = damo's json.dumps output).

    ``records`` items: Records, lists of consecutive chunks of one record, or
    :class:`ChunkedRecord` (metadata + lazy chunk iterable: a huge record is streamed).
    ``region_values``: optional callable(record_index, chunk) -> (percent array or None,
    usec list or None) giving the per-region ``nr_accesses.percent`` / ``age.usec`` that
    damo's record filter fills in (adjust output, SEMANTICS.md §5 step 1).
    """
    yield "["
    first_rec = True
    any_rec = False
    for ri, item in enumerate(records):
        head_rec, chunks = _head_and_chunks(item)
        if head_rec is None:
            continue
        any_rec = True
        yield ("\n" if first_rec else ",\n") + _record_head(head_rec)
        first_rec = False
        first = None
        for c in chunks:
            if c.nr_snapshots:
                first = c
                break
        if first is None:
            yield '        "snapshots": [],\n'
        else:
            yield '        "snapshots": [\n'
            first_snap = True
            for c in _chain_first(first, chunks):
                if not c.nr_snapshots:
                    continue
                pct = us = None
                if region_values is not None:
                    pct, us = region_values(ri, c)
                # one piece per snapshot: memory stays bounded by the largest snapshot
                for k in range(c.nr_snapshots):
                    yield ("" if first_snap else ",\n") + _snapshot_text(c, k, pct, us)
                    first_snap = False
            yield '\n        ],\n'
        yield _record_tail(head_rec)
    yield "\n]" if any_rec else "]"


def _chain_first(first, rest):
    yield first
    yield from rest


def json_text(records, region_values=None):
    return "".join(iter_json_text(records, region_values))


# ------------------------------------------------------------ perf_script

_PERF_FMT = "kdamond.x xxxx xxxx %f: damon:damon_aggregated: target_id=%s nr_regions=%d %d-%d: %d %s\n"


def iter_perf_script_lines(records):
    """Yield damo's perf_script text, one snapshot's lines at a time (each line ends
    with a newline).  Items as for :func:`iter_json_text`.

    The fake snapshot (start=end of the real one, duration the real one's, one region
    0-0 with -1/-1) is appended after single-snapshot records, as damo does.
    """
    for item in records:
        head, chunks = _head_and_chunks(item)
        if head is None:
            continue
        tid_s = "%s" % head.target_id
        nsnap = 0
        last = None
        for c in chunks:
            if not c.nr_snapshots:
                continue
            nsnap += c.nr_snapshots
            last = c
            S = c.snapshots
            for k in range(c.nr_snapshots):
                lo = int(S.region_offset[k])
                n = int(S.nr_regions[k])
                t = int(S.end_ns[k]) / 1000000000
                starts = c.regions.start[lo:lo + n].tolist()
                ends = c.regions.end[lo:lo + n].tolist()
                accs = c.regions.nr_accesses[lo:lo + n].tolist()
                ages = c.regions.age[lo:lo + n].tolist()
                if n:
                    yield "".join([_PERF_FMT % (t, tid_s, n, starts[i], ends[i], accs[i],
                                                "None" if ages[i] == AGE_UNKNOWN else "%d" % ages[i])
                                   for i in range(n)])
        if nsnap == 1:
            end = int(last.snapshots.end_ns[0])
            start = last.snapshot_start(0)
            fake_end = end + (end - start)
            yield _PERF_FMT % (fake_end / 1000000000, tid_s, 1, 0, 0, -1, "-1")


def perf_script_text(records):
    return "".join(iter_perf_script_lines(records))


# ------------------------------------------------------------ files

FORMATS = ("json", "json_compressed", "perf_script")


def _atomic_write(path, write_fn, mode=None):
    with atomic_output(path, mode) as tmp, open(tmp, "wb") as f:
        write_fn(f)


def write_stream(pieces_iter, f, fmt):
    """Write text pieces to binary file ``f``: as is, or zlib-compressed (json_compressed)."""
    if fmt == "json_compressed":
        co = zlib.compressobj()  # same defaults as zlib.compress() -> identical bytes
        for piece in pieces_iter:
            f.write(co.compress(piece.encode()))
        f.write(co.flush())
    else:
        for piece in pieces_iter:
            f.write(piece.encode())


def write_records(records, path, fmt, *, region_values=None, mode=None):
    """Write records as damo's ``json`` / ``json_compressed`` / ``perf_script`` (atomic).

    ``records``: Records, or lists of consecutive chunks of one record each.
    ``region_values``: see :func:`iter_json_text` (json formats only).
    ``mode``: file permission bits (default: 0666 & ~umask).
    """
    if fmt in ("json", "json_compressed"):
        pieces = iter_json_text(records, region_values)
    elif fmt == "perf_script":
        pieces = iter_perf_script_lines(records)
    else:
        raise ValueError("unknown output format %r" % fmt)
    _atomic_write(path, lambda f: write_stream(pieces, f, fmt), mode)


__all__ = ["write_records", "ChunkedRecord", "json_text", "perf_script_text", "iter_json_text",
           "iter_perf_script_lines", "format_nr", "format_sz", "format_time_ns_min_unit"]
