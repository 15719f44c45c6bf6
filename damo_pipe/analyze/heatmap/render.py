"""Text renderings of a heatmap grid (SEMANTICS.md §2.5, §2.5b): ``--output raw`` lines
and the coloured terminal map; ``--json`` and ``--csv`` (docs/json.md)."""
from __future__ import annotations

import numpy as np

from damo_pipe._engine import select_engine
from damo_pipe.analyze.colors import RESET, color_samples, color_start
from damo_pipe.numfmt import format_sz, format_sz_accurate, format_time_ns

#: the compiled raw-text formatter
KERNELS = "damo_pipe.analyze._report_kernels"


def format_raw(grid, abs_time=False, abs_addr=False, engine="cython"):
    """``--output raw`` text of one map (lines joined by newlines, no trailing one)."""
    K = select_engine(engine, KERNELS)
    if K is not None:
        return _format_raw_bytes(grid, abs_time, abs_addr, K).decode("ascii")
    tcol, acol = _raw_labels(grid, abs_time, abs_addr)
    rows = []
    for i, row in enumerate(grid.heat.tolist()):
        prefix = tcol[i]
        heats = ["NaN" if h != h else repr(h) for h in row]
        rows.append("\n".join([prefix + a + h for a, h in zip(acol, heats)]))
    return "\n".join(rows)


def _raw_labels(grid, abs_time, abs_addr):
    """The time and address column texts (each with its tab) of the raw lines."""
    t0, a0 = grid.t_start, grid.a_start
    tcol = ["%s\t" % ((t if abs_time else t - t0),) for t in grid.pixel_times()]
    acol = ["%s\t" % ((a if abs_addr else a - a0),) for a in grid.pixel_addrs()]
    return tcol, acol


def format_raw_bytes(grid, abs_time=False, abs_addr=False):
    """:func:`format_raw` as ASCII bytes (a bytearray), straight from the Cython
    formatter (the CLI writes them to stdout's buffer without a str round trip)."""
    return _format_raw_bytes(grid, abs_time, abs_addr, select_engine("cython", KERNELS))


def _format_raw_bytes(grid, abs_time, abs_addr, K):
    tcol, acol = _raw_labels(grid, abs_time, abs_addr)
    heat = np.ascontiguousarray(grid.heat, np.float64).reshape(len(tcol), len(acol))
    return K.format_raw_text(heat, [t.encode("ascii") for t in tcol],
                             [a.encode("ascii") for a in acol])


def format_ascii(grid, colorset="gray", skip_colorset_example=False):
    """The terminal heatmap (``--output stdout``) of one map, or None when no pixel was
    touched."""
    heat = grid.heat
    valid = heat[~np.isnan(heat)]
    if valid.size == 0:
        return None
    hi = float(valid.max())
    lo = float(valid.min())
    unit = (hi + 1 - lo) / 9
    lines = []
    rows = heat.tolist()
    starts = [color_start(colorset, lv) for lv in range(10)]
    blank = starts[4] + " "
    for row in rows:
        chars = []
        for h in row:
            if h != h:
                chars.append(blank)
                continue
            lv = min(9, int((h - lo) / unit))
            chars.append("%s%d" % (starts[lv], lv))
        lines.append("".join(chars) + RESET)
    T, A = heat.shape
    t0, tu, a0, au = grid.t_start, grid.time_unit, grid.a_start, grid.addr_unit
    t1 = grid.t_end if grid.t_end is not None else t0 + T * tu
    a1 = grid.a_end if grid.a_end is not None else a0 + A * au
    if not skip_colorset_example:
        lines.append("# access_frequency: %s (%.3f-%.3f %s)" % (color_samples(colorset), lo, hi, grid.unit))
    lines.append("# x-axis: space [%s, %s) (%s)" % (format_sz_accurate(a0), format_sz_accurate(a1),
                                                    format_sz(a1 - a0)))
    lines.append("# y-axis: time [%s, %s) (%s)" % (format_time_ns(t0), format_time_ns(t1),
                                                   format_time_ns(t1 - t0)))
    lines.append("# resolution: %dx%d (%s and %s for each character)" % (
        A, T, format_sz(au), format_time_ns(tu)))
    return "\n".join(lines)


#: what a heat is, per HeatmapGrid.unit
HEAT_UNITS = {
    "hz": "access frequency in Hz (positive access checks per second), averaged over the "
          "pixel's time x address area",
    "samples": "positive access checks per aggregation interval, averaged over the pixel's "
               "time x address area",
}


def heatmaps_json(grids, *, inputs=None, origin_ns=None, options=None):
    """``report heatmap --json`` (``damo-pipe/heatmap``): every map with its axes; rows
    are time (``row_time_ns``: pixel starts), columns addresses; untouched pixels null.
    Heats are the numbers ``--output raw`` prints."""
    from damo_pipe.analyze.export import document, seconds, time_fields
    maps = []
    for g in grids:
        T, A = g.heat.shape
        times = g.pixel_times()
        m = {"kdamond_idx": g.kdamond_idx, "context_idx": g.context_idx,
             "scheme_idx": g.scheme_idx, "target_id": g.target_id, "heat_unit": g.unit}
        m.update(time_fields("time_start", times[0] if T else g.t_start, origin_ns))
        m.update(time_fields("time_end", int(g.t_start + T * g.time_unit), origin_ns))
        m.update({"time_unit_ns": int(g.time_unit), "address_start": int(g.a_start),
                  "address_end": int(g.a_start + A * g.addr_unit),
                  "address_unit": int(g.addr_unit), "nr_rows": T, "nr_columns": A,
                  "row_time_ns": times, "row_time_s": [seconds(t, origin_ns) for t in times],
                  "column_address": g.pixel_addrs(),
                  "heat": [[None if h != h else h for h in row] for row in g.heat.tolist()]})
        maps.append(m)
    return document("heatmap", {"maps": maps}, inputs=inputs, time_origin_ns=origin_ns,
                    options=options, units={"heat": HEAT_UNITS,
                                            "time_unit_ns, address_unit": "one pixel's height "
                                            "(ns) and width (bytes)"})


def heatmaps_csv(doc):
    """``report heatmap --csv``: one row per pixel, ``map,time_ns,time_s,address,heat``
    (``map``: index of the map; heat empty for an untouched pixel)."""
    from damo_pipe.analyze.export import csv_text
    rows = []
    for k, m in enumerate(doc["maps"]):
        addrs = m["column_address"]
        for t, sec, row in zip(m["row_time_ns"], m["row_time_s"], m["heat"]):
            rows += [(k, t, sec, a, h) for a, h in zip(addrs, row)]
    return csv_text(["map", "time_ns", "time_s", "address", "heat"], rows)
