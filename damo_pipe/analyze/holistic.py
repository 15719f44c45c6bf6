"""damo's ``report holistic``: heatmap ranges, working set and memory footprint
distributions and the hotspot functions of a recording, in one text.

Inputs (``report holistic``'s options): the access record (any damon.data flavour or an
archive), its memory footprints (:func:`damo_pipe.analyze.footprints.footprints_for`)
and its CPU profile (:func:`damo_pipe.analyze.profile.profile_path`, read by ``perf
report``).

What damo 3.4.3 prints, reproduced here:

* Heatmaps: damo asks its heatmap code for the records of ``kdamond_idx=None``, which
  no record has (3.4.3 turns null indices into 0), so every map is empty and only its
  axis lines are printed; they follow from the guide's time span and address range and
  the resolution (5x80, ``--long`` 10x80).
* Working set sizes: when the records hold more than 200 snapshots in all, damo first
  adjusts them (1 µs windows, the first 20 snapshots skipped, as ``report wss``);
  otherwise every snapshot counts as it is. Targets are collapsed (sorted lists summed
  index-wise).
* Hotspots: lines 6-21 of ``perf report --stdio`` (``--long``: lines 1-30). The short
  report leaves the section out when perf is not installed.
"""
from __future__ import annotations

import numpy as np

from damo_pipe.errors import ReportError

__all__ = ["heatmap_axes_text", "holistic_wss", "format_short", "format_long", "holistic_report",
           "holistic_json"]

PERCENTILES = (0, 25, 50, 75, 100)
#: total snapshots above which damo adjusts the records before the WSS distribution
ADJUST_ABOVE = 200


def heatmap_axes_text(t_range, a_range, resol):
    """The axis lines damo prints for an empty heatmap (``resol``: rows, columns)."""
    from damo_pipe.numfmt import format_sz, format_sz_accurate, format_time_ns
    rows, cols = resol
    t0, t1 = t_range
    a0, a1 = a_range
    time_unit = (t1 - t0) // rows
    addr_unit = (a1 - a0) // cols
    a_len = addr_unit * cols
    t_len = time_unit * rows
    return "\n".join([
        "# x-axis: space [%s, %s) (%s)" % (format_sz_accurate(a0), format_sz_accurate(a0 + a_len),
                                          format_sz(a_len)),
        "# y-axis: time [%s, %s) (%s)" % (format_time_ns(t0), format_time_ns(t0 + t_len),
                                         format_time_ns(t_len)),
        "# resolution: %dx%d (%s and %s for each character)" % (
            cols, rows, format_sz(float(a_len) / cols), format_time_ns(float(t_len) / rows)),
    ])


def _tid(guide):
    if guide.target_id is None:
        raise ReportError("a record has no target id: cannot name its heatmap")
    return guide.target_id


def holistic_wss(src, engine="cython"):
    """(wss sorted by size, wss in time order): collapsed over targets, as damo's
    holistic report computes them."""
    from damo_pipe.analyze.wss import TargetWss, collapse, compute_wss, snapshot_wss
    total = sum(len(src.snapshot_table(i)) for i in range(len(src)))
    if total > ADJUST_ABOVE:
        in_time = compute_wss(src, 1, 1, 1, 20, "time", engine)
    else:
        in_time = {}
        for i, meta in enumerate(src.metas):
            times, values = snapshot_wss(src.iter_chunks(i, columns=("start", "end", "nr_accesses")),
                                         1, 1, engine)
            # damo keys the lists by target id: a later record of the same target wins
            in_time[meta.target_id] = TargetWss(meta.target_id, times, values)
    by_size = {tid: TargetWss(tid, t.times_ns, np.sort(t.wss_bytes, kind="stable"))
               for tid, t in in_time.items()}
    return collapse(by_size), collapse(in_time)


def _perf_lines(perf_path, profile):
    from damo_pipe.analyze.perf import perf_report_output
    return perf_report_output(perf_path, profile, ["--stdio"]).split("\n")


def format_short(guides, wss_by_size, footprints, perf_lines, last_n_sec=None):
    """The short report (``perf_lines``: perf report's lines, or None to leave the
    hotspot section out)."""
    from damo_pipe.analyze.dist import format_percentile_cells
    from damo_pipe.analyze.footprints import footprint_values
    lines = ["# Heatmap"]
    for g in guides:
        if last_n_sec is not None:
            t_range = [g.end_time - last_n_sec * 1000000000, g.end_time]
        else:
            t_range = [g.start_time, g.end_time]
        for start, end in g.regions():
            lines.append("# target %d, address range %d-%d" % (_tid(g), start, end))
            lines.append(heatmap_axes_text(t_range, [start, end], (5, 80)))
    lines += ["", "# Memory Footprints Distribution"]
    lines.append("%10s %15s %15s %15s %15s %15s" % (("percentile",) + tuple(map(str, PERCENTILES))))
    lines.append("%10s " % "wss" + format_percentile_cells(wss_by_size, PERCENTILES))
    for metric in ("rss", "vsz", "sys_used"):
        lines.append("%10s " % metric
                     + format_percentile_cells(footprint_values(footprints, metric, True), PERCENTILES))
    if perf_lines is not None:
        lines += ["", "# Hotspot functions"]
        lines += perf_lines[5:21]
    return "\n".join(lines)


def format_long(guides, wss_by_size, wss_in_time, footprints, perf_lines):
    """The ``--long`` report."""
    from damo_pipe.analyze.dist import format_dist
    from damo_pipe.analyze.footprints import footprint_values
    lines = ["Overall recorded access pattern", "===============================", ""]
    lines += [g.format(human=False) for g in guides]
    lines += ["", "# regions above are regions that access pattern recorded",
              "# you can get this via 'damo record_info', too",
              "", "Heatmap", "=======", ""]
    for g in guides:
        lines.append("# target %d" % _tid(g))
        for start, end in g.regions():
            lines.append("# address range %d-%d" % (start, end))
            lines.append(heatmap_axes_text([g.start_time, g.end_time], [start, end], (10, 80)))
    lines += ["# you can get above via 'damo report heatmap'", "",
              "Working Set Size and Memory Footprints Distribution",
              "===================================================", ""]
    for sort_key, wss in (("size", wss_by_size), ("time", wss_in_time)):
        lines += ["Sorted by %s" % sort_key, "--------------", ""]
        lines.append(format_dist("wss", wss, PERCENTILES))
        for metric in ("rss", "vsz", "sys_used"):
            lines.append(format_dist(metric, footprint_values(footprints, metric, sort_key == "size"),
                                     PERCENTILES))
        lines.append("")
    lines += ["# you can get above via 'damo report wss' and 'damo report footprints'",
              "", "Hotspot functions", "=================", ""]
    lines.append("\n".join(perf_lines[:30]))
    lines.append("# you can get above via 'damo report profile'")
    return "\n".join(lines)


def holistic_report(access_pattern, footprints=None, profile=None, long=False, perf_path="perf",
                    last_n_sec=None, engine="cython"):
    """The whole report text for the access record at ``access_pattern``.

    ``footprints``/``profile``: paths given on the command line (None: the recording's
    own). The text is built completely before anything is printed.
    """
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.footprints import footprints_for
    from damo_pipe.analyze.heatmap import compute_guides
    from damo_pipe.analyze.perf import perf_available
    from damo_pipe.analyze.profile import profile_path
    with RecordSource.open([access_pattern]) as src:
        guides = compute_guides(src, engine=engine)
        wss_by_size, wss_in_time = holistic_wss(src, engine)
    fp = footprints_for(access_pattern, footprints)
    perf_lines = None
    if long or perf_available(perf_path):
        with profile_path(access_pattern, profile) as path:
            perf_lines = _perf_lines(perf_path, path)
    if long:
        return format_long(guides, wss_by_size, wss_in_time, fp, perf_lines)
    return format_short(guides, wss_by_size, fp, perf_lines, last_n_sec)


def _dist_entry(values, percentiles=PERCENTILES):
    from damo_pipe.analyze.export import percentile_rows
    n = len(values)
    return {"nr_values": n, "average_bytes": sum(values) / n if n else None,
            "percentiles": percentile_rows(values, percentiles)}


def holistic_json(access_pattern, footprints=None, profile=None, perf_path="perf", top=None,
                  engine="cython"):
    """``report holistic --json`` (docs/json.md, ``damo-pipe/holistic``): the records'
    ranges (as ``record_info``), the WSS distribution the text shows, the footprint
    distributions and the ``top`` hotspot functions of the whole recording counted from
    the CPU-profile samples (an archive's sample table, or the perf.data through ``perf
    script``). A missing footprint or profile is null with a note, not an error."""
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.export import document, origin_of
    from damo_pipe.analyze.footprints import METRICS, footprint_values, footprints_for
    from damo_pipe.analyze.heatmap import compute_guides
    from damo_pipe.analyze.hotspots import hotspots, hotspots_json
    from damo_pipe.analyze.profile import load_profile_samples
    from damo_pipe.analyze.record_info import record_entries
    from damo_pipe.errors import DamoPipeError
    with RecordSource.open([access_pattern]) as src:
        guides = compute_guides(src, engine=engine)
        wss_by_size, _ = holistic_wss(src, engine)
        origin = origin_of(src)
    notes = []
    try:
        fp = footprints_for(access_pattern, footprints)
    except DamoPipeError as e:
        fp = None
        notes.append("no memory footprints: %s" % e)
    fps = None if fp is None else {m: _dist_entry(footprint_values(fp, m, True))
                                   for m in METRICS}
    samples, source = load_profile_samples(access_pattern, profile, perf_path, notes)
    spots = None
    if samples is not None:
        spots = {"source": source, "nr_samples": len(samples),
                 "functions": hotspots_json(hotspots(samples, top=top, engine=engine))}
    inputs = {"access_pattern": str(access_pattern),
              "footprints": None if fp is None else fp.source,
              "profile": None if profile is None else str(profile)}
    return document("holistic", {
        "records": record_entries(guides, origin),
        "wss": _dist_entry([int(v) for v in wss_by_size]),
        "footprints": fps, "hotspots": spots, "notes": notes},
        inputs=inputs, time_origin_ns=origin,
        options={"percentiles": list(PERCENTILES), "hotspot_top": top},
        units={"samples": "CPU-profile samples (count)",
               "share": "samples / nr_samples (0..1)"})
