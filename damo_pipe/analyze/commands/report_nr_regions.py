"""``damo-analyze report nr_regions``: damo 3.4.3's ``report nr_regions``."""
import sys

HELP = "distribution of the number of monitoring regions per snapshot"
DESCRIPTION = """\
Show the distribution of the number of DAMON regions of the snapshots (the first
20 snapshots of every record are skipped, as damo 3.4.3 does).

examples:
  damo-analyze report nr_regions --input damon.data
  damo-analyze report nr_regions --input record.h5 --range 0 101 10 --sortby time
"""


def prepare_parser(parser):
    parser.add_argument("--input", "-i", metavar="<file>", nargs="+", default=["damon.data"],
                        help="record file(s): any damon.data flavour or an HDF5 archive")
    parser.add_argument("--range", "-r", metavar=("<start>", "<stop>", "<step>"), type=int, nargs=3,
                        default=[0, 101, 25], help="percentiles to show: range(start, stop, step)")
    parser.add_argument("--sortby", choices=["time", "size"], default="size",
                        help="order of the values the percentiles are taken from")


def run(args):
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.nr_regions import compute_nr_regions, format_nr_regions
    from damo_pipe.errors import UsageError
    if args.range[2] == 0:
        raise UsageError("--range step must not be zero")
    with RecordSource.open(args.input, lenient=getattr(args, "lenient", False)) as src:
        results = compute_nr_regions(src, args.sortby)
    sys.stdout.write(format_nr_regions(results, range(*args.range)) + "\n")
    return 0
