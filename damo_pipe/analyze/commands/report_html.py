"""``damo-analyze report html``: one self-contained HTML page for one record file."""

HELP = "self-contained HTML page (heatmap, WSS, last snapshot, record info) of one record file"
DESCRIPTION = """\
Write one HTML page describing a record file: heatmap, WSS distribution and WSS over
time (PNG images embedded as base64 data URIs), record info (targets, intervals, time
span, snapshot and region counts, footprint, WSS percentiles, hottest address ranges)
and the last snapshot (damo's report access text, or a region table). The page loads
nothing from the network and can be mailed or archived as a single file.

--time_range and --address_range describe only the snapshots of a time range and the
bytes of an address range (`report heatmap`'s syntax; regions are clipped to the
address range; --exclude_samples still counts from each record's first snapshot; the
holistic view, which shows the whole recording, is then left out).

examples:
  damo-analyze report html damon.data -o damon.html
  damo-analyze report html --input record.h5 --output record.html --resol 300 800
  damo-analyze report html record.h5 -o window.html --time_range 30s 60s guided
"""


def prepare_parser(parser):
    parser.add_argument("input", nargs="?", metavar="INPUT", help="record file (default damon.data)")
    parser.add_argument("--input", "-i", dest="input_opt", metavar="INPUT",
                        help="record file (same as the positional INPUT)")
    parser.add_argument("--output", "-o", required=True, metavar="FILE.html", help="page to write")
    parser.add_argument("--input_type", choices=None, metavar="TYPE",
                        help="input format (default: detected from the content)")
    parser.add_argument("--resol", type=int, nargs=2, metavar=("TIME", "ADDR"), default=[500, 500],
                        help="heatmap resolution (default 500 500)")
    parser.add_argument("--exclude_samples", type=int, default=20, metavar="N",
                        help="snapshots skipped at the start of each record for WSS (default 20)")
    parser.add_argument("--max_table_rows", type=int, default=500, metavar="N",
                        help="regions listed in the last-snapshot table (default 500)")
    parser.add_argument("--mark_skipped", action="store_true",
                        help="shade and label, in the WSS-over-time picture, the first "
                             "--exclude_samples snapshots (the picture shows every snapshot; "
                             "the WSS numbers skip those)")
    from damo_pipe.analyze.selection import add_selection_arguments
    add_selection_arguments(parser)


def run(args):
    from damo_pipe._extras import require
    require("matplotlib", "the HTML report's pictures")   # before any work
    from damo_pipe.analyze.images import BatchOptions
    from damo_pipe.analyze.html import write_record_report
    from damo_pipe.errors import UsageError

    if args.input and args.input_opt and args.input != args.input_opt:
        raise UsageError("give the input once (INPUT or --input)")
    path = args.input or args.input_opt or "damon.data"
    if min(args.resol) < 1:
        raise UsageError("--resol values must be positive")
    from damo_pipe.analyze.selection import check_selection_words
    check_selection_words(args.time_range, args.address_range)
    options = BatchOptions(resol=tuple(args.resol), exclude_samples=max(0, args.exclude_samples),
                           time_range=args.time_range, address_range=args.address_range,
                           mark_skipped=args.mark_skipped)
    write_record_report(path, args.output, options=options, input_type=args.input_type,
                        max_table_rows=max(0, args.max_table_rows))
    return 0
