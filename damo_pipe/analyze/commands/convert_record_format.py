"""``damo-analyze convert_record_format``: damo's command, byte-identical output
(argument parsing; the work is :func:`damo_pipe.convert.convert_record_file`)."""

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
    from damo_pipe._engine import ENGINES
    from damo_pipe.sources import INPUT_TYPES
    parser.add_argument("--record_file", metavar="<file>", default="damon.data",
                        help="record file to convert (default: damon.data)")
    # damo's order of the choices (its --help lists them so)
    parser.add_argument("--format", choices=["json_compressed", "json", "perf_script"],
                        default="json_compressed", help="output format (default: json_compressed)")
    parser.add_argument("--output_file", metavar="<file>", default=None,
                        help="output file (default: overwrite --record_file)")
    parser.add_argument("--input_type", default=None, choices=INPUT_TYPES,
                        help="force the input format instead of detecting it")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help=argparse_suppress())


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS


def run(args) -> int:
    from damo_pipe.convert import convert_record_file
    convert_record_file(args.record_file, args.format, args.output_file,
                        input_type=args.input_type, engine=args.engine)
    return 0
