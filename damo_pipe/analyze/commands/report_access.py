"""``damo-analyze report access``: damo 3.4.3's access pattern report, byte for byte."""
import argparse
import os
import sys

HELP = "show the access pattern of snapshots (damo report access)"
DESCRIPTION = """\
damo 3.4.3's `report access`: per-snapshot region listings, heatmap lines, recency and
temperature percentiles, size histograms, region boxes, --raw_form and --json output.
Reads every damon.data flavour damo reads and damo-pipe HDF5 archives.

examples:
  damo-analyze report access --input damon.data
  damo-analyze report access --input record.h5 --style recency-percentiles
  damo-analyze report access --input damon.data --style hot --snapshot_idx 0 0
  damo-analyze report access --input damon.data --raw_form --raw_number
  damo-analyze report access --input a.data --input b.data --format set region '<size> <age>'

Live snapshots (damo's default when no file is given) are taken with
`damo-collect snapshot`.
"""

STYLE_CHOICES = ["detailed", "simple-boxes", "temperature-sz-hist", "recency-sz-hist",
                 "cold-memory-tail", "recency-percentiles", "idle-time-percentiles",
                 "temperature-percentiles", "cold", "hot"]

SORT_KEYS = ["address", "access_rate", "age", "size", "temperature"]
BOX_VALUES = ["size", "access_rate", "age", "none"]


def prepare_parser(parser):
    p = parser
    # input
    p.add_argument("--input", nargs="+", action="append", metavar="INPUT",
                   help="record file to read (repeatable); 'tried_regions_of K C S' is live-only")
    p.add_argument("--input_file", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--tried_regions_of", nargs=3, type=str, help=argparse.SUPPRESS)
    p.add_argument("--input_type", choices=["json", "json_compressed", "perf_script", "perf_data",
                                            "record", "hdf5"], help=argparse.SUPPRESS)
    # filters (SEMANTICS.md §6)
    from damo_pipe.analyze.record_filter import add_filter_arguments
    add_filter_arguments(p)
    p.add_argument("--snapshot_damos_filter", nargs="+", action="append",
                   help="DAMOS filter of live snapshots (live only)")
    # output forms
    p.add_argument("--style", choices=STYLE_CHOICES, default="detailed",
                   help="output style (default: detailed)")
    p.add_argument("--format", nargs="+", action="append", metavar="ARG",
                   help="'set|append AREA TEMPLATE' (AREA: record_head snapshot_head region "
                        "snapshot_tail record_tail)")
    for area in ("record_head", "record_tail", "snapshot_head", "snapshot_tail", "region"):
        p.add_argument("--format_" + area, help=argparse.SUPPRESS)
    p.add_argument("--min_chars_for", nargs=2, action="append", metavar=("KEYWORD", "NR"),
                   help="minimum width of a keyword's rendering")
    p.add_argument("--total_sz_only", action="store_true", help="print only snapshot total sizes")
    p.add_argument("--raw_form", action="store_true", help="damo's old raw text form")
    p.add_argument("--raw_number", action="store_true", help="print numbers machine-friendly")
    p.add_argument("--json", action="store_true", help="print the records as damo JSON")
    p.add_argument("--sort_regions_by", nargs="+", choices=SORT_KEYS, default=["address"],
                   help="region sort keys (last is primary)")
    p.add_argument("--sort_regions_dsc", nargs="+", choices=SORT_KEYS + ["all"], default=[],
                   help="sort these keys descending")
    p.add_argument("--region_box", action="store_true", help="draw a box per region")
    p.add_argument("--region_box_values", nargs=3, choices=BOX_VALUES,
                   default=["age", "access_rate", "size"], metavar=("LENGTH", "COLOR", "HEIGHT"))
    p.add_argument("--region_box_scales", nargs=3, choices=["linear", "log"],
                   default=["log", "linear", "log"], metavar=("LENGTH", "COLOR", "HEIGHT"))
    p.add_argument("--region_box_min_max_length", nargs=2, type=int, default=[1, 30],
                   metavar=("MIN", "MAX"))
    p.add_argument("--region_box_min_max_height", nargs=2, type=int, default=[1, 5],
                   metavar=("MIN", "MAX"))
    p.add_argument("--region_box_colorset", choices=["gray", "flame", "emotion"], default="gray")
    p.add_argument("--region_box_align", choices=["left", "right"], default="left")
    p.add_argument("--percentiles_range", nargs="+", type=int, metavar="N",
                   help="percentiles to show: range() args or an explicit list")
    p.add_argument("--hist_ranges", nargs="+", metavar="V",
                   help="histogram bins as start/end pairs")
    p.add_argument("--hist_logscale", action="store_true", help="log-scale histogram bins")
    p.add_argument("--hist_cumulate", action="store_true", help="cumulative histogram")
    p.add_argument("--temperature_weights", nargs=3, type=int, default=[0, 100, 100],
                   metavar=("SZ", "ACCESS", "AGE"))
    p.add_argument("--snapshot_heatmap_width", type=int, default=80)
    p.add_argument("--snapshot_heatmap_static", action="store_true")
    p.add_argument("--snapshot_heatmap_colorset", choices=["gray", "flame", "emotion"],
                   default="gray")
    p.add_argument("--ls_record_format_keywords", action="store_true")
    p.add_argument("--ls_snapshot_format_keywords", action="store_true")
    p.add_argument("--ls_region_format_keywords", action="store_true")
    p.add_argument("--repeat", nargs="*", metavar="DELAY_COUNT",
                   help="re-read and print COUNT times every DELAY seconds")
    p.add_argument("--exec", metavar="FILE", help="run a Python hook on the records")
    p.add_argument("--on_cache", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--dont_merge_regions", action="store_true", help="(live snapshots only)")
    p.add_argument("--engine", choices=["auto", "cython", "python"], default="auto",
                   help=argparse.SUPPRESS)


def _out(text):
    sys.stdout.write(text)


def _pager_print(text, repeat=False):
    """damo's print rule (AQ1): ≤ 50 newlines → text + newline; else verbatim via less."""
    if repeat or text.count("\n") <= 50 or sys.stdout.isatty():
        _out(text + "\n")
    else:
        _out(text)


def _input_files(args):
    from damo_pipe.errors import RecordFormatError, UsageError
    files = []
    for words in args.input or []:
        if words and words[0] == "tried_regions_of":
            if len(words) != 4:
                raise _DamoExit("--input handling failed (wrong number of args for tried_regions_of)")
            try:
                [int(x) for x in words[1:]]
            except ValueError:
                raise _DamoExit("--input handling failed (tried_regions_of should get only ints)")
            continue    # live DAMOS tried regions: only ./damon.data can stand in (below)
        if len(words) == 1 and not os.path.lexists(words[0]):
            raise RecordFormatError("no such file", path=words[0])
        if len(words) != 1 or not os.path.isfile(words[0]):
            raise _DamoExit("--input handling failed (unsupported input)")
        files.append(words[0])
    if args.input_file:
        files.extend(args.input_file)
    if not files:
        if os.path.isfile("damon.data"):
            files = ["damon.data"]
        else:
            raise UsageError("no record file given and no ./damon.data: live snapshots are "
                             "taken with `damo-collect snapshot` (then pass its file with --input)")
    return files


class _DamoExit(Exception):
    """damo prints a message on stdout and exits 1."""


def _options(args):
    from damo_pipe.analyze.access import AccessOptions
    from damo_pipe.errors import UsageError
    o = AccessOptions()
    o.style = args.style
    o.raw = args.raw_number
    o.total_sz_only = args.total_sz_only
    o.sort_by = list(args.sort_regions_by)
    o.sort_dsc = list(args.sort_regions_dsc)
    o.region_box = args.region_box
    o.box_values = list(args.region_box_values)
    o.box_scales = list(args.region_box_scales)
    o.box_length = tuple(args.region_box_min_max_length)
    o.box_height = tuple(args.region_box_min_max_height)
    o.box_colorset = args.region_box_colorset
    o.box_align = args.region_box_align
    o.percentiles_range = args.percentiles_range
    o.hist_ranges = args.hist_ranges
    o.hist_logscale = args.hist_logscale
    o.hist_cumulate = args.hist_cumulate
    o.temperature_weights = list(args.temperature_weights)
    o.heatmap_width = args.snapshot_heatmap_width
    o.heatmap_static = args.snapshot_heatmap_static
    o.heatmap_colorset = args.snapshot_heatmap_colorset
    o.engine = args.engine
    o.min_chars_for = []
    for kw, n in args.min_chars_for or []:
        try:
            o.min_chars_for.append((kw, int(n)))
        except ValueError:
            raise UsageError("--min_chars_for %s %s: not an integer" % (kw, n))
    for area in ("record_head", "record_tail", "snapshot_head", "snapshot_tail", "region"):
        v = getattr(args, "format_" + area)
        if v is not None:
            o.format_overrides[area] = v
    from damo_pipe.analyze.access import AREAS
    for f in args.format or []:
        if len(f) == 1:
            import json
            text = f[0]
            try:
                if os.path.isfile(text):
                    with open(text) as fh:
                        obj = json.load(fh)
                else:
                    obj = json.loads(text)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
            except (ValueError, OSError):
                raise _DamoExit("format setting failed (wrong --format option)")
            o.format_object = {k: v for k, v in obj.items()}
            continue
        if len(f) != 3:
            raise _DamoExit("format setting failed (wrong nr of --format option (%r))" % (f,))
        if f[0] not in ("set", "append"):
            raise _DamoExit("format setting failed (wrong --format action (%s))" % f[0])
        if f[1] not in AREAS:
            raise _DamoExit("format setting failed (wrong --format target area (%s))" % f[1])
        o.format_ops.append(list(f))
    return o


def _time_window(filt):
    """The (start_ns, end_ns) that every snapshot the filter keeps lies in, when only an
    archive's snapshots overlapping it need reading: --snapshot_time without
    --snapshot_idx (whose indices count the snapshots before the time filter)."""
    if filt is None or filt.snapshot_time is None or filt.snapshot_idx is not None:
        return None
    lo, hi = filt.snapshot_time
    return int(lo), int(hi) + 1


def _read_archive_window(path, window):
    """The records of archive ``path``, only their snapshots overlapping ``window``
    (read through the snapshot index: a day-long archive answers a minute in
    milliseconds). The filter then keeps exactly what it keeps of the whole record."""
    from damo_pipe.archive import ArchiveReader
    with ArchiveReader(path) as r:
        return [r.load(i, time_range=window) for i in range(len(r))]


def _load(files, args, filt=None):
    from damo_pipe.sources import ARCHIVE_FORMAT, detect_format, read_records
    from damo_pipe.errors import RecordFormatError
    records = []
    window = _time_window(filt)
    for f in files:
        try:
            if window is not None and args.input_type in (None, ARCHIVE_FORMAT) \
                    and detect_format(f) == ARCHIVE_FORMAT:
                records.extend(_read_archive_window(f, window))
                continue
            records.extend(read_records(f, input_type=args.input_type,
                                        lenient=getattr(args, "lenient", False)))
        except RecordFormatError as e:
            where = ", line %d" % e.line if e.line is not None else ""
            if e.offset is not None:
                where += ", byte offset %d" % e.offset
            raise _DamoExit("parsing %s failed (%s%s)" % (f, e.reason, where))
    return records


def _build_filter(args):
    from damo_pipe.analyze.record_filter import build_filter
    from damo_pipe.errors import UsageError
    try:
        return build_filter(args)
    except UsageError as e:      # damo prints these on stdout and exits 1
        raise _DamoExit(str(e))


def _report_once(files, filt, opts, args, repeat):
    """Load, filter, render and print once; returns the exit code."""
    from damo_pipe.analyze.access import render_json, render_raw_form, render_report
    from damo_pipe.analyze.record_filter import apply_record_filter
    try:
        records = apply_record_filter(_load(files, args, filt), filt)
    except _DamoExit as e:
        _out("%s\n" % e)
        return 1
    head = "" if records else "No record in %r\n" % (files,)
    if args.json:
        text = render_json(records)
    elif args.raw_form:
        text = render_raw_form(records, raw=args.raw_number)
    elif any(r.intervals is None for r in records):
        _out(head + "some records lack the intervals information\n")
        return 1
    else:
        text = render_report(records, opts)   # AccessCrash: one stderr line, exit 1
    _out(head)
    _pager_print(text, repeat)
    return 0


def run(args):
    import time
    from damo_pipe.errors import UsageError
    if args.ls_record_format_keywords:
        _out("use 'damo help access_format_options record_format_keywords' instead\n")
        return 0
    if args.ls_snapshot_format_keywords:
        _out("use 'damo help access_format_options snapshot_format_keywords' instead\n")
        return 0
    if args.ls_region_format_keywords:
        _out("use 'damo help access_format_options region_format_keywords' instead\n")
        return 0
    try:
        files = _input_files(args)
        filt = _build_filter(args)
        # --snapshot_damos_filter only shapes live snapshots: ignored for files
        if args.repeat is not None and len(args.repeat) not in (0, 2):
            raise _DamoExit("--repeat receives only zero or two arguments")
        opts = _options(args)
    except _DamoExit as e:
        _out("%s\n" % e)
        return 1
    if args.exec is not None:
        raise UsageError("--exec (Python hooks on damo's record objects) is not supported; "
                         "read the records with damo_pipe.formats.read_records instead")
    if args.on_cache is not None:
        raise UsageError("--on_cache (damo's experimental cache-set remapping) is not supported")
    if args.repeat is None:
        return _report_once(files, filt, opts, args, False)
    if args.repeat:
        try:
            delay, count = float(args.repeat[0]), int(args.repeat[1])
        except ValueError:
            raise UsageError("--repeat DELAY COUNT: DELAY is seconds, COUNT an integer")
    else:
        delay, count = 1.0, -1
    i = 0
    rc = 0
    while count < 0 or i < count:
        if i:
            time.sleep(delay)
        rc = _report_once(files, filt, opts, args, True)
        sys.stdout.flush()
        i += 1
    return rc
