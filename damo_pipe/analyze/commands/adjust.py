"""``damo-analyze adjust``: damo 3.4.3's ``adjust`` (re-aggregate a record into longer windows)."""
import argparse

HELP = "re-aggregate a record with a longer aggregation interval (damo adjust)"
DESCRIPTION = """\
Merge the snapshots of every record into windows of --aggregate_interval µs, as
damo 3.4.3's `damo adjust` does (same region merge rule, same output bytes), and
write the result in damo's json_compressed (default), json or perf_script format.
The record filter options of `report access` apply first.

examples:
  damo-analyze adjust --input damon.data --aggregate_interval 1000000 --output adjusted.data
  damo-analyze adjust --input record.h5 --skip 5 --aggregate_interval 300000 --output_type json
"""


def prepare_parser(parser):
    from damo_pipe.analyze.record_filter import add_filter_arguments
    parser.add_argument("--input", "-i", metavar="<file>", nargs="+", default=["damon.data"],
                        help="record file(s): any damon.data flavour or an HDF5 archive")
    parser.add_argument("--aggregate_interval", metavar="<µs>", type=int,
                        help="new aggregation interval (µs); without it records are only filtered")
    parser.add_argument("--skip", metavar="<# snapshots>", type=int, default=20,
                        help="number of first snapshots to drop before aggregating")
    parser.add_argument("--output", metavar="<file>", default="damon.adjusted.data",
                        help="output file")
    parser.add_argument("--output_type", choices=["json_compressed", "json", "perf_script"],
                        default="json_compressed", help="output format")
    parser.add_argument("--output_permission", metavar="<mode>", default="600",
                        help="permission of the output file (octal)")
    add_filter_arguments(parser)
    parser.add_argument("--engine", choices=["cython", "python"], default="cython",
                        help=argparse.SUPPRESS)


def run(args):
    from damo_pipe.analyze.adjust import adjust_record
    from damo_pipe.analyze.record_filter import (ChunkFilter, build_filter, region_percent,
                                                 region_usec)
    from damo_pipe.model import concat_records
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.errors import UsageError
    from damo_pipe.formats import write_records
    try:
        mode = int(args.output_permission, 8)
    except ValueError:
        raise UsageError("wrong --output_permission %r (octal number expected)" % args.output_permission)
    if not 0 <= mode <= 0o777:
        raise UsageError("wrong --output_permission %r" % args.output_permission)
    if args.aggregate_interval is not None and args.aggregate_interval <= 0:
        raise UsageError("--aggregate_interval must be positive")
    filt = build_filter(args)
    records = []
    with RecordSource.open(args.input) as src:
        for i, meta in enumerate(src.metas):
            cf = ChunkFilter(filt)
            chunks = (cf(c) for c in src.iter_chunks(i))
            if args.aggregate_interval is not None:
                records.append(adjust_record(meta, chunks, args.aggregate_interval, args.skip,
                                             args.engine))
            else:
                parts = [c for c in chunks if c.nr_snapshots]
                records.append(concat_records(parts) if parts else meta.meta())
    region_values = None
    if args.aggregate_interval is None and any(r.intervals is not None for r in records):
        def region_values(ri, chunk):
            if chunk.intervals is None:
                return None, None
            pct = region_percent(chunk).astype(int)
            usec = region_usec(chunk)
            us_is_int = isinstance(chunk.intervals.aggr_us, int)
            return pct, [int(u) if us_is_int else float(u) for u in usec]
    write_records(records, args.output, args.output_type, region_values=region_values, mode=mode)
    return 0
