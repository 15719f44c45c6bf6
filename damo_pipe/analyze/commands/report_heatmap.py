"""``damo-analyze report heatmap``: damo 3.4.3's ``report heatmap`` (text) plus matplotlib images."""
import sys

HELP = "access heatmap (time x address): terminal, raw numbers or an image"
DESCRIPTION = """\
Show when which address range was how frequently accessed, as damo 3.4.3's
`damo report heatmap` does (same options, byte-identical text output). Images
(--output FILE.png|svg|pdf|jpeg) are drawn with matplotlib: time in seconds from the
recording's start, colours from 0, gray where no snapshot was taken, and by default
the contiguous address range with the most access (--draw_range busiest; damo's
'hottest' has the most access per byte and can be a tiny corner).

examples:
  damo-analyze report heatmap --input damon.data
  damo-analyze report heatmap --input record.h5 --output raw --resol 40 80
  damo-analyze report heatmap --input record.h5 --output heatmap.png --draw_range all
  damo-analyze report heatmap --guide --input damon.data
  damo-analyze report heatmap --input damon.data --time_range 20s 30s guided --output raw
  damo-analyze report heatmap --input record.h5 --resol 50 100 --json
  damo-analyze report heatmap --input record.h5 --guide --csv

Our extensions: --json prints the maps (axes and heats) as JSON, --csv one row per
pixel; with --guide, the guides (as report record_info). See docs/json.md.
"""

IMAGE_TYPES = ("png", "svg", "pdf", "jpeg", "jpg")


def prepare_parser(parser):
    parser.add_argument("--output", metavar="<stdout|raw|file>", default="stdout",
                        help="'stdout' (terminal map), 'raw' (time, address, heat lines) or an "
                             "image file (.png, .svg, .pdf, .jpeg)")
    parser.add_argument("--input", "-i", metavar="<file>", nargs="+", default=["damon.data"],
                        help="record file(s): any damon.data flavour or an HDF5 archive")
    parser.add_argument("--kdamond_idx", metavar="<idx>", type=int, help="kdamond index of the records to draw")
    parser.add_argument("--context_idx", metavar="<idx>", type=int, help="context index of the records to draw")
    parser.add_argument("--scheme_idx", metavar="<idx>", type=int, help="scheme index of the records to draw")
    parser.add_argument("--tid", metavar="<id>", type=int, help="target id of the records to draw")
    parser.add_argument("--resol", metavar="<resolution>", type=int, nargs=2,
                        help="number of rows (time) and columns (address); default 40 80 for "
                             "stdout, 500 500 otherwise")
    parser.add_argument("--time_range", metavar="<time>", nargs="+",
                        help="start and end time (e.g. 20s 30s) and an optional base "
                             "('guided', 'guided_end' or a time)")
    parser.add_argument("--address_range", metavar="<address>", nargs="+", action="append",
                        help="start and end address and an optional 'guided' base (repeatable)")
    parser.add_argument("--draw_range", choices=["hottest", "busiest", "all"], default=None,
                        help="which guided address ranges to draw by default: hottest (damo's: "
                             "the most access per byte; the default of the text outputs), "
                             "busiest (the most total access; the default of images), all "
                             "(images: one file per range, one colour scale, their names "
                             "printed)")
    parser.add_argument("--abs_time", action="store_true", help="absolute time in the output")
    parser.add_argument("--abs_addr", action="store_true", help="absolute addresses in the output")
    parser.add_argument("--guide", action="store_true", help="print guidance for the ranges and stop")
    parser.add_argument("--guide_human", action="store_true", help="--guide with human-readable units")
    parser.add_argument("--df_passed", action="store_true",
                        help="weight heats by the fraction of bytes that passed DAMOS filters")
    parser.add_argument("--sort_temperature", action="store_true",
                        help="(accepted for compatibility; not supported)")
    parser.add_argument("--stdout_colorset", "--stdout_heatmap_color", dest="stdout_colorset",
                        choices=["gray", "flame", "emotion"], default="gray",
                        help="colour set of the terminal map")
    parser.add_argument("--stdout_skip_colorset_example", "--stdout_heatmap_skip_color_example",
                        dest="stdout_skip_colorset_example", action="store_true",
                        help="omit the colour legend line of the terminal map")
    from damo_pipe.analyze.export import add_format_arguments
    add_format_arguments(parser, json_help="print the maps (or with --guide the guides) as "
                                           "JSON (docs/json.md); our extension",
                         csv_help="print one CSV row per pixel (or with --guide per guided "
                                  "range); our extension")
    parser.add_argument("--engine", choices=["cython", "python"], default="cython",
                        help=__import__("argparse").SUPPRESS)


def run(args):
    from damo_pipe.analyze import heatmap as hm
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.errors import ReportError, UsageError

    if args.time_range is not None and len(args.time_range) not in (2, 3):
        raise UsageError("--time_range takes <start> <end> [base]")
    for r in args.address_range or []:
        if len(r) not in (2, 3):
            raise UsageError("--address_range takes <start> <end> [guided]")
    if args.sort_temperature:
        raise UsageError("--sort_temperature is not supported")
    out = args.output
    image = None
    if out not in ("stdout", "raw"):
        ext = out.rsplit(".", 1)[-1].lower() if "." in out else ""
        if ext not in IMAGE_TYPES:
            raise UsageError("unsupported --output %r: use stdout, raw or a .png/.svg/.pdf/.jpeg file" % out)
        image = out
    machine = args.json or args.csv
    if machine and image is not None:
        raise UsageError("--json and --csv print to stdout: not with an image --output")
    resol = args.resol or ([40, 80] if out == "stdout" else [500, 500])
    # a picture's default is the busiest range: damo's hottest (per byte) can be a tiny,
    # noisy corner; the text outputs keep damo's choice (byte-identical to damo)
    draw_range = args.draw_range or ("busiest" if image is not None else "hottest")

    with RecordSource.open(args.input, lenient=getattr(args, "lenient", False)) as src:
        try:
            hm.check_intervals_consistency(src.metas)
        except ReportError as e:
            print(str(e))     # damo prints this one on stdout
            return 1
        if machine:
            from damo_pipe.analyze.export import origin_of
            origin = origin_of(src)
        if args.guide or args.guide_human:
            guides = hm.compute_guides(src, engine=args.engine)
            if machine:
                from damo_pipe.analyze import record_info as R
                doc = R.record_info_json(guides, inputs=args.input, origin_ns=origin)
                write_machine(R.record_info_csv(doc) if args.csv else doc)
                return 0
            text = hm.format_guides(guides, human=args.guide_human)
            if text:
                print(text)
            return 0
        grids = hm.compute_heatmaps(
            src, resol, args.time_range, args.address_range, draw_range,
            df_passed=args.df_passed, kdamond_idx=args.kdamond_idx, context_idx=args.context_idx,
            scheme_idx=args.scheme_idx, tid=args.tid, engine=args.engine)
        if image is not None:
            from damo_pipe.analyze.timebase import recording_origin
            origin_ns = recording_origin(src)
    if machine:
        options = {"resol": list(resol), "draw_range": draw_range,
                   "df_passed": args.df_passed}
        doc = hm.heatmaps_json(grids, inputs=args.input, origin_ns=origin, options=options)
        write_machine(hm.heatmaps_csv(doc) if args.csv else doc)
        return 0
    write = sys.stdout.write
    if image is not None:
        _write_images(grids, image, args, origin_ns)
        return 0
    for grid in grids:
        buffer = getattr(sys.stdout, "buffer", None)
        if out == "raw" and args.engine != "python" and buffer is not None:
            sys.stdout.flush()
            buffer.write(hm.format_raw_bytes(grid, args.abs_time, args.abs_addr))
            buffer.write(b"\n")
            buffer.flush()
        elif out == "raw":
            write(hm.format_raw(grid, args.abs_time, args.abs_addr, engine=args.engine) + "\n")
        else:
            text = hm.format_ascii(grid, args.stdout_colorset, args.stdout_skip_colorset_example)
            if text is not None:
                write(text + "\n")
    return 0


def _write_images(grids, image, args, origin_ns):
    """One picture per grid (``NAME.N.EXT`` for several, whose names are printed), time
    in seconds from the recording's start, one colour scale (0 to the hottest pixel of
    them all)."""
    import numpy as np

    from damo_pipe.analyze.plots import save_heatmap_image
    vmax = max((float(np.nanmax(g.heat)) for g in grids if not np.isnan(g.heat).all()),
               default=None)
    for n, grid in enumerate(grids):
        path = image
        if len(grids) > 1:
            stem, dot, ext = image.rpartition(".")
            path = "%s.%d.%s" % (stem, n, ext)
        save_heatmap_image(grid, path, abs_addr=args.abs_addr, abs_time=args.abs_time,
                           origin_ns=origin_ns, vmax=vmax)
        if len(grids) > 1:
            a_end = grid.a_end if grid.a_end is not None else grid.a_start + \
                grid.addr_unit * grid.heat.shape[1]
            print("%s: address range [%#x, %#x)" % (path, int(grid.a_start), int(a_end)))


def write_machine(doc_or_text):
    """Print a JSON document (a dict) or a CSV text."""
    from damo_pipe.analyze.export import dumps
    sys.stdout.write(dumps(doc_or_text) if isinstance(doc_or_text, dict) else doc_or_text)
