"""The five templates of ``report access`` (SEMANTICS-ACCESS.md §3–§5): the user's
format options, the style's pieces and damo's defaults for the rest."""
from __future__ import annotations

import numpy as np

from damo_pipe.analyze.access import boxes, histograms, percentiles
from damo_pipe.analyze.access.options import (AREAS, SNAPSHOT_TIME_LINE, AccessOptions,
                                              min_chars)


def build_templates(records, opts: AccessOptions):
    """Final five templates (§3), plus the effective box/sort settings: the area
    overrides, then the style's templates (its own module's), then damo's defaults
    for what is still unset, then the ``--format append`` operations."""
    t = {a: None for a in AREAS}
    for a in AREAS:
        if opts.format_overrides.get(a) is not None:
            t[a] = opts.format_overrides[a]
    if opts.format_object is not None:
        # a whole format object (hidden one-word --format): area names, with or without
        # a ``format_`` prefix
        for a in AREAS:
            for key in (a, "format_" + a):
                if opts.format_object.get(key) is not None:
                    t[a] = opts.format_object[key]
    for op in opts.format_ops:
        if op[0] == "set":
            t[op[1]] = op[2]
    style = opts.style
    eff = {"sort_by": list(opts.sort_by), "sort_dsc": list(opts.sort_dsc),
           "box_height": tuple(opts.box_height), "box_length": tuple(opts.box_length),
           "box_align": opts.box_align, "box_colorset": opts.box_colorset}
    if style in boxes.STYLES:
        boxes.apply_style(style, t, eff)
    elif style in percentiles.STYLES:
        t["snapshot_head"] = percentiles.head_template(records, percentiles.STYLES[style])
        t["region"] = ""
    elif style in histograms.STYLES:
        t["snapshot_head"] = histograms.head_template(records, histograms.STYLES[style])
        t["region"] = ""
    if opts.total_sz_only:
        t["snapshot_head"] = ""
        t["region"] = ""
        t["snapshot_tail"] = "<total bytes>"

    F = any(len(r.scheme_filters) > 0 for r in records)
    M = any(r.nr_snapshots > 1 for r in records)
    P = False
    if records and records[0].nr_snapshots:
        lo, hi = records[0].region_bounds(0)
        po = records[0].regions.probe_offset
        if po is not None and hi > lo:
            P = bool(np.any(po[lo + 1:hi + 1] - po[lo:hi] > 0))

    if t["record_head"] is None:
        if len(records) > 1:
            t["record_head"] = ("kdamond <kdamond index> / context <context index> / "
                                "scheme <scheme index> / target id <target id> / "
                                "recorded for <duration> from <abs start time>")
        else:
            t["record_head"] = ""
    if t["record_tail"] is None:
        lines = ["record DAMON intervals: <intervals>"]
        if any(r.intervals is not None and r.intervals.goal is not None
               and r.intervals.goal.aggrs != 0 for r in records):
            lines.append("# <intervals goal>")
        if any(r.data_source == "damon_stat" for r in records):
            lines.append("# data source: <data source>")
        t["record_tail"] = "\n".join(lines)
    if t["snapshot_head"] is None:
        lines = []
        if M:
            lines.append(SNAPSHOT_TIME_LINE)
        lines.append("heatmap: <heatmap>")
        lines.append("intervals: <snapshot intervals>")
        if F:
            lines.append("# damos filters (df): <filters passed type>")
            lines.append("df-pass: <filters passed heatmap>")
        if P and t["region"] is None:
            iw = min_chars(opts, "<index>")
            aw = min_chars(opts, "<start address>")
            sw = min_chars(opts, "<size>")
            hw = min_chars(opts, "<access hz>")
            gw = min_chars(opts, "<age>")
            lines.append("#" + " " * iw + "addr" + " " * (aw - 4 + 1) + "size" + " " * (sw - 4 + 2)
                         + " " * (hw + 1) + "age" + " " * (gw - 3 + 1) + "probe_hits")
            lines.append("#" + " " * (iw + 1 + aw + 1 + sw + 1) + "access_hz")
        t["snapshot_head"] = "\n".join(lines)
    if t["snapshot_tail"] is None:
        if F:
            t["snapshot_tail"] = "\n".join([
                "memory bw estimate: <estimated memory bandwidth>  "
                "df-passed: <filters passed estimated memory bandwidth>",
                "total size: <total bytes>  df-passed <filters passed bytes>",
                "scheme stats", "<damos stats>"])
        else:
            t["snapshot_tail"] = ("memory bw estimate: <estimated memory bandwidth>\n"
                                  "total size: <total bytes>")
    if P:
        base = "<index> <start address> <size>  <access hz> <age> <probe hits> "
    else:
        base = "<index> addr <start address> size <size> access <access hz> age <age>"
    if opts.region_box:
        hmax = eff["box_height"][1]
        t["region"] = "<box>" + base if hmax > 1 else "<box>\n" + base
        if "<region box description>" not in t["snapshot_tail"]:
            t["snapshot_tail"] = t["record_tail"] + "\n<region box description>"
    elif t["region"] is None:
        t["region"] = base + (" df-passed <filters passed bytes>" if F else "")
    for op in opts.format_ops:
        if op[0] == "append":
            t[op[1]] = t[op[1]] + op[2]
    return t, eff

