"""``damo-analyze report holistic``: damo 3.4.3's ``report holistic``."""
import argparse
import sys

HELP = "access pattern, memory footprints and hotspot functions in one report"
DESCRIPTION = """\
Show a recording as a whole, as damo 3.4.3's `damo report holistic` does (same
options, byte-identical text): the address ranges of each target (heatmap axes),
the distributions of the working set size and of the memory footprints, and the
hotspot functions of the CPU profile (`perf report`). --long adds the ranges in raw
numbers and the distributions in time order.

The access record is any damon.data flavour or a damo-pipe HDF5 archive. Footprints
default to the archive's own tables (an archive) or to damo's side file
<access_pattern>.mem_footprint; the profile defaults to <access_pattern>.profile.
The short report leaves the hotspot section out when perf is not installed.

--output FILE.png (or .svg, .pdf, .jpeg) draws the recording on one time axis
instead of printing the text: the access heatmap, the working set size, the memory
footprints (RSS/VSZ of the targets, system memory used) and the hotspot functions
per time window (--hotspot_windows, --hotspot_top), stacked. An archive's stored
CPU-profile samples need no perf.

--json (our extension, docs/json.md) prints the numbers instead: the records'
address ranges, the working set size and footprint distributions and the
--hotspot_top hotspot functions of the whole recording, counted from the CPU-profile
samples (an archive's sample table, or the perf.data read with `perf script`).

examples:
  damo-analyze report holistic --access_pattern damon.data
  damo-analyze report holistic --access_pattern record.h5 --json --hotspot_top 20
  damo-analyze report holistic --access_pattern damon.data --long
  damo-analyze report holistic --access_pattern record.h5 --profile perf.data
  damo-analyze report holistic --access_pattern record.h5 --output holistic.png
"""


def prepare_parser(parser):
    parser.add_argument("--access_pattern", metavar="<file>", default="damon.data",
                        help="access pattern record (any damon.data flavour or an HDF5 archive)")
    parser.add_argument("--footprints", metavar="<file>",
                        help="memory footprints (damo's .mem_footprint file or an archive)")
    parser.add_argument("--profile", metavar="<file>", help="CPU profile (perf.data)")
    parser.add_argument("--long", action="store_true", help="make the long report")
    parser.add_argument("--perf_path", metavar="<path>", default="perf",
                        help="path of the perf tool (default: perf on PATH)")
    parser.add_argument("--output", metavar="<file>",
                        help="draw the holistic picture into this image (png, svg, pdf, "
                             "jpeg) instead of printing the report; our extension")
    parser.add_argument("--hotspot_windows", type=int, metavar="<int>", default=12,
                        help="time windows of the picture's hotspot panel (default 12)")
    parser.add_argument("--hotspot_top", type=int, metavar="<int>", default=8,
                        help="functions shown in the picture's hotspot panel and listed "
                             "by --json (default 8)")
    parser.add_argument("--json", action="store_true",
                        help="print the report's numbers as JSON (docs/json.md); our "
                             "extension")
    parser.add_argument("--image_size", type=int, nargs=2, metavar=("<width>", "<height>"),
                        help="picture size in pixels (default 1400 1500)")
    # damo's hidden option for 'damo monitor': heatmaps of the last N seconds only
    parser.add_argument("--heatmap_time_last_n_sec", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=["cython", "python"], default="cython",
                        help=argparse.SUPPRESS)


def run(args):
    if args.json:
        from damo_pipe.analyze.export import dumps
        from damo_pipe.analyze.holistic import holistic_json
        from damo_pipe.errors import UsageError
        if args.output is not None:
            raise UsageError("--json prints to stdout: not with --output")
        if args.hotspot_top < 1:
            raise UsageError("--hotspot_top must be positive")
        sys.stdout.write(dumps(holistic_json(args.access_pattern, args.footprints, args.profile,
                                             perf_path=args.perf_path, top=args.hotspot_top,
                                             engine=args.engine)))
        return 0
    if args.output is not None:
        from damo_pipe.analyze.holistic_picture import (check_image_path, compute_timeline,
                                                        save_holistic_image)
        from damo_pipe.errors import UsageError
        if args.hotspot_windows < 1 or args.hotspot_top < 1:
            raise UsageError("--hotspot_windows and --hotspot_top must be positive")
        check_image_path(args.output)
        tl = compute_timeline(args.access_pattern, args.footprints, args.profile,
                              nr_windows=args.hotspot_windows, top=args.hotspot_top,
                              perf_path=args.perf_path, engine=args.engine)
        save_holistic_image(tl, args.output, size=args.image_size)
        return 0
    from damo_pipe.analyze.holistic import holistic_report
    text = holistic_report(args.access_pattern, footprints=args.footprints, profile=args.profile,
                           long=args.long, perf_path=args.perf_path,
                           last_n_sec=args.heatmap_time_last_n_sec, engine=args.engine)
    sys.stdout.write(text + "\n")
    return 0
