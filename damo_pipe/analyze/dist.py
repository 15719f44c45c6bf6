"""damo's distribution text (``_damo_dist``): percentile picks and the ``# <percentile>`` block.

Used by ``report wss`` (working set sizes), ``report footprints`` and ``report holistic``
(memory footprints). Values are Python ints (bytes) in report order: sorted for a
distribution by size, in time order for ``--sortby time``.
"""
from __future__ import annotations

from damo_pipe.errors import ReportError

__all__ = ["percentile_index", "percentile_value", "format_dist", "format_percentile_cells"]


def percentile_index(n, percentile):
    """damo's pick: ``int(p / 100 * n)``, the last value for p = 100; -1 when n == 0.

    A negative index counts from the end, as Python indexing does in damo.
    """
    idx = int(percentile / 100.0 * n)
    if idx == n:
        idx -= 1
    if idx >= n or idx < -n:
        raise ReportError("percentile %s is out of range" % percentile)
    return idx


def percentile_value(values, percentile):
    """The value damo shows for ``percentile``, or None for an empty list (damo's '-1')."""
    if not values:
        return None
    return values[percentile_index(len(values), percentile)]


def format_dist(metric, values, percentiles, raw=False, pr_all=False, nr_cols_bar=59):
    """damo's ``fmt_dists``: header, average, then one line per percentile (with a bar
    of ``nr_cols_bar`` columns when it is positive) or, with ``pr_all``, every value."""
    from damo_pipe.numfmt import format_sz
    lines = ["# <percentile> <%s>" % metric]
    n = len(values)
    if n == 0:
        lines.append("# no snapshot")
        return "\n".join(lines)
    lines.append("# avr:\t%s" % format_sz(sum(values) / n, raw))
    if pr_all:
        lines.extend("%s %s" % (idx, format_sz(v, raw)) for idx, v in enumerate(values))
        return "\n".join(lines)
    chosen = [(p, values[percentile_index(n, p)]) for p in percentiles]
    per_col = 1
    if nr_cols_bar > 0:
        max_val = 0
        for _, v in chosen:
            if max_val <= v:
                max_val = v
        if max_val > 0:
            per_col = max_val / nr_cols_bar
    for p, v in chosen:
        line = "%3d %15s" % (p, format_sz(v, raw))
        if nr_cols_bar > 0:
            cols = int(v / per_col)
            line += " |%s%s|" % ("*" * cols, " " * (nr_cols_bar - cols))
        lines.append(line)
    return "\n".join(lines)


def format_percentile_cells(values, percentiles=(0, 25, 50, 75, 100)):
    """The ``%15s`` cells of one row of holistic's percentile table (damo prints
    ``-1 B`` for an empty list)."""
    from damo_pipe.numfmt import format_sz
    cells = []
    for p in percentiles:
        v = percentile_value(values, p)
        cells.append("%15s " % format_sz(-1 if v is None else v, False))
    return "".join(cells)
