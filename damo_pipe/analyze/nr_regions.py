"""``damo report nr_regions``: distribution of the number of regions (SEMANTICS.md §4).

damo skips a fixed 20 first snapshots of every record (no option). Only the snapshot
table is read (region counts), chunk by chunk.
"""
from __future__ import annotations

import numpy as np

from damo_pipe.analyze._chunks import RecordSource

#: damo's fixed number of skipped first snapshots
SKIP = 20


def record_nr_regions(chunks, skip=SKIP):
    """Region counts of the snapshots after the first ``skip`` (time order)."""
    parts = []
    for chunk in chunks:
        n = chunk.snapshots.nr_regions
        if skip >= len(n):
            skip -= len(n)
            continue
        parts.append(n[skip:].copy())
        skip = 0
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def compute_nr_regions(records, sortby="size", skip=SKIP, selection=None):
    """[(target_id, counts)] per record in file order (counts sorted unless sortby='time').

    ``selection`` (:class:`damo_pipe.analyze.selection.Selection`): only its snapshots,
    counting the regions that overlap its address range; ``skip`` still counts from
    each record's first snapshot."""
    src = RecordSource.of(records)
    out = []
    for i, meta in enumerate(src.metas):
        if selection:
            counts = _selected_counts(src, i, selection, skip)
        else:
            # the snapshot table alone holds the counts: no region is read
            counts = np.array(src.snapshot_table(i).nr_regions[skip:], np.int64)
        if sortby != "time":
            counts = np.sort(counts, kind="stable")
        out.append((meta.target_id, counts))
    return out


def _selected_counts(src, i, selection, skip):
    """Region counts of the selected snapshots of record i after the record's first
    ``skip`` (the snapshot table alone without an address range)."""
    from damo_pipe.analyze.selection import iter_selected_chunks
    lo, hi = src.snapshot_window(i, selection.time_range)
    first = max(skip, lo)
    if selection.address_range is None:
        return np.array(src.snapshot_rows(i, first, max(first, hi)).nr_regions, np.int64)
    parts = [c.snapshots.nr_regions for c in iter_selected_chunks(src, i, selection,
                                                                  columns=("start", "end"))]
    counts = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return np.array(counts[first - lo:], np.int64)


def format_nr_regions(results, percentiles):
    """The report text (no trailing newline)."""
    lines = ["# <percentile> <# regions>"]
    for tid, counts in results:
        lines.append("# target_id\t%s" % tid)
        n = len(counts)
        if n == 0:
            # damo divides by zero here (ZeroDivisionError) for records of <= 20 snapshots
            lines.append("# no snapshot (the first %d snapshots are skipped)" % SKIP)
            continue
        values = counts.tolist()
        lines.append("# avr:\t%d" % (sum(values) / n))
        for p in percentiles:
            idx = int(p / 100.0 * n)
            if idx == n:
                idx = n - 1
            lines.append("%d\t%d" % (p, values[idx]))
    return "\n".join(lines)


def nr_regions_json(results, percentiles, *, inputs=None, options=None, origin_ns=None):
    """``report nr_regions --json`` (docs/json.md, ``damo-pipe/nr_regions``): per record,
    the counts' number, exact mean (the text truncates it) and percentiles."""
    from damo_pipe.analyze.export import document, percentile_rows
    targets = []
    for tid, counts in results:
        values = [int(v) for v in counts]
        n = len(values)
        targets.append({"target_id": tid, "nr_values": n,
                        "average": sum(values) / n if n else None,
                        "percentiles": percentile_rows(values, percentiles, "nr_regions")})
    return document("nr_regions", {"targets": targets}, inputs=inputs,
                    time_origin_ns=origin_ns, units={"nr_regions": "count"}, options=options)


def nr_regions_csv(doc):
    """``report nr_regions --csv``: ``target_id,percentile,nr_regions`` rows."""
    from damo_pipe.analyze.export import csv_text
    return csv_text(["target_id", "percentile", "nr_regions"],
                    [(t["target_id"], p["percentile"], p["nr_regions"]) for t in doc["targets"]
                     for p in t["percentiles"]])
