"""``damo-analyze diff A B``: two recordings side by side."""
import argparse
import sys

HELP = "compare two recordings: WSS, nr_regions, footprints and hot ranges side by side"
DESCRIPTION = """\
Compare two recordings (damo-pipe archives or any damon.data flavour) side by side:
records, snapshots, duration, monitored and accessed bytes; the working set size
distribution (report wss's default: targets collapsed, the first --exclude_samples
snapshots of each record skipped); the nr_regions distribution (report nr_regions);
the memory footprint distributions (report footprints; when both recordings have
them); and the --top hot address ranges of each (as the HTML report lists them, ranked
by their share of the record's total access). Columns: A, B and the delta B - A (with
the relative change of sizes). --json prints the same numbers (docs/json.md).

examples:
  damo-analyze diff before.h5 after.h5
  damo-analyze diff damon.data.old damon.data --range 0 101 10 --raw_number
  damo-analyze diff a.h5 b.h5 --json --top 10
"""


def prepare_parser(parser):
    parser.add_argument("a", metavar="A", help="first recording (the base of the deltas)")
    parser.add_argument("b", metavar="B", help="second recording")
    parser.add_argument("--range", "-r", metavar=("<start>", "<stop>", "<step>"), type=int,
                        nargs=3, default=[0, 101, 25],
                        help="percentiles to show: range(start, stop, step)")
    parser.add_argument("--exclude_samples", metavar="<# samples>", type=int, default=20,
                        help="first snapshots of each record left out of the WSS (default 20)")
    parser.add_argument("--top", metavar="<int>", type=int, default=5,
                        help="hot address ranges listed per recording (default 5)")
    parser.add_argument("--raw_number", action="store_true",
                        help="plain numbers (bytes, ns) without units")
    parser.add_argument("--json", action="store_true",
                        help="print the numbers as JSON (docs/json.md)")
    parser.add_argument("--engine", choices=["cython", "python"], default="cython",
                        help=argparse.SUPPRESS)


def run(args):
    from damo_pipe.analyze.diff import diff_recordings, format_diff
    from damo_pipe.errors import UsageError
    if args.range[2] == 0:
        raise UsageError("--range step must not be zero")
    if args.top < 1:
        raise UsageError("--top must be positive")
    if args.exclude_samples < 0:
        raise UsageError("--exclude_samples must not be negative")
    doc = diff_recordings(args.a, args.b, list(range(*args.range)),
                          exclude_samples=args.exclude_samples, top=args.top,
                          engine=args.engine)
    if args.json:
        from damo_pipe.analyze.export import dumps
        sys.stdout.write(dumps(doc))
    else:
        sys.stdout.write(format_diff(doc, raw=args.raw_number) + "\n")
    return 0
