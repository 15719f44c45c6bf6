"""``damo-analyze report wss``: damo 3.4.3's ``report wss`` plus matplotlib plots."""
import argparse
import sys

HELP = "working set size distribution (percentiles, bars, plots)"
DESCRIPTION = """\
Show the distribution of the working set size as damo 3.4.3's `damo report wss`
does (same options, byte-identical text). --plot FILE draws the distribution
(percentile vs size) or, with --sortby time, the WSS of every snapshot over the whole
recording (the numbers skip the first --exclude_samples snapshots, the picture does
not; --mark_skipped shades them; gaps between snapshots are left blank).

Our extensions: --time_range and --address_range keep the snapshots of a time range
and the bytes of an address range (heatmap's syntax; regions are clipped to the
address range; --exclude_samples still counts from each record's first snapshot);
--json and --csv print the numbers (docs/json.md).

examples:
  damo-analyze report wss --input damon.data
  damo-analyze report wss --input record.h5 --range 0 101 10 --raw_number
  damo-analyze report wss --input record.h5 --sortby time --plot wss_time.png
  damo-analyze report wss --input record.h5 --time_range 30s 60s guided --json
  damo-analyze report wss --input record.h5 --address_range 0 4GiB --sortby time --all_wss --csv
"""


def prepare_parser(parser):
    parser.add_argument("--input", "-i", metavar="<file>", nargs="+", default=["damon.data"],
                        help="record file(s): any damon.data flavour or an HDF5 archive")
    parser.add_argument("--range", "-r", metavar=("<start>", "<stop>", "<step>"), type=int, nargs=3,
                        default=[0, 101, 25], help="percentiles to show: range(start, stop, step)")
    parser.add_argument("--exclude_samples", metavar="<# samples>", type=int, default=20,
                        help="number of first snapshots to exclude")
    parser.add_argument("--acc_thres", "-t", metavar="<# accesses>", type=int, default=1,
                        help="minimal number of accesses for a region to be in the working set")
    parser.add_argument("--sz_thres", metavar="<size>", type=int, default=1,
                        help="minimal size of a region to be in the working set")
    parser.add_argument("--work_time", metavar="<micro-seconds>", type=int, default=1,
                        help="time window (µs) the working set is measured over")
    parser.add_argument("--sortby", choices=["time", "size"], default="size",
                        help="order of the wss values the percentiles are taken from")
    parser.add_argument("--plot", metavar="<file>", help="draw the distribution (or the WSS over "
                        "time with --sortby time) into an image file")
    parser.add_argument("--mark_skipped", action="store_true",
                        help="--plot with --sortby time: shade and label the first "
                             "--exclude_samples snapshots (skipped by the numbers)")
    parser.add_argument("--raw_number", action="store_true", help="plain numbers without units")
    parser.add_argument("--all_wss", action="store_true", help="print every wss value, not percentiles")
    parser.add_argument("--nr_cols_bar", metavar="<num>", type=int, default=59,
                        help="width of the bars")
    # damo: the first action of the shared dest sets the default, so collapsing is the default
    parser.add_argument("--collapse_targets", dest="collapse_targets", action="store_true",
                        default=True, help="sum the wss of all targets (default)")
    parser.add_argument("--per_target", dest="collapse_targets", action="store_false",
                        help="one report per target")
    from damo_pipe.analyze.export import add_format_arguments
    from damo_pipe.analyze.selection import add_selection_arguments
    add_selection_arguments(parser)
    add_format_arguments(parser, csv_help="print the percentiles (or with --all_wss every "
                                          "value) as CSV; our extension")
    parser.add_argument("--engine", choices=["cython", "python"], default="cython",
                        help=argparse.SUPPRESS)


def run(args):
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.selection import check_selection_words, resolve_selection
    from damo_pipe.analyze.wss import collapse, compute_wss, format_wss_block
    from damo_pipe.errors import UsageError
    if args.range[2] == 0:
        raise UsageError("--range step must not be zero")
    if args.nr_cols_bar <= 0:
        raise UsageError("--nr_cols_bar must be positive")
    check_selection_words(args.time_range, args.address_range)
    percentiles = list(range(*args.range))
    with RecordSource.open(args.input, lenient=getattr(args, "lenient", False)) as src:
        selection = resolve_selection(src, args.time_range, args.address_range, args.engine)
        per_target = compute_wss(src, args.acc_thres, args.sz_thres, args.work_time,
                                 args.exclude_samples, args.sortby, args.engine, selection)
        if args.json or args.csv:
            from damo_pipe.analyze import wss as W
            from damo_pipe.analyze.export import origin_of
            origin = origin_of(src)
        chron = None
        if args.plot and args.sortby == "time":
            from damo_pipe.analyze.wss_timeline import timelines
            from damo_pipe.analyze.timebase import recording_origin
            chron = (timelines(src, args.acc_thres, args.sz_thres, args.work_time,
                               args.exclude_samples, args.engine, selection),
                     recording_origin(src))
    blocks = []
    if args.collapse_targets:
        blocks.append((0, collapse(per_target)))
    else:
        for tid, t in per_target.items():
            blocks.append((tid, t.wss_bytes.tolist()))
    if args.json or args.csv:
        options = {"acc_thres": args.acc_thres, "sz_thres": args.sz_thres,
                   "work_time_us": args.work_time, "exclude_samples": args.exclude_samples,
                   "sortby": args.sortby, "collapse_targets": args.collapse_targets,
                   **selection.as_json()}
        doc = W.wss_json(per_target, blocks, percentiles, inputs=args.input, options=options,
                         all_values=args.all_wss, origin_ns=origin)
        sys.stdout.write(W.wss_csv(doc) if args.csv else _dumps(doc))
        if args.plot:
            _plot(args, per_target, blocks, percentiles, chron)
        return 0
    text = "\n".join(format_wss_block(tid, values, percentiles, args.raw_number, args.all_wss,
                                      args.nr_cols_bar) for tid, values in blocks)
    sys.stdout.write(text + "\n")
    if args.plot:
        _plot(args, per_target, blocks, percentiles, chron)
    return 0


def _dumps(doc):
    from damo_pipe.analyze.export import dumps
    return dumps(doc)


def _plot(args, per_target, blocks, percentiles, chron):
    from damo_pipe.analyze import plots
    if args.sortby == "time":
        # every window of the whole recording, one line per record (WssTimeline)
        plots.save_wss_timeline(chron[0], args.plot, origin_ns=chron[1],
                                title="working set size over time",
                                mark_skipped=args.mark_skipped)
        return
    pcts = list(range(0, 101))
    if args.collapse_targets:
        vals = blocks[0][1]
        wss = [_pick(vals, p) for p in pcts] if vals else []
        plots.save_wss_distribution(pcts if vals else [], wss, args.plot,
                                    title="working set size distribution")
    else:
        series = {tid: ([p for p in pcts], [_pick(v.tolist(), p) for p in pcts])
                  for tid, v in ((tid, t.wss_bytes) for tid, t in per_target.items()) if len(v)}
        plots.save_wss_distribution(series, None, args.plot, title="working set size distribution")


def _pick(values, p):
    n = len(values)
    idx = int(p / 100.0 * n)
    return values[min(idx, n - 1)]
