"""``damo-analyze diff A B``: two recordings side by side (text and JSON).

Each recording (an archive or any damon.data flavour) is summarised by the numbers the
single-recording reports print, so that a row of the diff is the row of a report:

* **recording**: records, snapshots, duration (latest snapshot end - earliest first
  snapshot start), monitored bytes (per record the largest snapshot total, summed),
  accessed bytes (the footprint of :mod:`damo_pipe.analyze.summary`: the union of the
  regions ever seen accessed, summed over the records);
* **working set size**: ``report wss``'s default distribution (targets collapsed, the
  first ``exclude_samples`` snapshots of each record skipped, 1 access, 1 byte, 1 µs);
* **nr_regions**: ``report nr_regions``'s counts (the first 20 snapshots of each record
  skipped), the records' counts pooled;
* **memory footprints** (rss, vsz, sys_used; ``report footprints``) when both
  recordings have them (an archive's tables or damo's ``.mem_footprint`` side file);
* **hot address ranges**: per recording the ``top`` hottest ranges of its records, as
  the HTML report lists them (:func:`damo_pipe.analyze.summary.hottest_ranges`: runs of
  the hottest address pieces that hold 80 % of the record's total access, ranked by
  their share of it), most accessed first.

A delta is B - A. Addresses differ between runs (ASLR), so hot ranges are compared by
rank, size and share, not by address.
"""
from __future__ import annotations

import os

__all__ = ["PERCENTILES", "recording_numbers", "diff_json", "format_diff", "diff_recordings"]

PERCENTILES = (0, 25, 50, 75, 100)


def recording_numbers(path, *, exclude_samples=20, top=5, engine="cython"):
    """The numbers of one recording the diff compares (a dict; values in time order as
    the reports sort them)."""
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.export import origin_of, utc_of
    from damo_pipe.analyze.footprints import METRICS, footprint_values, footprints_for
    from damo_pipe.analyze.nr_regions import compute_nr_regions
    from damo_pipe.analyze.selection import recording_span
    from damo_pipe.analyze.summary import summarize_target
    from damo_pipe.analyze.wss import collapse, compute_wss
    from damo_pipe.errors import DamoPipeError
    path = os.fspath(path)
    with RecordSource.open([path]) as src:
        span = recording_span(src)
        origin = origin_of(src)
        wss = [int(v) for v in collapse(compute_wss(src, 1, 1, 1, exclude_samples, "size",
                                                    engine))]
        counts = sorted(int(c) for _, cs in compute_nr_regions(src, "size") for c in cs)
        nr_snapshots = sum(len(src.snapshot_table(i)) for i in range(len(src)))
        monitored = accessed = 0
        ranges = []
        for i in range(len(src)):
            t = summarize_target(src.load(i), exclude_samples=exclude_samples, nr_hottest=top)
            monitored += int(t["monitored_bytes"])
            accessed += int(t["footprint_bytes"])
            ranges += [dict(r, target_id=t["target_id"]) for r in t["hottest_ranges"]]
        nr_records = len(src)
    ranges.sort(key=lambda r: (-r["access_share"], r["start"]))
    ranges = [dict(r, rank=k + 1) for k, r in enumerate(ranges[:top])]
    try:
        fp = footprints_for(path)
        footprints = {m: footprint_values(fp, m, True) for m in METRICS}
        fp_note = None
    except DamoPipeError as e:
        footprints, fp_note = None, str(e)
    return {"path": path, "time_origin_ns": origin, "time_origin_utc": utc_of(origin),
            "nr_records": nr_records, "nr_snapshots": nr_snapshots,
            "duration_ns": None if span is None else span[1] - span[0],
            "monitored_bytes": monitored, "accessed_bytes": accessed,
            "wss": wss, "nr_regions": counts, "footprints": footprints,
            "footprints_note": fp_note, "hot_ranges": ranges}


def _delta(a, b):
    return None if a is None or b is None else b - a


def _triple(a, b):
    return {"a": a, "b": b, "delta": _delta(a, b)}


def _dist(a_values, b_values, percentiles, average_key):
    from damo_pipe.analyze.dist import percentile_value

    def avg(v):
        return sum(v) / len(v) if v else None
    return {"nr_values": _triple(len(a_values), len(b_values)),
            average_key: _triple(avg(a_values), avg(b_values)),
            "percentiles": [dict(percentile=p, **_triple(percentile_value(a_values, p),
                                                         percentile_value(b_values, p)))
                            for p in percentiles]}


def diff_json(a, b, percentiles=PERCENTILES, *, exclude_samples=20, top=5):
    """The ``damo-pipe/diff`` document (docs/json.md) of two :func:`recording_numbers`."""
    from damo_pipe.analyze.export import document
    notes = []
    fps = None
    if a["footprints"] is not None and b["footprints"] is not None:
        fps = {m: _dist(a["footprints"][m], b["footprints"][m], percentiles, "average_bytes")
               for m in a["footprints"]}
    else:
        for name, r in (("A", a), ("B", b)):
            if r["footprints"] is None:
                notes.append("%s has no memory footprints (%s)" % (name, r["footprints_note"]))

    def head(r):
        return {k: r[k] for k in ("path", "time_origin_ns", "time_origin_utc")}
    keys = ("nr_records", "nr_snapshots", "duration_ns", "monitored_bytes", "accessed_bytes")
    return document("diff", {
        "a": head(a), "b": head(b),
        "recording": {k: _triple(a[k], b[k]) for k in keys},
        "wss": _dist(a["wss"], b["wss"], percentiles, "average_bytes"),
        "nr_regions": _dist(a["nr_regions"], b["nr_regions"], percentiles, "average"),
        "footprints": fps,
        "hot_ranges": {"a": a["hot_ranges"], "b": b["hot_ranges"]},
        "notes": notes}, inputs=[a["path"], b["path"]],
        options={"percentiles": list(percentiles), "exclude_samples": exclude_samples,
                 "top": top, "nr_regions_skip": 20},
        units={"delta": "b - a", "access_share": "share of its record's total access (0..1)",
               "mean_nr_accesses": "time-weighted mean nr_accesses over the record"})


# -- text ------------------------------------------------------------------------------
def _sz(v, raw):
    from damo_pipe.numfmt import format_sz
    return "-" if v is None else format_sz(int(round(v)), raw)


def _signed(v, fmt):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    return ("+" if v > 0 else "-") + fmt(abs(v))


def _rel(a, d):
    if a is None or d is None or not a:
        return ""
    return " (%+.1f%%)" % (100.0 * d / a)


def _size_row(label, t, raw):
    return [label, _sz(t["a"], raw), _sz(t["b"], raw),
            _signed(t["delta"], lambda v: _sz(v, raw)) + _rel(t["a"], t["delta"])]


def _count_row(label, t, fmt="%d"):
    def f(v):
        return "-" if v is None else fmt % v
    return [label, f(t["a"]), f(t["b"]), _signed(t["delta"], lambda v: fmt % v)]


def _time_row(label, t, raw):
    from damo_pipe.numfmt import format_time_ns

    def f(v):
        return "-" if v is None else format_time_ns(int(v), raw)
    return [label, f(t["a"]), f(t["b"]), _signed(t["delta"], f)]


def _table(title, rows):
    """A titled block of rows [label, A, B, delta]: label left, values right-aligned."""
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    widths = [max(w, m) for w, m in zip(widths, (10, 12, 12, 12))]
    lines = [title]
    for r in rows:
        lines.append(("%-*s  %*s  %*s  %*s" % (widths[0], r[0], widths[1], r[1], widths[2],
                                                r[2], widths[3], r[3])).rstrip())
    return "\n".join(lines)


def _dist_rows(dist, average_key, size):
    rows = [["percentile", "A", "B", "delta"]]
    for p in dist["percentiles"]:
        rows.append(size("%d" % p["percentile"], p))
    rows.append(size("average", dist[average_key]))
    rows.append(_count_row("values", dist["nr_values"]))
    return rows


def _range_text(r, with_target):
    if r is None:
        return "-"
    text = "[0x%x, 0x%x)" % (r["start"], r["end"])
    return ("target %s %s" % (r["target_id"], text)) if with_target else text


def format_diff(doc, raw=False):
    """The text of a ``damo-pipe/diff`` document (aligned columns: A, B, delta)."""
    lines = ["A: %s" % doc["a"]["path"], "B: %s" % doc["b"]["path"], ""]
    rec = doc["recording"]
    lines.append(_table("# recording", [
        ["", "A", "B", "delta"],
        _count_row("records", rec["nr_records"]),
        _count_row("snapshots", rec["nr_snapshots"]),
        _time_row("duration", rec["duration_ns"], raw),
        _size_row("monitored", rec["monitored_bytes"], raw),
        _size_row("accessed", rec["accessed_bytes"], raw)]))
    skip = doc["options"]["exclude_samples"]

    def size(label, t):
        return _size_row(label, t, raw)

    def count(label, t):
        return _count_row(label, t, "%d" if label != "average" else "%.1f")
    lines += ["", _table("# working set size (report wss; first %d snapshots of each record "
                         "skipped)" % skip, _dist_rows(doc["wss"], "average_bytes", size))]
    lines += ["", _table("# nr_regions (first %d snapshots of each record skipped)"
                         % doc["options"]["nr_regions_skip"],
                         _dist_rows(doc["nr_regions"], "average", count))]
    if doc["footprints"] is not None:
        for metric, dist in doc["footprints"].items():
            lines += ["", _table("# memory footprint: %s" % metric,
                                 _dist_rows(dist, "average_bytes", size))]
    hot_a, hot_b = doc["hot_ranges"]["a"], doc["hot_ranges"]["b"]
    rows = [["rank", "A", "B", "delta"]]
    for k in range(max(len(hot_a), len(hot_b))):
        ra = hot_a[k] if k < len(hot_a) else None
        rb = hot_b[k] if k < len(hot_b) else None
        rows.append(["%d" % (k + 1), _range_text(ra, rec["nr_records"]["a"] > 1),
                     _range_text(rb, rec["nr_records"]["b"] > 1), ""])
        sa, sb = (None if ra is None else ra["size"]), (None if rb is None else rb["size"])
        rows.append(size("  size", _triple(sa, sb)))
        ha = None if ra is None else 100.0 * ra["access_share"]
        hb = None if rb is None else 100.0 * rb["access_share"]
        share = _triple(ha, hb)
        rows.append(["  share", "-" if ha is None else "%.2f%%" % ha,
                     "-" if hb is None else "%.2f%%" % hb,
                     _signed(share["delta"], lambda v: "%.2f pp" % v)])
    if len(rows) == 1:
        rows.append(["-", "-", "-", ""])
    lines += ["", _table("# hot address ranges (top %d by share of the record's total access)"
                         % doc["options"]["top"], rows)]
    for n in doc["notes"]:
        lines.append("# note: %s" % n)
    return "\n".join(lines)


def diff_recordings(path_a, path_b, percentiles=PERCENTILES, *, exclude_samples=20, top=5,
                    engine="cython"):
    """The diff document of two recordings (paths)."""
    a = recording_numbers(path_a, exclude_samples=exclude_samples, top=top, engine=engine)
    b = recording_numbers(path_b, exclude_samples=exclude_samples, top=top, engine=engine)
    return diff_json(a, b, percentiles, exclude_samples=exclude_samples, top=top)
