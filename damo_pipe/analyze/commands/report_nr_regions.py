"""``damo-analyze report nr_regions``: damo 3.4.3's ``report nr_regions``."""
import sys

HELP = "distribution of the number of monitoring regions per snapshot"
DESCRIPTION = """\
Show the distribution of the number of DAMON regions of the snapshots (the first
20 snapshots of every record are skipped, as damo 3.4.3 does).

Our extensions: --time_range and --address_range keep the snapshots of a time range
and count only the regions overlapping an address range (heatmap's syntax; the 20
skipped snapshots still count from each record's first snapshot); --json and --csv
print the numbers (docs/json.md).

examples:
  damo-analyze report nr_regions --input damon.data
  damo-analyze report nr_regions --input record.h5 --range 0 101 10 --sortby time
  damo-analyze report nr_regions --input record.h5 --time_range 30s 60s guided --json
"""


def prepare_parser(parser):
    parser.add_argument("--input", "-i", metavar="<file>", nargs="+", default=["damon.data"],
                        help="record file(s): any damon.data flavour or an HDF5 archive")
    parser.add_argument("--range", "-r", metavar=("<start>", "<stop>", "<step>"), type=int, nargs=3,
                        default=[0, 101, 25], help="percentiles to show: range(start, stop, step)")
    parser.add_argument("--sortby", choices=["time", "size"], default="size",
                        help="order of the values the percentiles are taken from")
    from damo_pipe.analyze.export import add_format_arguments
    from damo_pipe.analyze.selection import add_selection_arguments
    add_selection_arguments(parser)
    add_format_arguments(parser, csv_help="print the percentiles as CSV; our extension")


def run(args):
    from damo_pipe.analyze import nr_regions as N
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.selection import check_selection_words, resolve_selection
    from damo_pipe.errors import UsageError
    if args.range[2] == 0:
        raise UsageError("--range step must not be zero")
    check_selection_words(args.time_range, args.address_range)
    with RecordSource.open(args.input, lenient=getattr(args, "lenient", False)) as src:
        selection = resolve_selection(src, args.time_range, args.address_range)
        results = N.compute_nr_regions(src, args.sortby, selection=selection)
        if args.json or args.csv:
            from damo_pipe.analyze.export import dumps, origin_of
            options = {"skip": N.SKIP, "sortby": args.sortby, **selection.as_json()}
            doc = N.nr_regions_json(results, list(range(*args.range)), inputs=args.input,
                                    options=options, origin_ns=origin_of(src))
            sys.stdout.write(N.nr_regions_csv(doc) if args.csv else dumps(doc))
            return 0
    sys.stdout.write(N.format_nr_regions(results, range(*args.range)) + "\n")
    return 0
