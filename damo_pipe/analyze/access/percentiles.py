"""The percentile styles of ``report access``: ``recency-percentiles`` (alias
``idle-time-percentiles``) and ``temperature-percentiles`` (SEMANTICS-ACCESS.md §9.3)."""
from __future__ import annotations

from damo_pipe.analyze.access.metrics import exact_sum
from damo_pipe.analyze.access.options import (DEFAULT_PERCENTILES, SNAPSHOT_TIME_LINE,
                                              AccessCrash, has_ops_filter)
from damo_pipe.numfmt import format_nr, format_time_us

#: style -> metric
STYLES = {"recency-percentiles": "recency", "idle-time-percentiles": "recency",
          "temperature-percentiles": "temperature"}


def head_template(records, metric):
    """The style's snapshot head: the percentile table(s) of ``metric``."""
    multi = any(r.nr_snapshots > 1 for r in records)
    lines = []
    if multi:
        lines.append(SNAPSHOT_TIME_LINE)
    if has_ops_filter(records):
        lines += ["# damos filters (df): <filters passed type>",
                  "# df-passed %s percentiles" % metric,
                  "<df-passed %s percentiles>" % metric, ""]
    lines += ["# total %s percentiles" % metric, "<%s percentiles>" % metric]
    return "\n".join(lines)


def targets(opts):
    """The percentiles to show (``--percentiles`` range or list, or damo's default)."""
    pr = opts.percentiles_range
    if pr is None:
        return list(DEFAULT_PERCENTILES)
    if len(pr) <= 3:
        return list(range(*pr))
    return sorted(pr)


def percentiles_text(metrics, opts, sv, metric, df):
    """``<[df-passed ]recency|temperature percentiles>`` of one snapshot."""
    if sv.n == 0:
        return "no region in snapshot"
    if metric == "recency":
        values = metrics.idle_times(sv)
    else:
        w = opts.temperature_weights
        values = metrics.temperatures(sv, [0, w[1], w[2]])
    weights = sv.passed if df else sv.sizes()
    total = exact_sum(weights)
    if total == 0:
        raise AccessCrash("ZeroDivisionError: division by zero (percentiles of a "
                          "snapshot whose %s weight is 0)" % ("df-passed" if df else "total"))
    try:
        pairs = metrics.percentile_walk(values, weights, targets(opts))
    except ValueError:
        raise AccessCrash("ValueError: max() arg is an empty sequence (no percentile to show)")
    raw = opts.raw
    if metric == "recency":
        label = "<idle time (us)>" if raw else "<idle time>"
        fmt = format_time_us
    else:
        w = opts.temperature_weights
        label = "<temperature (weights: [%s])>" % ", ".join(str(x) for x in w)
        fmt = format_nr
    header = "<%spercentile> %s" % ("df-passed " if df else "", label)
    ptexts = ["%d" % p for p, _ in pairs]
    vtexts = [fmt(v, raw) for _, v in pairs]
    lo = pairs[0][1]
    hi = pairs[-1][1]
    step = (hi - lo) / 20 if hi != lo else 1
    pw = max(len(x) for x in ptexts)
    vw = max(len(x) for x in vtexts)
    lines = [header]
    for (p, v), pt, vt in zip(pairs, ptexts, vtexts):
        n = int((v - lo) / step)
        lines.append(pt.rjust(pw) + "  " + vt.rjust(vw) + "  |" + "*" * n + " " * (20 - n) + "|")
    return "\n".join(lines)
