"""``damo-analyze report KIND``: damo-compatible reports (heatmap, wss, nr_regions, access, html,
footprints, record_info, times, profile, holistic)."""
import importlib
import importlib.util

from damo_pipe._cli_common import DashAwareParser, add_common_options

HELP = ("damo-compatible reports: heatmap, wss, nr_regions, access, html, footprints, "
        "record_info, times, profile, holistic")
DESCRIPTION = """\
Reports with damo 3.4.3's options and byte-identical text output.

examples:
  damo-analyze report heatmap --input damon.data --output heatmap.png
  damo-analyze report wss --input record.h5 --sortby time --plot wss.png
  damo-analyze report nr_regions --input damon.data
  damo-analyze report access --input record.h5 --style recency-percentiles
  damo-analyze report holistic --access_pattern damon.data --long
"""

#: (report kind, module under damo_pipe.analyze.commands)
KINDS = [
    ("heatmap", "report_heatmap"),
    ("wss", "report_wss"),
    ("nr_regions", "report_nr_regions"),
    ("access", "report_access"),
    ("html", "report_html"),
    ("footprints", "report_footprints"),
    ("record_info", "report_record_info"),
    ("times", "report_times"),
    ("profile", "report_profile"),
    ("holistic", "report_holistic"),
]


def prepare_parser(parser):
    sub = parser.add_subparsers(dest="report_kind", metavar="KIND", parser_class=DashAwareParser)
    for kind, modname in KINDS:
        fullname = "damo_pipe.analyze.commands." + modname
        if importlib.util.find_spec(fullname) is None:
            continue
        module = importlib.import_module(fullname)
        p = sub.add_parser(kind, help=module.HELP,
                           description=getattr(module, "DESCRIPTION", module.HELP))
        add_common_options(p)
        p.add_argument("--lenient", action="store_true",
                       help="read damaged trace text anyway: drop incomplete snapshots "
                            "(counted in a warning) instead of failing")
        p.defer(module.prepare_parser)
        p.set_defaults(_run=module.run)


def run(args):
    from damo_pipe.errors import UsageError
    raise UsageError("report: choose a report kind (%s)" % ", ".join(kind for kind, _ in KINDS))
