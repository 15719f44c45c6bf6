"""Machine-readable report output: one JSON style and CSV tables (docs/json.md).

Every JSON document of a report is an object that starts with ``schema``
(``damo-pipe/<report>``) and ``version`` (an int, raised when a field changes meaning or
goes away), names its ``units`` and ``inputs``, and then carries the report's numbers:

* numbers are JSON numbers (never strings); bytes, addresses and counts are ints;
* a time is two fields: ``<name>_ns``, an int of ns on the recording's clock, and
  ``<name>_s``, seconds (float) from ``time_origin_ns`` (the recording's start: the
  earliest first-snapshot start of the inputs); ``time_origin_utc`` names the origin
  when the clock is the wall clock;
* an untouched heatmap pixel or an empty distribution is ``null``.

CSV tables have one header line and ``\\n`` line ends; empty cells are missing values.
Only the command modules print; the functions here build text.
"""
from __future__ import annotations

import math

__all__ = ["VERSION", "SCHEMA_PREFIX", "COMMON_UNITS", "ns", "seconds", "time_fields",
           "origin_of", "utc_of", "document", "dumps", "csv_text", "add_format_arguments",
           "percentile_rows"]

#: version of every report schema (docs/json.md)
VERSION = 1
SCHEMA_PREFIX = "damo-pipe/"
#: units shared by every document
COMMON_UNITS = {
    "*_ns": "ns (int) on the recording's clock",
    "*_s": "seconds (float) from time_origin_ns",
    "bytes, *_bytes, start, end, size, address": "bytes (int)",
}


def ns(t):
    """A time as an int of ns (a deduced fractional start is rounded); None stays None."""
    if t is None:
        return None
    if isinstance(t, float):
        return int(round(t))
    return int(t)


def seconds(t, origin_ns):
    """Seconds of ``t`` (ns) from ``origin_ns``; None when either is None."""
    if t is None or origin_ns is None:
        return None
    return (ns(t) - int(origin_ns)) / 1e9


def time_fields(name, t, origin_ns):
    """``{name_ns: int, name_s: float}`` of one time."""
    return {name + "_ns": ns(t), name + "_s": seconds(t, origin_ns)}


def origin_of(src):
    """The recording's start (the earliest first-snapshot start of ``src``'s records,
    ns int; :func:`damo_pipe.analyze.timebase.recording_origin`), or None without
    snapshots: the origin of every ``*_s`` field."""
    from damo_pipe.analyze.timebase import recording_origin
    return recording_origin(src)


def utc_of(t_ns):
    """ISO 8601 UTC text of a wall-clock stamp, or None for a boot-time clock
    (:func:`damo_pipe.analyze.timebase.is_wall_clock`)."""
    from damo_pipe.analyze.timebase import is_wall_clock
    if not is_wall_clock(t_ns):
        return None
    import datetime
    sec, rest = divmod(int(t_ns), 10 ** 9)
    t = datetime.datetime.fromtimestamp(sec, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % rest


def document(report, body, *, inputs=None, time_origin_ns=None, units=None, options=None):
    """A report's JSON document: the common head, then ``body``'s fields in order."""
    doc = {"schema": SCHEMA_PREFIX + report, "version": VERSION}
    if inputs is not None:
        doc["inputs"] = [str(p) for p in inputs] if isinstance(inputs, (list, tuple)) else inputs
    doc["time_origin_ns"] = None if time_origin_ns is None else int(time_origin_ns)
    doc["time_origin_utc"] = utc_of(time_origin_ns)
    doc["units"] = dict(COMMON_UNITS, **(units or {}))
    if options is not None:
        doc["options"] = options
    doc.update(body)
    return doc


def _plain(obj):
    """JSON-ready copy: numpy scalars and arrays as Python values, NaN/inf as null."""
    import numpy as np
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(doc):
    """The document as JSON text (one trailing newline; strict JSON: no NaN)."""
    import json
    return json.dumps(_plain(doc), indent=1, allow_nan=False, default=str) + "\n"


def csv_text(header, rows):
    """A CSV table (header line first); None cells are empty."""
    import csv
    import io
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    return out.getvalue()


def add_format_arguments(parser, json_help="print the numbers as JSON (docs/json.md); "
                                            "our extension",
                         csv_help=None):
    """``--json`` (and ``--csv`` when ``csv_help`` is given), mutually exclusive."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help=json_help)
    if csv_help is not None:
        group.add_argument("--csv", action="store_true", help=csv_help)
    return group


def percentile_rows(values, percentiles, key="bytes"):
    """``[{"percentile": p, key: value}]`` with damo's pick (dist.percentile_value);
    empty for no value."""
    from damo_pipe.analyze.dist import percentile_value
    if not len(values):
        return []
    values = list(values)
    return [{"percentile": p, key: _plain(percentile_value(values, p))} for p in percentiles]
