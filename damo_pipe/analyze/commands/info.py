"""``damo-analyze info FILE``: what a record file or archive holds."""
import os

HELP = "describe a record file or archive: records, targets, time span, counts, size"
DESCRIPTION = """\
Describe what a DAMON record file holds: its records (targets), time span, snapshot and
region counts, monitoring intervals, and for damo-pipe archives the size on disk and the
compression ratio. Reads only the snapshot tables of an archive, never its regions.
--json adds the gaps between snapshots, the clock of the times, the side tables (an
archive's /collect tables or damo's side files) and the CPU profile (docs/json.md).

examples:
  damo-analyze info record.h5
  damo-analyze info --json damon.data
"""


def prepare_parser(parser):
    parser.add_argument("file", metavar="FILE", help="record file (any format) or HDF5 archive")
    parser.add_argument("--input_type", choices=None, default=None,
                        help="force the input format instead of detecting it")
    parser.add_argument("--json", action="store_true",
                        help="print machine-readable JSON (docs/json.md)")


def _fmt_bytes(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return "%.2f %s" % (n / (1 << shift), unit)
    return "%d B" % n


#: the snapshot columns ``info`` looks at
_INFO_COLUMNS = ("start_ns", "end_ns", "nr_regions", "total_bytes", "has_damos_stats")


class _InfoColumns:
    """Only the snapshot columns ``info`` looks at (a day-long archive's other columns
    stay on disk)."""

    def __init__(self, reader, idx):
        self._n = reader.nr_snapshots(idx)
        for name in _INFO_COLUMNS:
            setattr(self, name, reader.snapshot_column(idx, name))

    def __len__(self):
        return self._n


def describe(path, input_type=None):
    """A JSON-able description of the file (the data behind ``info``)."""
    import numpy as np

    from damo_pipe import sources

    fmt = input_type or sources.detect_format(path)
    desc = {"file": os.fspath(path), "format": fmt, "size_on_disk": os.path.getsize(path)}
    entries = []
    handler = sources.handler(fmt, path)
    if handler.open is not None:
        from damo_pipe.archive import layout
        with handler.open(path) as reader:
            attrs = reader.attrs
            desc["archive"] = {k: attrs[k] for k in sorted(attrs)}
            row_bytes = sum(np.dtype(d).itemsize for d, _ in layout.REGION_COLUMNS.values())
            snap_bytes = sum(np.dtype(d).itemsize for d, _ in layout.SNAPSHOT_COLUMNS.values())
            for i, meta in enumerate(reader.records):
                entries.append((meta, _InfoColumns(reader, i), reader.nr_regions(i)))
            raw = sum(n * row_bytes + len(s) * snap_bytes for _, s, n in entries)
            desc["uncompressed_bytes"] = raw
            desc["compression_ratio"] = raw / desc["size_on_disk"] if desc["size_on_disk"] else None
    else:
        for rec in handler.read(os.fspath(path), "auto"):
            entries.append((rec, rec.snapshots, rec.nr_regions))
    from damo_pipe.analyze.describe import record_gaps, side_data
    from damo_pipe.analyze.export import time_fields
    origin = min((int(s.start_ns[0]) for _, s, _ in entries if len(s)), default=None)
    records = []
    for meta, snaps, nr_regions in entries:
        r = {k: v for k, v in meta.meta_dict().items()
             if k in ("target_id", "kdamond_idx", "context_idx", "scheme_idx", "data_source",
                      "ops", "pid")}
        iv = meta.intervals
        r["intervals_us"] = None if iv is None else {
            "sample": iv.sample_us, "aggr": iv.aggr_us, "ops_update": iv.ops_update_us,
            "autotune_aggrs": None if iv.goal is None else iv.goal.aggrs}
        r["nr_snapshots"] = len(snaps)
        r["nr_regions"] = int(nr_regions)
        if len(snaps):
            r["start_ns"] = int(snaps.start_ns[0])
            r["end_ns"] = int(snaps.end_ns[-1])
            r["duration_ns"] = r["end_ns"] - r["start_ns"]
            r.update(time_fields("start", r["start_ns"], origin))
            r.update(time_fields("end", r["end_ns"], origin))
            r["gaps"] = record_gaps(snaps, origin)
            r["regions_per_snapshot"] = {"min": int(snaps.nr_regions.min()),
                                         "max": int(snaps.nr_regions.max()),
                                         "mean": float(snaps.nr_regions.mean())}
            r["total_bytes"] = {"min": int(snaps.total_bytes.min()), "max": int(snaps.total_bytes.max())}
            r["has_damos_stats"] = bool(snaps.has_damos_stats.any())
        records.append(r)
    desc["records"] = records
    desc["nr_records"] = len(records)
    desc["nr_snapshots"] = sum(r["nr_snapshots"] for r in records)
    desc["nr_regions"] = sum(r["nr_regions"] for r in records)
    desc["time_origin_ns"] = origin
    desc.update(side_data(path, handler.open is not None, origin, desc.get("archive")))
    return desc


#: gaps listed one per line; more are counted (info --json lists them all)
_GAP_LINES = 12


def _gap_lines(gaps, origin):
    """``gaps: N (S in all; spaces between snapshots longer than half a snapshot)`` and
    one line per gap, in seconds from the origin."""
    from damo_pipe.analyze.timebase import seconds_text, span_text
    if not gaps:
        return ["  gaps: none"]
    total = sum(g["end_ns"] - g["start_ns"] for g in gaps)
    out = ["  gaps: %d (%s in all; spaces between snapshots longer than half a snapshot)"
           % (len(gaps), seconds_text(total / 1e9))]
    out += ["    before snapshot %d: %s" % (g["before_snapshot"],
                                            span_text(g["start_ns"], g["end_ns"], origin))
            for g in gaps[:_GAP_LINES]]
    if len(gaps) > _GAP_LINES:
        out.append("    ... %d more (info --json lists them all)" % (len(gaps) - _GAP_LINES))
    return out


def render_text(desc):
    lines = ["file: %s" % desc["file"], "format: %s" % desc["format"]]
    arch = desc.get("archive")
    if arch:
        lines.append("archive: %s v%s, written by %s on %s (%s)" % (
            arch.get("format"), arch.get("format_version"), arch.get("writer"),
            arch.get("hostname", "?"), arch.get("kernel_release", "?")))
        if arch.get("source_format"):
            lines.append("source: %s %s" % (arch.get("source_format"), arch.get("source_path", "")))
    lines.append("records: %d, snapshots: %d, regions: %d" % (
        desc["nr_records"], desc["nr_snapshots"], desc["nr_regions"]))
    size = "size on disk: %s" % _fmt_bytes(desc["size_on_disk"])
    if desc.get("compression_ratio"):
        size += " (uncompressed columns %s, compression ratio %.1fx)" % (
            _fmt_bytes(desc["uncompressed_bytes"]), desc["compression_ratio"])
    lines.append(size)
    from damo_pipe.analyze.timebase import instant_text, seconds_text, span_text
    origin = desc.get("time_origin_ns")
    if origin is not None:
        # one time origin (analyze/timebase.py): the records' times are seconds from it
        span = max(r["end_ns"] for r in desc["records"] if r["nr_snapshots"]) - origin
        lines.append("time: from %s, %s (the times below are seconds from there)"
                     % (instant_text(origin, 3), seconds_text(span / 1e9)))
    for i, r in enumerate(desc["records"]):
        ids = ", ".join("%s %s" % (k, r[k]) for k in ("kdamond_idx", "context_idx", "scheme_idx")
                        if r.get(k) is not None)
        lines.append("record %d: target_id %s%s" % (i, r["target_id"], (" (" + ids + ")") if ids else ""))
        iv = r["intervals_us"]
        lines.append("  intervals: %s" % ("unknown" if iv is None else
                                          "sample %s us, aggr %s us, ops_update %s us%s" % (
                                              iv["sample"], iv["aggr"], iv["ops_update"],
                                              ", auto-tuned" if iv["autotune_aggrs"] else "")))
        lines.append("  snapshots: %d, regions: %d" % (r["nr_snapshots"], r["nr_regions"]))
        if r["nr_snapshots"]:
            lines.append("  time: %s" % span_text(r["start_ns"], r["end_ns"], origin))
            lines.extend(_gap_lines(r.get("gaps") or [], origin))
            rp = r["regions_per_snapshot"]
            lines.append("  regions per snapshot: min %d, mean %.1f, max %d" % (rp["min"], rp["mean"], rp["max"]))
            lines.append("  monitored bytes per snapshot: min %s, max %s" % (
                _fmt_bytes(r["total_bytes"]["min"]), _fmt_bytes(r["total_bytes"]["max"])))
    lines.extend(_side_lines(desc))
    return "\n".join(lines)


def _side_lines(desc):
    """What the file holds beside the snapshots: side tables (rows each), damo's side
    files, the CPU profile (``info --json`` has their columns, attributes and clocks)."""
    out = []
    tables = desc.get("side_tables") or []
    if tables:
        out.append("side tables: " + ", ".join("%s (%d rows)" % (t["name"], t["nr_rows"])
                                               for t in tables))
    for f in desc.get("side_files") or []:
        out.append("side file: %s %s (%s)" % (f["kind"], f["path"], _fmt_bytes(f["size_on_disk"])))
    prof = desc.get("profile")
    if prof and prof.get("nr_sample_rows") is not None:
        out.append("cpu profile: %d samples" % prof["nr_sample_rows"])
    elif prof:
        out.append("cpu profile: yes")
    return out


def run(args):
    import sys
    desc = describe(args.file, args.input_type)
    if args.json:
        from damo_pipe.analyze.export import document, dumps
        body = {k: v for k, v in desc.items() if k != "time_origin_ns"}
        sys.stdout.write(dumps(document("info", body, inputs=[args.file],
                                        time_origin_ns=desc["time_origin_ns"])))
    else:
        print(render_text(desc))
    return 0



