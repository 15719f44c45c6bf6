"""``damo-analyze report record_info``: damo 3.4.3's ``report record_info``."""
import argparse
import sys

HELP = "time span and address ranges of each record"
DESCRIPTION = """\
Show, for each monitoring target of the record, when it was monitored and which
contiguous address ranges its regions covered, as damo 3.4.3's
`damo report record_info` does (same options, byte-identical text). These are the
ranges `report heatmap` draws by default (its --guide). --json and --csv print the
same numbers (our extension; docs/json.md).

examples:
  damo-analyze report record_info --input damon.data
  damo-analyze report record_info --input record.h5 --raw_numbers
  damo-analyze report record_info --input record.h5 --json
  damo-analyze report record_info --input record.h5 --csv
"""


def prepare_parser(parser):
    parser.add_argument("--input", "-i", metavar="<file>", nargs="+", default=["damon.data"],
                        help="record file(s): any damon.data flavour or an HDF5 archive")
    parser.add_argument("--raw_numbers", action="store_true", help="print numbers in raw format")
    from damo_pipe.analyze.export import add_format_arguments
    add_format_arguments(parser, json_help="print the ranges as JSON (ns, bytes; "
                                           "docs/json.md); our extension",
                         csv_help="print one CSV row per address range; our extension")
    parser.add_argument("--engine", choices=["cython", "python"], default="cython",
                        help=argparse.SUPPRESS)


def run(args):
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze import record_info as R
    with RecordSource.open(args.input, lenient=getattr(args, "lenient", False)) as src:
        guides = R.record_guides(src, engine=args.engine)
        if args.json or args.csv:
            from damo_pipe.analyze.export import dumps, origin_of
            doc = R.record_info_json(guides, inputs=args.input, origin_ns=origin_of(src))
            sys.stdout.write(R.record_info_csv(doc) if args.csv else dumps(doc))
            return 0
    text = R.format_record_info(guides, raw=args.raw_numbers)
    if text:
        sys.stdout.write(text + "\n")
    return 0
