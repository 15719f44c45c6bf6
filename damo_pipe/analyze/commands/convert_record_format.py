"""``damo-analyze convert_record_format``: damo's command, byte-identical output."""
import os

HELP = "convert a record file to another damo format (damo convert_record_format)"

DESCRIPTION = """\
Convert a DAMON record file to json_compressed, json or perf_script exactly as
damo 3.4.3's `damo convert_record_format` does (same bytes).  The input format is
detected from the content (json, json_compressed, trace text, perf.data, legacy
binary, damo-pipe HDF5 archive).  Without --output_file the input file is replaced.

examples:
  damo-analyze convert_record_format --record_file damon.data --format json \\
      --output_file damon.json
  damo-analyze convert_record_format --record_file perf.data.script --format perf_script
"""


def prepare_parser(parser):
    parser.add_argument("--record_file", metavar="<file>", default="damon.data",
                        help="record file to convert (default: damon.data)")
    parser.add_argument("--format", choices=["json_compressed", "json", "perf_script"],
                        default="json_compressed", help="output format (default: json_compressed)")
    parser.add_argument("--output_file", metavar="<file>", default=None,
                        help="output file (default: overwrite --record_file)")
    parser.add_argument("--input_type", default=None,
                        choices=["json", "json_compressed", "perf_script", "perf_data",
                                 "record", "hdf5"],
                        help="force the input format instead of detecting it")
    parser.add_argument("--engine", choices=["auto", "cython", "python"], default="auto",
                        help=argparse_suppress())


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS


def run(args) -> int:
    from damo_pipe.errors import RecordFormatError
    from damo_pipe.formats import read_records, write_records
    src = args.record_file
    if not os.path.exists(src):
        raise RecordFormatError("no such file", path=src)
    records = read_records(src, input_type=args.input_type, engine=args.engine)
    out = args.output_file if args.output_file is not None else src
    mode = None
    if args.output_file is None:
        try:
            mode = os.stat(src).st_mode & 0o7777
        except OSError:
            mode = None
    write_records(records, out, args.format, mode=mode)
    return 0
