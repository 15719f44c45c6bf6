# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion may run this command)
"""``damo-analyze``: reports, conversion and batch analysis of DAMON records."""
import sys

DESCRIPTION = """\
Analyse DAMON records: any damon.data flavour written by damo, or a damo-pipe HDF5 archive.

examples:
  damo-analyze info record.h5
  damo-analyze report heatmap --input damon.data --output heatmap.png
  damo-analyze report wss --input record.h5 --range 0 101 10
  damo-analyze convert damon.data record.h5
  damo-analyze diff before.h5 after.h5
  damo-analyze serve --detach      # later commands start in ms (docs/serve.md)
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
    ("serve", "serve"),
]


def available_commands():
    """Subcommands whose module exists (lets the package grow one command at a time)."""
    import importlib.util
    return [(n, m) for n, m in COMMANDS
            if importlib.util.find_spec("damo_pipe.analyze.commands." + m) is not None]


def main(argv=None) -> int:
    from damo_pipe._cli_common import build_parser, run_main, single_threaded_blas
    single_threaded_blas()
    parser = build_parser("damo-analyze", DESCRIPTION, available_commands(),
                          "damo_pipe.analyze.commands")
    return run_main(parser, argv)


def console_main() -> int:
    """The ``damo-analyze`` console script: the command runs in the resident server when
    one of the same code answers (``damo-analyze serve``, docs/serve.md), else here:
    ``main()``, then a fast exit (see exit_fast)."""
    if "serve" not in sys.argv[1:]:
        from damo_pipe.analyze import resident     # the stdlib only: no numpy yet
        rc = resident.forward(sys.argv[1:])
        if rc is not None:
            return rc
    from damo_pipe._cli_common import exit_fast
    return exit_fast(main())


if __name__ == "__main__":
    sys.exit(console_main())
