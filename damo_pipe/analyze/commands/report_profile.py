"""``damo-analyze report profile``: damo 3.4.3's ``report profile``."""
import argparse
import sys

HELP = "CPU profile (perf report) of the times with an access pattern"
DESCRIPTION = """\
Run `perf report` on the CPU profile recorded beside the access record, limited to
the times when the record showed the access pattern that damo's record filter
selects (see `report times`), as damo 3.4.3's `damo report profile` does. perf
prints the report (text when the output is not a terminal). Needs perf.

--json and --csv (our extension, docs/json.md) print the hotspot functions of those
times instead, counted from the CPU-profile samples: an archive's stored sample table
(no perf needed) or the perf.data read with `perf script`. Unlike `perf report`,
samples perf cannot name count as one [unknown] entry per binary.

examples:
  damo-analyze report profile --inputs damon.data damon.data.profile --access_rate 50 100
  damo-analyze report profile --inputs record.h5 --access_rate 50 100 --json --top 20
  damo-analyze report profile --inputs record.h5 perf.data --sz_region 8M max
  damo-analyze report profile --inputs damon.data damon.data.profile --perf_path /usr/bin/perf
"""


def prepare_parser(parser):
    from damo_pipe.analyze.commands.report_times import add_inputs_argument
    from damo_pipe.analyze.record_filter import add_filter_arguments
    add_inputs_argument(parser)
    parser.add_argument("--perf_path", metavar="<path>", default="perf",
                        help="path of the perf tool (default: perf on PATH)")
    add_filter_arguments(parser)
    from damo_pipe.analyze.export import add_format_arguments
    add_format_arguments(parser, json_help="print the intervals and their hotspot functions "
                                           "as JSON (docs/json.md); our extension",
                         csv_help="print the hotspot functions as CSV; our extension")
    parser.add_argument("--top", type=int, metavar="<int>",
                        help="functions listed by --json/--csv (default: all)")
    parser.add_argument("--engine", choices=["cython", "python"], default="cython",
                        help=argparse.SUPPRESS)


def run(args):
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze import profile as P
    from damo_pipe.analyze.commands.report_times import split_inputs
    from damo_pipe.analyze.perf import run_perf_report
    from damo_pipe.analyze.record_filter import build_filter
    access_pattern, given_profile = split_inputs(args.inputs)
    filt = build_filter(args)
    with RecordSource.open([access_pattern]) as src:
        intervals = P.access_intervals(src, filt, engine=args.engine)
        if args.json or args.csv:
            from damo_pipe.analyze.export import origin_of
            origin = origin_of(src)
    if args.json or args.csv:
        return _machine(args, access_pattern, given_profile, intervals, origin)
    if not intervals:
        # damo's message and exit code (on stdout)
        sys.stdout.write("No snapshot of the condition found\n")
        return 1
    offset = P.profile_offset_ns(access_pattern, given_profile)
    with P.profile_path(access_pattern, given_profile) as profile:
        sys.stdout.flush()
        run_perf_report(args.perf_path, profile,
                        P.perf_time_args(P.shift_intervals(intervals, offset)))
    return 0


def _machine(args, access_pattern, given_profile, intervals, origin):
    """--json / --csv: hotspots of the intervals' samples; exit 1 without an interval
    (as the text report) or without samples."""
    from damo_pipe.analyze import profile as P
    from damo_pipe.analyze.export import dumps
    from damo_pipe.analyze.hotspots import hotspots
    from damo_pipe.errors import UsageError
    if args.top is not None and args.top < 1:
        raise UsageError("--top must be positive")
    notes = []
    spots, nr, source = None, 0, None
    if not intervals:
        notes.append("No snapshot of the condition found")
    else:
        samples, source = P.load_profile_samples(access_pattern, given_profile,
                                                 args.perf_path, notes)
        if samples is not None:
            chosen = P.samples_in(samples, intervals)
            nr = len(chosen)
            spots = hotspots(chosen, top=args.top, engine=args.engine)
    doc = P.profile_json(intervals, spots, nr, inputs=[access_pattern], origin_ns=origin,
                         notes=notes, source=source)
    sys.stdout.write(P.profile_csv(doc) if args.csv else dumps(doc))
    return 0 if spots is not None else 1
