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


def compute_nr_regions(records, sortby="size", skip=SKIP):
    """[(target_id, counts)] per record in file order (counts sorted unless sortby='time')."""
    src = RecordSource.of(records)
    out = []
    for i, meta in enumerate(src.metas):
        # the snapshot table alone holds the counts: no region is read
        counts = np.array(src.snapshot_table(i).nr_regions[skip:], np.int64)
        if sortby != "time":
            counts = np.sort(counts, kind="stable")
        out.append((meta.target_id, counts))
    return out


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
