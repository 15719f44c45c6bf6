"""The DAMON trace events that are not snapshot regions: their grammar and side tables.

Both trace engines find these lines (the compiled one hands their byte ranges back) and
parse them here, one line at a time, so both produce the same rows. docs/formats.md,
"Every DAMON trace event", cites the kernel format strings (``TP_printk``) each parser
follows and the kernel trees they were read from.

=================================  ==========================================  ===========
event                              fields after the event token                side table
=================================  ==========================================  ===========
damos_stat_after_apply_interval    ``ctx_idx=%u scheme_idx=%u nr_tried=%lu     trace_damos_stat
                                   sz_tried=%lu nr_applied=%lu sz_applied=%lu
                                   sz_ops_filter_passed=%lu qt_exceeds=%lu
                                   nr_snapshots=%lu`` (Linux 7.0 prints the
                                   6th field as ``sz_tried=``; the damonitor
                                   tree prints ``stat=%lu %lu ...``)
damos_esz                          ``ctx_idx=%u scheme_idx=%u esz=%lu``        trace_damos_esz
damon_monitor_intervals_tune       ``sample_us=%lu``                           trace_intervals_tune
damon_region_aggregated            ``target_id=%lu nr_regions=%u %lu-%lu: %u   trace_region_aggregated,
                                   %u probe_hits=%s`` (``__print_hex``:        trace_region_probe_hits
                                   two hex digits per probe, space separated)
damos_before_apply                 ``ctx_idx=%u scheme_idx=%u target_idx=%lu   snapshots (as damo),
                                   nr_regions=%u %lu-%lu: %u %u``              and trace_damos_before_apply
=================================  ==========================================  ===========

Any other event whose name starts with ``damon_``/``damos_`` (or carries perf's
``damon:`` system prefix) is an *unknown DAMON event*: counted, and named in one warning
with its first line (never silently dropped).
"""
from __future__ import annotations

import array
import re

import numpy as np

from damo_pipe.errors import RecordFormatError

U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1
I64_MAX = (1 << 63) - 1

_TS_RE = re.compile(rb"\A(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
_UINT_RE = re.compile(rb"\A[0-9]+\Z")
_INT_RE = re.compile(rb"\A-?[0-9]+\Z")
_HEX2_RE = re.compile(rb"\A[0-9a-fA-F]{2}\Z")

#: the region events (snapshot rows; trace_text parses them)
REGION_EVENTS = (b"damon_aggregated", b"damos_before_apply")

#: side table name -> (kernel event, [(column, array typecode, numpy dtype name, unit)])
_STAT_COLS = ("nr_tried", "sz_tried", "nr_applied", "sz_applied", "sz_ops_filter_passed",
              "qt_exceeds", "nr_snapshots")
SIDE_TABLES = {
    "trace_damos_stat": ("damos_stat_after_apply_interval", [
        ("time_ns", "q", "int64", "ns"), ("ctx_idx", "Q", "uint64", "index"),
        ("scheme_idx", "Q", "uint64", "index")] + [
        (c, "Q", "uint64", "bytes" if c.startswith("sz_") else "count") for c in _STAT_COLS]),
    "trace_damos_esz": ("damos_esz", [
        ("time_ns", "q", "int64", "ns"), ("ctx_idx", "Q", "uint64", "index"),
        ("scheme_idx", "Q", "uint64", "index"), ("esz", "Q", "uint64", "bytes")]),
    "trace_intervals_tune": ("damon_monitor_intervals_tune", [
        ("time_ns", "q", "int64", "ns"), ("sample_us", "Q", "uint64", "us")]),
    "trace_region_aggregated": ("damon_region_aggregated", [
        ("time_ns", "q", "int64", "ns"), ("target_id", "Q", "uint64", "id"),
        ("nr_regions", "Q", "uint64", "count"), ("start", "Q", "uint64", "bytes"),
        ("end", "Q", "uint64", "bytes"), ("nr_accesses", "Q", "uint64", "samples"),
        ("age", "Q", "uint64", "aggregation intervals"),
        ("nr_probes", "Q", "uint64", "count (hits in trace_region_probe_hits, in row order)")]),
    "trace_region_probe_hits": ("damon_region_aggregated", [
        ("hits", "B", "uint8", "hits of one probe (unsigned char)")]),
    # the region rows go to the target's record as damo files them; this table keeps
    # every field of every line, ctx_idx and scheme_idx included
    "trace_damos_before_apply": ("damos_before_apply", [
        ("time_ns", "q", "int64", "ns"), ("ctx_idx", "Q", "uint64", "index"),
        ("scheme_idx", "Q", "uint64", "index"), ("target_idx", "Q", "uint64", "index"),
        ("nr_regions", "Q", "uint64", "count"), ("start", "Q", "uint64", "bytes"),
        ("end", "Q", "uint64", "bytes"), ("nr_accesses", "Q", "uint64", "samples"),
        ("age", "q", "int64", "aggregation intervals (-1: written None)")]),
}

#: the kernel format string each table follows (also stored as the table's ``format``)
FORMATS = {
    "trace_damos_stat": ("ctx_idx=%u scheme_idx=%u nr_tried=%lu sz_tried=%lu nr_applied=%lu "
                         "sz_applied=%lu sz_ops_filter_passed=%lu qt_exceeds=%lu "
                         "nr_snapshots=%lu"),
    "trace_damos_esz": "ctx_idx=%u scheme_idx=%u esz=%lu",
    "trace_intervals_tune": "sample_us=%lu",
    "trace_region_aggregated": "target_id=%lu nr_regions=%u %lu-%lu: %u %u probe_hits=%s",
    "trace_region_probe_hits": "probe_hits=%s (__print_hex of unsigned char[nr_probes])",
    "trace_damos_before_apply": ("ctx_idx=%u scheme_idx=%u target_idx=%lu nr_regions=%u "
                                 "%lu-%lu: %u %u"),
}

_EVENT_TABLE = {b"damos_stat_after_apply_interval": "trace_damos_stat",
                b"damos_esz": "trace_damos_esz",
                b"damon_monitor_intervals_tune": "trace_intervals_tune",
                b"damon_region_aggregated": "trace_region_aggregated",
                b"damos_before_apply": "trace_damos_before_apply"}
KNOWN_SIDE_EVENTS = tuple(_EVENT_TABLE)


def is_damon_event(ev, had_prefix):
    """Whether an event token (without ``damon:`` and ``:``) names a DAMON event."""
    return had_prefix or ev.startswith(b"damon_") or ev.startswith(b"damos_")


class SideRows:
    """Rows of the side tables, column by column (compact ``array.array`` storage)."""

    def __init__(self):
        self.cols = {name: {c: array.array(tc) for c, tc, _, _ in spec}
                     for name, (_, spec) in SIDE_TABLES.items()}

    def __eq__(self, other):
        return isinstance(other, SideRows) and self.cols == other.cols

    __hash__ = None

    def __repr__(self):
        return "SideRows(%s)" % ", ".join("%s=%d" % (n, self.nr_rows(n)) for n in self.cols)

    def add(self, table, values):
        cols = self.cols[table]
        for arr, v in zip(cols.values(), values):
            arr.append(v)

    def extend(self, table, columns):
        """Add many rows: one array per column, in the table's column order."""
        for (c, arr), v in zip(self.cols[table].items(), columns):
            arr.frombytes(np.ascontiguousarray(v, dtype=arr.typecode).tobytes())

    def nr_rows(self, table):
        return len(next(iter(self.cols[table].values())))

    def take(self):
        """{table: {column: numpy array}} of the rows so far (tables with rows only);
        the rows are handed over (cleared here)."""
        out = {}
        for name, (_, spec) in SIDE_TABLES.items():
            cols = self.cols[name]
            if not len(next(iter(cols.values()))):
                continue
            out[name] = {c: np.frombuffer(cols[c], dtype=dt).copy() if len(cols[c]) else
                         np.zeros(0, dt) for c, _, dt, _ in spec}
            self.cols[name] = {c: array.array(tc) for c, tc, _, _ in spec}
        return out


def table_attrs(name):
    """Attributes of a side table: the kernel event, its format string, units (JSON)."""
    import json
    event, spec = SIDE_TABLES[name]
    return {"event": event, "format": FORMATS[name],
            "units_json": json.dumps({c: u for c, _, _, u in spec}),
            "source": "trace text (perf script / tracefs / trace-cmd)"}


def table_columns(name):
    """{column: numpy dtype name} of a side table."""
    return {c: dt for c, _, dt, _ in SIDE_TABLES[name][1]}


# -- line parsing ---------------------------------------------------------------------

def _bad(msg, path, line):
    return RecordFormatError(msg, path=path, line=line)


def _uint(tok, what, path, line, limit=U64_MAX):
    # bytes.isdigit(): non-empty and ASCII digits only (what _UINT_RE accepts)
    if tok.isdigit():
        v = int(tok)
        if v <= limit:
            return v
        raise _bad("%s %s out of range" % (what, v), path, line)
    raise _bad("bad %s %r" % (what, tok.decode("latin-1")), path, line)


def _named(tok, name, what, path, line, limit=U64_MAX):
    """The value of ``name=<uint>`` (``name`` bytes, or a tuple of accepted names)."""
    key, eq, val = tok.partition(b"=")
    if eq and (key == name if name.__class__ is bytes else key in name) and val.isdigit():
        v = int(val)
        if v <= limit:
            return v
    names = name if isinstance(name, tuple) else (name,)
    if not eq or key not in names:
        raise _bad("%s: expected %s=<number>, got %r" % (what, names[0].decode(),
                                                        tok.decode("latin-1")), path, line)
    return _uint(val, "%s %s" % (what, key.decode()), path, line, limit)


def timestamp_ns(tok, path, line):
    """``int(float(ts) * 1e9)`` of a timestamp token without its ``:``, as damo."""
    if not _TS_RE.match(tok):
        raise _bad("bad timestamp %r" % tok.decode("latin-1"), path, line)
    d = float(tok) * 1e9
    if not d < 9223372036854775808.0:
        raise _bad("timestamp %s out of range" % tok.decode("latin-1"), path, line)
    return int(d)


def _stat(ev, fields, path, line):
    what = ev.decode()
    if len(fields) != 9:
        raise _bad("%s line with %d fields (expected 9)" % (what, len(fields)), path, line)
    ctx = _named(fields[0], b"ctx_idx", what, path, line, U32_MAX)
    sch = _named(fields[1], b"scheme_idx", what, path, line, U32_MAX)
    if fields[2].startswith(b"stat="):
        # damonitor tree form: stat=%lu %lu %lu %lu %lu %lu %lu
        vals = [_uint(fields[2][5:], what + " nr_tried", path, line)]
        vals += [_uint(t, "%s %s" % (what, c), path, line)
                 for t, c in zip(fields[3:], _STAT_COLS[1:])]
    else:
        names = [n.encode() for n in _STAT_COLS]
        names[3] = (b"sz_applied", b"sz_tried")    # Linux 7.0 prints sz_applied as sz_tried=
        vals = [_named(t, n, what, path, line) for t, n in zip(fields[2:], names)]
    return [ctx, sch] + vals


#: well-formed lines in one regular expression (fields joined by one space); anything
#: else, or a number out of range, takes the field-by-field path (and its errors)
_FAST = {
    b"damos_stat_after_apply_interval": (
        "trace_damos_stat", re.compile(
            rb"ctx_idx=([0-9]+) scheme_idx=([0-9]+) nr_tried=([0-9]+) sz_tried=([0-9]+) "
            rb"nr_applied=([0-9]+) sz_(?:applied|tried)=([0-9]+) "
            rb"sz_ops_filter_passed=([0-9]+) qt_exceeds=([0-9]+) nr_snapshots=([0-9]+)")),
    b"damos_esz": ("trace_damos_esz", re.compile(
        rb"ctx_idx=([0-9]+) scheme_idx=([0-9]+) esz=([0-9]+)")),
    b"damon_monitor_intervals_tune": ("trace_intervals_tune", re.compile(
        rb"sample_us=([0-9]+)")),
    b"damos_before_apply": ("trace_damos_before_apply", re.compile(
        rb"ctx_idx=([0-9]+) scheme_idx=([0-9]+) target_idx=([0-9]+) nr_regions=([0-9]+) "
        rb"([0-9]+)-([0-9]+): ([0-9]+) ([0-9]+)")),
}
#: values that are %u (the others are %lu), by position in the fast match
_U32_AT = {b"damos_stat_after_apply_interval": (0, 1), b"damos_esz": (0, 1),
           b"damon_monitor_intervals_tune": (), b"damos_before_apply": (0, 1, 3, 6, 7)}


def parse_side_fields(ev, fields, end_ns, path, line, rows):
    """Parse the fields of a known side event into ``rows`` (a :class:`SideRows`).
    RecordFormatError for a damaged line (nothing added then)."""
    fast = _FAST.get(ev)
    if fast is not None:
        m = fast[1].fullmatch(b" ".join(fields))
        if m is not None:
            vals = [int(x) for x in m.groups()]
            if max(vals) <= U64_MAX and all(vals[i] <= U32_MAX for i in _U32_AT[ev]):
                rows.add(fast[0], [end_ns] + vals)
                return
    what = ev.decode()
    if ev == b"damos_esz":
        if len(fields) != 3:
            raise _bad("damos_esz line with %d fields (expected 3)" % len(fields), path, line)
        vals = [_named(fields[0], b"ctx_idx", what, path, line, U32_MAX),
                _named(fields[1], b"scheme_idx", what, path, line, U32_MAX),
                _named(fields[2], b"esz", what, path, line)]
        rows.add("trace_damos_esz", [end_ns] + vals)
    elif ev == b"damos_stat_after_apply_interval":
        rows.add("trace_damos_stat", [end_ns] + _stat(ev, fields, path, line))
    elif ev == b"damon_monitor_intervals_tune":
        if len(fields) != 1:
            raise _bad("damon_monitor_intervals_tune line with %d fields (expected 1)"
                       % len(fields), path, line)
        rows.add("trace_intervals_tune", [end_ns, _named(fields[0], b"sample_us", what, path,
                                                         line)])
    elif ev == b"damos_before_apply":
        if len(fields) != 7:
            raise _bad("damos_before_apply line with %d fields (expected 7)" % len(fields),
                       path, line)
        vals = [_named(fields[0], b"ctx_idx", what, path, line, U32_MAX),
                _named(fields[1], b"scheme_idx", what, path, line, U32_MAX),
                _named(fields[2], b"target_idx", what, path, line),
                _named(fields[3], b"nr_regions", what, path, line, U32_MAX)]
        rng = fields[4]
        if not rng.endswith(b":") or b"-" not in rng:
            raise _bad("bad address range %r" % rng.decode("latin-1"), path, line)
        a, _, b = rng[:-1].partition(b"-")
        vals += [_uint(a, "region start", path, line), _uint(b, "region end", path, line),
                 _uint(fields[5], "nr_accesses", path, line, U32_MAX),
                 -1 if fields[6] == b"None" else _uint(fields[6], "age", path, line, U32_MAX)]
        rows.add("trace_damos_before_apply", [end_ns] + vals)
    elif ev == b"damon_region_aggregated":
        if len(fields) < 6:
            raise _bad("damon_region_aggregated line with %d fields (expected 6 or more)"
                       % len(fields), path, line)
        tid = _named(fields[0], b"target_id", what, path, line)
        nr = _named(fields[1], b"nr_regions", what, path, line, U32_MAX)
        rng = fields[2]
        if not rng.endswith(b":") or b"-" not in rng:
            raise _bad("bad address range %r" % rng.decode("latin-1"), path, line)
        a, _, b = rng[:-1].partition(b"-")
        start = _uint(a, "region start", path, line)
        end = _uint(b, "region end", path, line)
        acc = _uint(fields[3], "nr_accesses", path, line, U32_MAX)
        age = _uint(fields[4], "age", path, line, U32_MAX)
        key, eq, first = fields[5].partition(b"=")
        if key != b"probe_hits" or not eq:
            raise _bad("damon_region_aggregated: expected probe_hits=, got %r"
                       % fields[5].decode("latin-1"), path, line)
        toks = ([first] if first else []) + list(fields[6:])
        hits = []
        for t in toks:
            if not _HEX2_RE.match(t):
                raise _bad("bad probe hits byte %r (two hex digits expected)"
                           % t.decode("latin-1"), path, line)
            hits.append(int(t, 16))
        rows.add("trace_region_aggregated", [end_ns, tid, nr, start, end, acc, age, len(hits)])
        probe = rows.cols["trace_region_probe_hits"]["hits"]
        probe.extend(hits)
    else:   # pragma: no cover - callers check KNOWN_SIDE_EVENTS
        raise ValueError(ev)


def classify(raw):
    """(event, had_prefix, ts_idx, toks) of a trace line, or None when it has no event
    token (the grammar of trace_text: ``ts_idx = 2 if toks[2] ends with ':' else 3``)."""
    toks = raw.split()
    if len(toks) < 4:
        return None
    ts_idx = 2 if toks[2].endswith(b":") else 3
    if len(toks) <= ts_idx + 1:
        return None
    ev = toks[ts_idx + 1][:-1]
    had_prefix = ev.startswith(b"damon:")
    if had_prefix:
        ev = ev[6:]
    return ev, had_prefix, ts_idx, toks


__all__ = ["SIDE_TABLES", "FORMATS", "SideRows", "KNOWN_SIDE_EVENTS", "REGION_EVENTS",
           "classify", "is_damon_event", "parse_side_fields", "table_attrs",
           "table_columns", "timestamp_ns"]
