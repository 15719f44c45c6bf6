"""``damo-analyze report times``: damo 3.4.3's ``report times``."""
import argparse
import sys

HELP = "times when the record showed an access pattern"
DESCRIPTION = """\
Print the time intervals (seconds, the record's clock) of the snapshots that keep at
least one region after damo's record filter, as damo 3.4.3's `damo report times`
does (same options, byte-identical text). Snapshots that follow each other are
joined into one interval. --json and --csv print the intervals (our extension;
docs/json.md).

The second --inputs file (the CPU profile) is accepted for damo's command lines and
not read.

examples:
  damo-analyze report times --inputs damon.data damon.data.profile --access_rate 50 100
  damo-analyze report times --inputs record.h5 --sz_region 8M max
  damo-analyze report times --inputs damon.data --access_rate 0 0 --json
"""


def add_inputs_argument(parser):
    """damo's ``--inputs <access pattern> <profile>`` (the profile may be left out)."""
    parser.add_argument("--inputs", metavar="<file>", nargs="+",
                        default=["damon.data", "damon.data.profile"],
                        help="access pattern record (any damon.data flavour or an HDF5 "
                             "archive) and CPU profile (perf.data; default: "
                             "<access pattern>.profile)")


def split_inputs(inputs):
    """(access pattern, profile or None) of --inputs."""
    from damo_pipe.errors import UsageError
    if len(inputs) > 2:
        raise UsageError("--inputs takes <access pattern> [<profile>]")
    return inputs[0], (inputs[1] if len(inputs) == 2 else None)


def prepare_parser(parser):
    from damo_pipe.analyze.record_filter import add_filter_arguments
    add_inputs_argument(parser)
    add_filter_arguments(parser)
    from damo_pipe.analyze.export import add_format_arguments
    add_format_arguments(parser, json_help="print the intervals as JSON (ns and s; "
                                           "docs/json.md); our extension",
                         csv_help="print the intervals as CSV; our extension")
    parser.add_argument("--engine", choices=["cython", "python"], default="cython",
                        help=argparse.SUPPRESS)


def run(args):
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze import profile as P
    from damo_pipe.analyze.record_filter import build_filter
    access_pattern, _ = split_inputs(args.inputs)
    filt = build_filter(args)
    with RecordSource.open([access_pattern], lenient=getattr(args, "lenient", False)) as src:
        intervals = P.access_intervals(src, filt, engine=args.engine)
        if args.json or args.csv:
            from damo_pipe.analyze.export import dumps, origin_of
            doc = P.times_json(intervals, inputs=[access_pattern], origin_ns=origin_of(src))
            sys.stdout.write(P.times_csv(doc) if args.csv else dumps(doc))
            return 0
    if intervals:
        sys.stdout.write(P.format_times(intervals) + "\n")
    return 0
