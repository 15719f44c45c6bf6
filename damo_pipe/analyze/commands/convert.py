"""``damo-analyze convert``: any damon.data flavour <-> HDF5 archive / damo formats.

Argument parsing only; the work is :func:`damo_pipe.convert.convert_paths`.
"""
import sys


HELP = "convert record files between formats (HDF5 archive, json, json_compressed, perf_script)"

DESCRIPTION = """\
Convert DAMON record files.  Inputs may be any damon.data flavour (json,
json_compressed, perf script / trace-cmd / trace_pipe text, perf.data, legacy binary
record v0/v1/v2) or a damo-pipe HDF5 archive; the input format is detected from the
content (--input_type forces it).  The output format comes from the OUTPUT extension
(.h5/.hdf5 archive, .json, .jsonc/.json_compressed/.zlib, .perf/.txt perf_script) or
--format.  Several inputs, or a directory, convert into the OUTPUT directory, one file
each (same relative name, the format's extension).  Large inputs are streamed:
converting to an archive keeps memory bounded whatever the input size.  Outputs are
written under a temporary name (.OUTPUT.dp-*.tmp) and renamed when complete, keeping
the mode of a file they replace; a full disk or a missing directory is one error line
(exit status 1) and leaves any earlier OUTPUT as it was; the next run removes the
temporary file of a killed one.  A directory without record files is an error.
Damaged input is an error naming the file and the line or byte offset; --lenient
salvages what it can of damaged trace text.

damo's side files go along (--no_side_files: not): X.mem_footprint and X.profile
beside a record file X become the archive's memory-footprint tables and CPU profile
(the perf.data bytes and, when perf is installed, its sample table for hotspots); an
archive converted back writes them beside its output; an archive converted to an
archive keeps every side table, its profile and its recording's attributes.

On a terminal (stderr), a progress bar counts the regions converted (the files, for
several inputs); it needs tqdm (damo-pipe[analyze]).

examples:
  damo-analyze convert damon.data record.h5
  damo-analyze convert record.h5 damon.json
  damo-analyze convert --format json_compressed record.h5 damon.data
  damo-analyze convert run1/damon.data run2/perf.data archives/
  damo-analyze convert --input_type perf_script capture.log capture.h5
  damo-analyze convert --lenient damaged.perf_script salvaged.h5
"""


def prepare_parser(parser):
    from damo_pipe._engine import ENGINES
    from damo_pipe.convert import CHUNK_REGIONS, OUTPUT_FORMATS
    from damo_pipe.sources import INPUT_TYPES
    parser.add_argument("paths", nargs="+", metavar="INPUT... OUTPUT",
                        help="input files or directories, then the output file or directory")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default=None,
                        help="output format (default: from the OUTPUT extension; hdf5 for "
                             "directories)")
    parser.add_argument("--input_type", default=None, choices=INPUT_TYPES,
                        help="force the input format instead of detecting it")
    parser.add_argument("--compression", default=None, choices=["gzip", "lz4", "zstd", "none"],
                        help="HDF5 archive compression (default: the archive's default)")
    parser.add_argument("--chunk_regions", type=int, default=CHUNK_REGIONS, metavar="N",
                        help="regions per streamed chunk (memory/speed trade-off)")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="parser engine (default auto = cython when built)")
    parser.add_argument("--no_side_files", dest="side_files", action="store_false",
                        help="leave damo's side files (.mem_footprint, .profile) and an "
                             "archive's side tables behind")
    parser.add_argument("--lenient", action="store_true",
                        help="salvage a damaged trace text input (perf script, trace-cmd "
                             "report, trace_pipe): drop snapshots whose lines are "
                             "incomplete and lines that do not parse, with one warning "
                             "counting them, instead of failing at the first one; other "
                             "formats are read as usual")
    parser.add_argument("--perf_path", metavar="<path>", default="perf",
                        help="perf that reads a CPU profile going into an archive "
                             "(default: perf on PATH)")


def _progress_bar(total):
    from tqdm import tqdm
    return tqdm(total=total, unit="file", file=sys.stderr, desc="convert")


def _region_bar(total):
    """The bar of a single-file conversion: regions converted (out of ``total`` when the
    input tells it before being read: an archive)."""
    from tqdm import tqdm
    return tqdm(total=total, unit=" regions", unit_scale=True, file=sys.stderr,
                desc="convert", dynamic_ncols=True)


def run(args) -> int:
    from damo_pipe.convert import convert_paths
    from damo_pipe.errors import UsageError
    if len(args.paths) < 2:
        raise UsageError("convert needs at least one INPUT and an OUTPUT")
    from damo_pipe._extras import available
    from damo_pipe._malloc import retain_freed_memory
    # big buffers are freed and allocated again while converting: keep them in the
    # process (no fresh page faults; process-wide, hence here and not in the library)
    retain_freed_memory()
    # a progress bar on a terminal only (no bar frames in a redirected stderr), and only
    # with tqdm (the analyze extra): convert itself is part of the base install
    show = sys.stderr.isatty() and available("tqdm")
    convert_paths(args.paths[:-1], args.paths[-1], args.format,
                  progress=_progress_bar if show else None,
                  region_progress=_region_bar if show else None,
                  input_type=args.input_type, compression=args.compression,
                  chunk_regions=args.chunk_regions, engine=args.engine,
                  side_files=args.side_files, perf_path=args.perf_path,
                  lenient=args.lenient)
    return 0
