"""``damo-analyze report wss``: damo 3.4.3's ``report wss`` plus matplotlib plots."""
import argparse
import sys

HELP = "working set size distribution (percentiles, bars, plots)"
DESCRIPTION = """\
Show the distribution of the working set size as damo 3.4.3's `damo report wss`
does (same options, byte-identical text). --plot FILE draws the distribution
(percentile vs size) or, with --sortby time, the WSS over time.

examples:
  damo-analyze report wss --input damon.data
  damo-analyze report wss --input record.h5 --range 0 101 10 --raw_number
  damo-analyze report wss --input record.h5 --sortby time --plot wss_time.png
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
    parser.add_argument("--raw_number", action="store_true", help="plain numbers without units")
    parser.add_argument("--all_wss", action="store_true", help="print every wss value, not percentiles")
    parser.add_argument("--nr_cols_bar", metavar="<num>", type=int, default=59,
                        help="width of the bars")
    # damo: the first action of the shared dest sets the default, so collapsing is the default
    parser.add_argument("--collapse_targets", dest="collapse_targets", action="store_true",
                        default=True, help="sum the wss of all targets (default)")
    parser.add_argument("--per_target", dest="collapse_targets", action="store_false",
                        help="one report per target")
    parser.add_argument("--engine", choices=["cython", "python"], default="cython",
                        help=argparse.SUPPRESS)


def run(args):
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.wss import collapse, compute_wss, format_wss_block
    from damo_pipe.errors import UsageError
    if args.range[2] == 0:
        raise UsageError("--range step must not be zero")
    if args.nr_cols_bar <= 0:
        raise UsageError("--nr_cols_bar must be positive")
    percentiles = list(range(*args.range))
    with RecordSource.open(args.input, lenient=getattr(args, "lenient", False)) as src:
        per_target = compute_wss(src, args.acc_thres, args.sz_thres, args.work_time,
                                 args.exclude_samples, args.sortby, args.engine)
    blocks = []
    if args.collapse_targets:
        blocks.append((0, collapse(per_target)))
    else:
        for tid, t in per_target.items():
            blocks.append((tid, t.wss_bytes.tolist()))
    text = "\n".join(format_wss_block(tid, values, percentiles, args.raw_number, args.all_wss,
                                      args.nr_cols_bar) for tid, values in blocks)
    sys.stdout.write(text + "\n")
    if args.plot:
        _plot(args, per_target, blocks, percentiles)
    return 0


def _plot(args, per_target, blocks, percentiles):
    import numpy as np
    from damo_pipe.analyze import plots
    if args.sortby == "time":
        if args.collapse_targets:
            # time axis of the longest target; values summed index-wise as damo reports them
            longest = max(per_target.values(), key=lambda t: len(t.times_ns), default=None)
            times = longest.times_ns if longest is not None else np.zeros(0)
            plots.save_wss_over_time(times, np.array(blocks[0][1], dtype=np.float64), args.plot,
                                     title="working set size over time")
        else:
            series = {tid: (t.times_ns, t.wss_bytes) for tid, t in per_target.items()}
            plots.save_wss_over_time(series, None, args.plot, title="working set size over time")
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
