"""``damo-analyze batch``: analyse many record files in parallel (dask.distributed)."""
import sys

HELP = "analyse many record files in parallel on dask and write an HTML index"
DESCRIPTION = """\
Analyse every input record file (any format damo-analyze reads; directories are
searched recursively; quoted globs are expanded, '**' included) in parallel on
dask.distributed. For each file, OUT/<name>/ receives heatmap.png, wss_dist.png,
wss_chron_change.png and summary.json (time span, footprint, WSS percentiles,
hottest address ranges); OUT/index.html compares all of them in a sortable table.

By default a LocalCluster with one single-threaded worker process per CPU runs the
tasks; --scheduler sends them to a running dask scheduler instead (`dask scheduler`,
and `dask worker ADDRESS --nthreads 1` on every node: the workers must see the inputs and
OUT at the same paths; docs/batch.md tells what runs where). An unreadable input is listed as failed in
index.html and on stderr (one line each); the others are still analysed, and the exit
status is then 1. Symlinks never lead out: a file symlink in an input directory that
points outside it is listed as failed (unless --follow_symlinks), and nothing is
written through a symlink inside OUT.

--time_range and --address_range analyse only the snapshots of a time range and the
bytes of an address range of every file (`report heatmap`'s syntax: with the base
'guided', times count from each file's own start; regions are clipped to the address
range; --exclude_samples still counts from each record's first snapshot).

examples:
  damo-analyze batch runs/*.h5 --out report/
  damo-analyze batch runs/*.h5 --out report-30-60/ --time_range 30s 60s guided
  damo-analyze batch 'archive/**/*.data' old/damon.data --out report --workers 2
  damo-analyze batch /shared/records --out /shared/report --scheduler tcp://10.0.0.5:8786
"""


def prepare_parser(parser):
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="record file, directory (searched recursively) or glob")
    parser.add_argument("--out", "-o", required=True, metavar="DIR",
                        help="output directory (created if missing)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="address of a running dask scheduler, e.g. tcp://127.0.0.1:8786 "
                             "(default: start a LocalCluster)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="LocalCluster worker count (default: number of CPUs)")
    parser.add_argument("--threads", action="store_true",
                        help="LocalCluster workers are threads of this process, not processes")
    parser.add_argument("--task_files", type=int, default=None, metavar="N",
                        help="most files in one dask task (default 16: small files are "
                             "grouped while much work is left, single files at the end; "
                             "1: one task per file)")
    parser.add_argument("--resol", type=int, nargs=2, metavar=("TIME", "ADDR"), default=[500, 500],
                        help="heatmap resolution (default 500 500)")
    parser.add_argument("--exclude_samples", type=int, default=20, metavar="N",
                        help="snapshots skipped at the start of each record for WSS (default 20, "
                             "like damo report wss)")
    parser.add_argument("--title", help="title of index.html")
    parser.add_argument("--mark_skipped", action="store_true",
                        help="shade and label, in the WSS-over-time picture, the first "
                             "--exclude_samples snapshots (the picture shows every snapshot; "
                             "the WSS numbers skip those)")
    from damo_pipe.analyze.selection import add_selection_arguments
    add_selection_arguments(parser)
    parser.add_argument("--follow_symlinks", action="store_true",
                        help="analyse file symlinks that lead out of an input directory "
                             "(by default they are listed as failed, not followed)")
    parser.add_argument("--no_progress", action="store_true",
                        help="no progress bar on stderr (there is none when stderr is not a "
                             "terminal)")


def run(args):
    from damo_pipe._extras import require
    require("distributed", "batch")                   # before any work: one line naming
    require("matplotlib", "batch pictures")           # the extra to install
    if not args.no_progress:
        require("tqdm", "the progress bar (or --no_progress)")
    from damo_pipe.analyze.batch import BatchOptions, run_batch
    from damo_pipe.errors import UsageError

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if min(args.resol) < 1:
        raise UsageError("--resol values must be positive")
    from damo_pipe.analyze.selection import check_selection_words
    check_selection_words(args.time_range, args.address_range)
    options = BatchOptions(resol=tuple(args.resol), exclude_samples=max(0, args.exclude_samples),
                           time_range=args.time_range, address_range=args.address_range,
                           mark_skipped=args.mark_skipped)
    state = {}

    def on_start(n):
        from tqdm import tqdm
        state["bar"] = tqdm(total=n, unit="file", file=sys.stderr, dynamic_ncols=True,
                            disable=True if args.no_progress else None,   # None: a TTY only
                            desc="damo-analyze batch")

    def failure_line(res):
        err = res["error"] or "unknown error"
        where = "" if err.startswith(res["path"]) else res["path"] + ": "
        return "damo-analyze: failed: %s%s" % (where, err)

    def on_result(res):
        bar = state.get("bar")
        if bar is not None:
            if not res["ok"]:
                bar.write(failure_line(res), file=sys.stderr)
            bar.update(1)
        elif not res["ok"]:
            print(failure_line(res), file=sys.stderr)

    # dask logs its cluster's life at INFO on stderr; keep the terminal for the progress
    # bar unless -vv asks for detail (a filter on the root handlers: dask sets the levels
    # of its own loggers itself)
    import logging

    def quiet_dask(record):
        return not (record.name.split(".")[0] in ("distributed", "dask")
                    and record.levelno < logging.ERROR)

    handlers = logging.getLogger().handlers if args.verbose < 2 else []
    for h in handlers:
        h.addFilter(quiet_dask)
    try:
        result = run_batch(args.inputs, args.out, scheduler=args.scheduler, workers=args.workers,
                           processes=not args.threads, options=options, on_start=on_start,
                           on_result=on_result, title=args.title,
                           follow_symlinks=args.follow_symlinks, task_files=args.task_files)
    finally:
        if state.get("bar") is not None:
            state["bar"].close()
        for h in handlers:
            h.removeFilter(quiet_dask)
    nr_fail = len(result.failures)
    print("%s: %d analysed, %d failed in %.1f s on %d worker(s)"
          % (result.index_path, len(result.results) - nr_fail, nr_fail, result.seconds,
             result.nr_workers))
    return 1 if nr_fail else 0
