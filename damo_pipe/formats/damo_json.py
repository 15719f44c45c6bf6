"""damo's ``json`` / ``json_compressed`` record files: pure-Python reference reader.

Follows damo 3.4.3's loader (FORMATS.md §3): lenient value parsing and defaults for
keys missing in files of older damo versions.  The value converters below are public:
the streaming engine (json_fast.py) applies the same ones to the values it meets.  The
choice between the two engines is made by the format table (damo_pipe.formats).
"""
import json
import math
import re
import zlib

import numpy as np

from damo_pipe.errors import RecordFormatError
from damo_pipe.formats.numbers import text_to_bytes, text_to_nr, text_to_ns, text_to_percent, text_to_us
from damo_pipe.model import (AGE_UNKNOWN, DAMOS_STAT_FIELDS, Intervals, IntervalsGoal, Record,
                             RecordBuilder, RegionColumns)


def opt_int(v, name="index"):
    """An optional id or index (target_id, kdamond_idx ...): None stays None; else an
    integer in the 64-bit range (ValueError otherwise: archives store them exactly)."""
    if v is None:
        return None
    n = text_to_nr(v)
    if isinstance(n, float):
        if not (math.isfinite(n) and n == int(n)):
            raise ValueError("%s is %r, not an integer" % (name, v))
        n = int(n)
    if not _I64_MIN <= n <= _U64_MAX:
        raise ValueError("%s is %r, out of the 64-bit range" % (name, v))
    return n


def intervals_from_dict(d):
    """A record's ``intervals`` object (or None) as Intervals."""
    if d is None:
        return None
    goal = None
    g = d.get("intervals_goal")
    if g is not None:
        goal = IntervalsGoal(
            access_bp=_in_u64("intervals_goal access_bp", text_to_percent(g.get("access_bp", 0))
                              if g.get("access_bp") is not None else 0),
            aggrs=_in_u64("intervals_goal aggrs", text_to_nr(g.get("aggrs", 0))),
            min_sample_us=_in_u64("intervals_goal min_sample_us",
                                  text_to_us(g.get("min_sample_us", 0))),
            max_sample_us=_in_u64("intervals_goal max_sample_us",
                                  text_to_us(g.get("max_sample_us", 0))))
    values = {name: _in_u64("intervals " + name,
                            text_to_us(d.get(name, 0) if name == "ops_update_us" else d[name]))
              for name in ("sample_us", "aggr_us", "ops_update_us")}
    return Intervals(goal=goal, **values)


def _in_u64(name, v):
    """``v`` when it is a finite number in the kernel's unsigned long range."""
    if not math.isfinite(v) or not 0 <= v <= _U64_MAX:
        raise ValueError("%s is %r, out of range" % (name, v))
    return v


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_U64_MAX = (1 << 64) - 1


def int_ns(v):
    """Snapshot times: ints kept exact; floats (unit-suffixed text) truncated to ns."""
    v = int(text_to_ns(v))
    if not _I64_MIN <= v <= _I64_MAX:
        raise ValueError("time %d out of range" % v)
    return v


def checked_u64(v, what):
    """``int(v)``, or ValueError naming ``what`` when it does not fit 64 unsigned bits."""
    v = int(v)
    if not 0 <= v <= _U64_MAX:
        raise ValueError("%s %d out of range" % (what, v))
    return v


def regions_from_dicts(regions, where):
    """A snapshot's ``regions`` list as RegionColumns (``where`` names it in errors)."""
    n = len(regions)
    start = np.empty(n, np.uint64)
    end = np.empty(n, np.uint64)
    nr = np.zeros(n, np.int64)
    age = np.full(n, AGE_UNKNOWN, np.int64)
    passed = np.zeros(n, np.uint64)
    probe_offsets = [0]
    probe_hits = []
    any_probe = False
    usec = pct = None          # stated age.usec / nr_accesses.percent (NaN = null)
    for i, r in enumerate(regions):
        try:
            start[i] = text_to_bytes(r["start"])
            end[i] = text_to_bytes(r["end"])
            acc = r.get("nr_accesses")
            if acc is not None:
                nr[i] = text_to_nr(acc["samples"]) if acc.get("samples") is not None else 0
                a = r["age"]
                if a.get("aggr_intervals") is not None:
                    age[i] = text_to_nr(a["aggr_intervals"])
                if acc.get("percent") is not None:
                    if pct is None:
                        pct = np.full(n, np.nan)
                    pct[i] = float(text_to_percent(acc["percent"]))
                if a.get("usec") is not None:
                    if usec is None:
                        usec = np.full(n, np.nan)
                    usec[i] = float(text_to_us(a["usec"]))
            if r.get("sz_filter_passed") is not None:
                passed[i] = text_to_bytes(r["sz_filter_passed"])
            hits = r.get("probe_hits") or []
            if hits:
                any_probe = True
                probe_hits.extend(int(text_to_nr(h)) for h in hits)
            probe_offsets.append(len(probe_hits))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise RecordFormatError("%s region %d: bad or missing value (%s: %s)"
                                    % (where, i, type(e).__name__, e))
    po = ph = None
    if any_probe:
        po = np.array(probe_offsets, np.int64)
        ph = np.array(probe_hits, np.int64)
    return RegionColumns(start, end, nr, age, passed, po, ph, age_usec=usec,
                         nr_accesses_percent=pct)


def damos_stats_from_dict(d):
    """A snapshot's ``damos_stats`` object (or None) as {field: int}."""
    if d is None:
        return None
    out = {}
    for f in DAMOS_STAT_FIELDS:
        v = d.get(f, 0)
        out[f] = checked_u64(text_to_bytes(v) if f.startswith("sz_") else text_to_nr(v), f)
    return out


def record_meta_from_dict(d):
    """The metadata (no snapshot) of one record object; KeyError etc. when malformed."""
    return Record(
        target_id=opt_int(d["target_id"], "target_id"),
        kdamond_idx=opt_int(d.get("kdamond_idx"), "kdamond_idx"),
        context_idx=opt_int(d.get("context_idx"), "context_idx"),
        scheme_idx=opt_int(d.get("scheme_idx"), "scheme_idx"),
        intervals=intervals_from_dict(d.get("intervals")),
        scheme_filters=shallow(d.get("scheme_filters") or [], "scheme_filters"),
        data_source=d.get("data_source", "unknown"),
    )


def records_from_objects(objs, path=None):
    """Convert parsed JSON (a list of record dicts) into Records."""
    if not isinstance(objs, list):
        raise RecordFormatError("top-level JSON value is not a list of records", path=path)
    records = []
    for ri, d in enumerate(objs):
        where = "record %d" % ri
        try:
            meta = record_meta_from_dict(d)
            builder = RecordBuilder(meta)
            for si, s in enumerate(d["snapshots"]):
                regions = regions_from_dicts(s["regions"], "%s snapshot %d" % (where, si))
                tb = s.get("total_bytes")
                builder.add_snapshot(
                    int_ns(s["start_time"]), int_ns(s["end_time"]), regions,
                    total_bytes=None if tb is None else checked_u64(text_to_bytes(tb), "total_bytes"),
                    sample_interval_us=(None if s.get("sample_interval_us") is None
                                        else float(text_to_us(s["sample_interval_us"]))),
                    damos_stats=damos_stats_from_dict(s.get("damos_stats")))
            records.append(builder.build())
        except RecordFormatError as e:
            raise e.located(path=path)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise RecordFormatError("%s: bad or missing field (%s: %s)" % (where, type(e).__name__, e),
                                    path=path)
    return records


#: nesting depth named in the error of a document too deep to decode
NESTING_REPORTED = 500
_NEST_RE = re.compile(rb'[][{}"\\]')


def nesting_error(data, path=None, base=0):
    """RecordFormatError for JSON ``data`` nested too deeply for the decoder (its
    RecursionError): at the byte offset where the nesting first reaches
    NESTING_REPORTED levels (or its deepest point)."""
    depth = deepest = 0
    at = 0
    in_str = False
    escaped_at = -1          # the byte after a backslash in a string
    for m in _NEST_RE.finditer(data):
        c = m.group()
        if in_str:
            if m.start() == escaped_at:
                continue
            if c == b"\\":
                escaped_at = m.end()
            elif c == b'"':
                in_str = False
            continue
        if c == b'"':
            in_str = True
        elif c in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest, at = depth, m.start()
                if depth >= NESTING_REPORTED:
                    break
        elif c in (b"]", b"}"):
            depth -= 1
    return RecordFormatError("JSON nested too deeply (%d levels%s)"
                             % (deepest, " or more" * (deepest >= NESTING_REPORTED)),
                             path=path, offset=base + at)


#: nesting kept in values stored as they are (scheme_filters): damo's are 2-3 deep
MAX_KEPT_DEPTH = 64


def shallow(obj, what, limit=MAX_KEPT_DEPTH):
    """``obj`` (a decoded JSON value kept as it is); ValueError when nested deeper than
    ``limit`` (writing it back, e.g. into an archive, would exhaust the stack)."""
    todo = [(obj, 1)]
    while todo:
        o, d = todo.pop()
        if isinstance(o, (list, dict)):
            if d > limit:
                raise ValueError("%s nested deeper than %d levels" % (what, limit))
            todo.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return obj


def parse_json_bytes(data, path=None):
    try:
        objs = json.loads(data)
    except RecursionError:
        raise nesting_error(bytes(data), path) from None
    except UnicodeDecodeError as e:
        raise RecordFormatError("not UTF-8 JSON (%s)" % e.reason, path=path, offset=e.start)
    except json.JSONDecodeError as e:
        raise RecordFormatError("invalid JSON: %s" % e.msg, path=path, line=e.lineno, offset=e.pos)
    return records_from_objects(objs, path)


def read_json(path):
    with open(path, "rb") as f:
        return parse_json_bytes(f.read(), path)


def zlib_error(err, d, buf, at, path):
    """RecordFormatError for ``err`` raised while ``d`` (a decompressobj copy from before
    the failing call) inflated ``buf``, which starts at compressed offset ``at``: fed
    again byte by byte, the copy names the byte where the stream went wrong."""
    for i in range(len(buf)):
        try:
            d.decompress(buf[i:i + 1])
        except zlib.error:
            return RecordFormatError("corrupt zlib stream (%s)" % err, path=path,
                                     offset=at + i)
        if d.eof:
            break
    return RecordFormatError("corrupt zlib stream (%s)" % err, path=path, offset=at)


def read_json_compressed(path):
    with open(path, "rb") as f:
        raw = f.read()
    d = zlib.decompressobj()
    before = d.copy()
    try:
        data = d.decompress(raw)
        if not d.eof:
            data += d.flush()
    except zlib.error as e:
        raise zlib_error(e, before, raw, 0, path) from None
    if not d.eof:
        raise RecordFormatError("truncated zlib stream (incomplete or truncated stream)",
                                path=path, offset=len(raw))
    if d.unused_data:
        raise trailing_data_error(path, len(raw) - len(d.unused_data))
    return parse_json_bytes(data, path)


def trailing_data_error(path, offset):
    return RecordFormatError("unexpected data after the end of the zlib stream", path=path,
                             offset=offset)


def read_file(path, fmt):
    """Read a ``json`` or ``json_compressed`` file whole (the reference engine)."""
    return read_json(path) if fmt == "json" else read_json_compressed(path)


def slice_record(rec, chunk_regions):
    """Split a record into chunks of about ``chunk_regions`` regions (whole snapshots)."""
    n = rec.nr_snapshots
    if n == 0:
        return
    ends = rec.snapshots.region_offset + rec.snapshots.nr_regions
    lo = 0
    while lo < n:
        base = int(rec.snapshots.region_offset[lo])
        hi = int(np.searchsorted(ends, base + chunk_regions, side="left")) + 1
        hi = max(lo + 1, min(n, hi))
        yield rec.slice_snapshots(lo, hi)
        lo = hi
