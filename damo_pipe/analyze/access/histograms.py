"""The size-histogram styles of ``report access``: ``recency-sz-hist`` (alias
``cold-memory-tail``) and ``temperature-sz-hist`` (SEMANTICS-ACCESS.md §9.4)."""
from __future__ import annotations

import math

import numpy as np

from damo_pipe.analyze.access.options import AccessCrash, has_ops_filter
from damo_pipe.numfmt import format_nr, format_sz, format_time_us

#: style -> metric
STYLES = {"recency-sz-hist": "recency", "cold-memory-tail": "recency",
          "temperature-sz-hist": "temperature"}


def head_template(records, metric):
    """The style's snapshot head: the size histogram(s) of ``metric``."""
    legend = "<temperature>" if metric == "temperature" else "<idle time (us)>"
    lines = []
    if has_ops_filter(records):
        lines += ["# damos filters (df): <filters passed type>",
                  "%s <df-passed size>" % legend,
                  "<%s-df-passed-sz histogram>" % metric, ""]
    lines += ["%s <total size>" % legend, "<%s-sz histogram>" % metric]
    return "\n".join(lines)


def histogram_text(metrics, opts, sv, values, weights, metric):
    """One histogram: Σ ``weights`` of the regions whose ``values`` fall in each range."""
    if sv.n == 0:
        return "no region in snapshot"
    raw = opts.raw
    if metric == "temperature":
        f = format_nr
    else:
        f = format_time_us
    ranges = hist_ranges(opts, values, metric)
    ys = metrics.histogram_rows(values, weights, ranges)
    xs = ["[%s, %s)" % (f(s, raw), f(e, raw)) for s, e in ranges]
    yt = [format_sz(y, raw) for y in ys]
    ymin = min(ys)
    ymax = max(ys)
    step = max(int((ymax - ymin) / 20), 1)
    xw = max(len(x) for x in xs)
    yw = max(len(y) for y in yt)
    lines = []
    for x, y, ytext in zip(xs, ys, yt):
        n = min(math.ceil((y - ymin) / step), 20)
        lines.append(x.ljust(xw) + " " + ytext.ljust(yw) + " |" + "*" * n + " " * (20 - n) + "|")
    return "\n".join(lines)


def hist_ranges(opts, values, metric):
    """The [start, end) value ranges: ``--hist_ranges``, or ten linear / doubling log
    ranges over the values (``--hist_cumulate`` starts every range at the minimum)."""
    o = opts
    if o.hist_ranges is not None:
        from damo_pipe.formats.numbers import text_to_nr, text_to_us
        conv = text_to_nr if metric == "temperature" else text_to_us
        vals = [conv(x) for x in o.hist_ranges]
        if len(vals) % 2:
            raise AccessCrash("IndexError: list index out of range (odd number of "
                              "--hist_ranges values)")
        return [(vals[i], vals[i + 1]) for i in range(0, len(vals), 2)]
    if isinstance(values, np.ndarray):
        lo = values.min().item()
        hi = values.max().item()
    else:
        lo = min(values)
        hi = max(values)
    ranges = []
    if o.hist_logscale:
        w0 = max(int((hi - lo) / 1024), 1)
        ranges.append((lo, lo + w0))
        while ranges[-1][1] < hi:
            s, e = ranges[-1]
            if o.hist_cumulate:
                ranges.append((lo, e + 2 * (e - lo)))
            else:
                ranges.append((e, e + 2 * (e - s)))
        return ranges
    w = max(math.ceil((hi + 1 - lo) / 10), 1)
    for i in range(10):
        start = lo if o.hist_cumulate else lo + w * i
        ranges.append((start, lo + w * (i + 1)))
    return ranges
