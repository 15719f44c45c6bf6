"""``damo-analyze report footprints``: damo 3.4.3's ``report footprints``."""
import sys

HELP = "distribution of memory footprints (vsz, rss, system memory in use)"
DESCRIPTION = """\
Show the distribution of the memory footprints recorded beside an access record, as
damo 3.4.3's `damo report footprints` does (same options, byte-identical text): the
summed virtual (vsz) and resident (rss) sizes of the monitored processes and the
system's used memory (MemTotal - MemFree). The input is damo's `.mem_footprint` file
or a damo-pipe HDF5 archive (its /collect/footprints and /collect/meminfo tables).

Our extensions: --time_range keeps the snapshots of a time range (heatmap's syntax;
footprint times are wall-clock times, so a 'guided' base is the handy one); --json and
--csv print the numbers (docs/json.md).

examples:
  damo-analyze report footprints --input damon.data.mem_footprint
  damo-analyze report footprints rss --input record.h5 --sortby time
  damo-analyze report footprints vsz --input damon.data.mem_footprint --range 0 101 10 --raw_number
  damo-analyze report footprints --input record.h5 --time_range 10s 60s guided --json
  damo-analyze report footprints rss --input record.h5 --sortby time --all_footprint --csv
"""


def prepare_parser(parser):
    from damo_pipe.analyze.footprints import METRICS
    parser.add_argument("metric", choices=list(METRICS) + ["all"], default="all", nargs="?",
                        help="memory footprint metric to show (default: all)")
    parser.add_argument("--input", "-i", metavar="<file>", default="damon.data.mem_footprint",
                        help="damo's .mem_footprint file or a damo-pipe HDF5 archive")
    parser.add_argument("--range", "-r", metavar=("<start>", "<stop>", "<step>"), type=int, nargs=3,
                        default=[0, 101, 25], help="percentiles to show: range(start, stop, step)")
    parser.add_argument("--sortby", "-s", choices=["time", "size"], default="size",
                        help="order of the values the percentiles are taken from")
    parser.add_argument("--plot", "-p", metavar="<file>",
                        help="draw the distribution (or, with --sortby time, the footprints over "
                             "time) into an image file (.png, .svg, .pdf, .jpeg)")
    parser.add_argument("--nr_cols_bar", metavar="<num>", type=int, default=59,
                        help="width of the bars (0: no bars)")
    parser.add_argument("--raw_number", action="store_true", help="plain numbers without units")
    parser.add_argument("--all_footprint", action="store_true",
                        help="print every footprint value, not percentiles")
    parser.add_argument("--time_range", metavar="<time>", nargs="+",
                        help="only snapshots in [start, end) (e.g. 10s 60s guided); our extension")
    from damo_pipe.analyze.export import add_format_arguments
    add_format_arguments(parser, json_help="print the numbers (bytes) as JSON "
                                           "(docs/json.md); our extension",
                         csv_help="print the percentiles (or with --all_footprint every "
                                  "value) as CSV; our extension")


def run(args):
    from damo_pipe.analyze import footprints as F
    from damo_pipe.errors import UsageError
    if args.range[2] == 0:
        raise UsageError("--range step must not be zero")
    if args.time_range is not None and len(args.time_range) not in (2, 3):
        raise UsageError("--time_range takes <start> <end> [base]")
    metrics = list(F.METRICS) if args.metric == "all" else [args.metric]
    percentiles = list(range(*args.range))
    whole = F.load_footprints(args.input)
    fp = F.select_time_range(whole, args.time_range)
    if args.json or args.csv:
        from damo_pipe.analyze.export import dumps
        origin = int(whole.time_ns[0]) if whole.nr_snapshots else None
        doc = F.footprints_json(fp, metrics, percentiles, args.sortby, args.all_footprint,
                                inputs=[args.input], origin_ns=origin,
                                options={"time_range": args.time_range})
        sys.stdout.write(F.footprints_csv(doc) if args.csv else dumps(doc))
    else:
        sys.stdout.write(F.format_footprints(fp, metrics, percentiles, args.sortby, args.raw_number,
                                             args.all_footprint, args.nr_cols_bar) + "\n")
    if args.plot:
        F.plot_footprints(fp, metrics, args.sortby, args.plot)
    return 0
