"""``report access --raw_form`` (SEMANTICS.md §7)."""
from __future__ import annotations

from damo_pipe.numfmt import format_sz, format_time_ns


def render_raw_form(records, raw=False) -> str:
    """``--raw_form``: damo's plain dump of the records (SEMANTICS.md §7)."""
    lines = []
    for r in records:
        if r.nr_snapshots == 0:
            continue
        base = r.snapshot_start(0)
        lines.append("base_time_absolute: %s" % format_time_ns(base, raw))
        lines.append("data source: %s" % r.data_source)
        lines.append("")
        starts = r.regions.start.tolist()
        ends = r.regions.end.tolist()
        samples = r.regions.nr_accesses.tolist()
        ages = r.regions.age.tolist()
        for k in range(r.nr_snapshots):
            s_start = r.snapshot_start(k)
            s_end = int(r.snapshots.end_ns[k])
            lo, hi = r.region_bounds(k)
            lines.append("monitoring_start:    %16s" % format_time_ns(s_start - base, raw))
            lines.append("monitoring_end:      %16s" % format_time_ns(s_end - base, raw))
            lines.append("monitoring_duration: %16s" % format_time_ns(s_end - s_start, raw))
            lines.append("target_id: %s" % r.target_id)
            lines.append("nr_regions: %s" % (hi - lo))
            lines.append("# start_addr     end_addr        length  nr_accesses   age")
            for i in range(lo, hi):
                lines.append("%012x-%012x (%12s) %11d %5d" % (
                    starts[i], ends[i], format_sz(ends[i] - starts[i], raw), samples[i], ages[i]))
            lines.append("")
    lines.append("")
    return "\n".join(lines)
