# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion may run this command)
"""``damo-analyze``: reports, conversion and batch analysis of DAMON records."""
import sys

from damo_pipe._cli_common import build_parser, exit_fast, run_main, single_threaded_blas

DESCRIPTION = """\
Analyse DAMON records: any damon.data flavour written by damo, or a damo-pipe HDF5 archive.

examples:
  damo-analyze info record.h5
  damo-analyze report heatmap --input damon.data --output heatmap.png
  damo-analyze report wss --input record.h5 --range 0 101 10
  damo-analyze convert damon.data record.h5
  damo-analyze diff before.h5 after.h5
"""

#: (subcommand, module under damo_pipe.analyze.commands)
COMMANDS = [
    ("info", "info"),
    ("convert", "convert"),
    ("convert_record_format", "convert_record_format"),
    ("report", "report"),
    ("adjust", "adjust"),
    ("batch", "batch"),
    ("diff", "diff"),
]


def available_commands():
    """Subcommands whose module exists (lets the package grow one command at a time)."""
    import importlib.util
    return [(n, m) for n, m in COMMANDS
            if importlib.util.find_spec("damo_pipe.analyze.commands." + m) is not None]


def main(argv=None) -> int:
    single_threaded_blas()
    parser = build_parser("damo-analyze", DESCRIPTION, available_commands(),
                          "damo_pipe.analyze.commands")
    return run_main(parser, argv)


def console_main() -> int:
    """The ``damo-analyze`` console script: ``main()``, then a fast exit (see exit_fast)."""
    return exit_fast(main())


if __name__ == "__main__":
    sys.exit(console_main())
