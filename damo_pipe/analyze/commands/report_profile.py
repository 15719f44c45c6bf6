"""``damo-analyze report profile``: damo 3.4.3's ``report profile``."""
import argparse
import sys

HELP = "CPU profile (perf report) of the times with an access pattern"
DESCRIPTION = """\
Run `perf report` on the CPU profile recorded beside the access record, limited to
the times when the record showed the access pattern that damo's record filter
selects (see `report times`), as damo 3.4.3's `damo report profile` does. perf
prints the report (text when the output is not a terminal). Needs perf.

examples:
  damo-analyze report profile --inputs damon.data damon.data.profile --access_rate 50 100
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
