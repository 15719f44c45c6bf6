"""Shared plumbing of the two console scripts: parser building, logging, error reporting.

Each subcommand lives in its own module exposing ``HELP`` (one line), ``DESCRIPTION``
(with examples), ``prepare_parser(parser)`` and ``run(args) -> int``. Modules are
imported only when their subcommand runs, so ``--help`` and small reports start fast.
"""
import argparse
import importlib
import logging
import sys

from damo_pipe import __version__
from damo_pipe.errors import DamoPipeError


def single_threaded_blas():
    """Ask numpy's BLAS for one thread unless the user chose otherwise.

    damo-pipe never calls BLAS, but OpenBLAS starts a spinning thread per core when numpy
    is imported: on a 2-core host that costs ~0.1 s of CPU per command and competes with
    the archive reader and the kernels. Called first in each console script's ``main``
    (before numpy is imported), so it only affects our own process and its children.
    """
    import os
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


class DashAwareParser(argparse.ArgumentParser):
    """ArgumentParser accepting both ``--time_range`` and ``--time-range`` spellings."""

    def _get_option_tuples(self, option_string):
        return super()._get_option_tuples(option_string)

    #: callable(parser) adding this parser's arguments on first use (see build_parser)
    _deferred = None

    def defer(self, prepare):
        """Add the arguments only when this parser is used: a command line builds just
        the parsers of its own subcommand (saves ~25 ms per run of damo-analyze)."""
        self._deferred = prepare

    def ensure_prepared(self):
        prepare, self._deferred = self._deferred, None
        if prepare is not None:
            prepare(self)

    def format_help(self):
        self.ensure_prepared()
        return super().format_help()

    def format_usage(self):
        self.ensure_prepared()
        return super().format_usage()

    def parse_known_args(self, args=None, namespace=None):
        self.ensure_prepared()
        if args is None:
            args = sys.argv[1:]
        args = [self._canonical(a) for a in args]
        return super().parse_known_args(args, namespace)

    def _canonical(self, arg):
        if not isinstance(arg, str) or not arg.startswith("--") or "-" not in arg[2:]:
            return arg
        name, eq, value = arg.partition("=")
        underscored = "--" + name[2:].replace("-", "_")
        if underscored in self._option_string_actions and name not in self._option_string_actions:
            return underscored + eq + value
        return arg


def add_common_options(parser, top_level=False):
    """``-v`` on the program and on every subcommand; a subcommand's copy does not reset
    a count given before the subcommand name."""
    parser.add_argument("-v", "--verbose", action="count",
                        default=0 if top_level else argparse.SUPPRESS,
                        help="log progress (-vv for debug detail) on stderr")


def build_parser(prog, description, commands, package):
    """commands: list of (name, module_basename)."""
    parser = DashAwareParser(prog=prog, description=description,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    add_common_options(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=DashAwareParser)
    for name, modname in commands:
        module = importlib.import_module("%s.%s" % (package, modname))
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_common_options(p)
        p.defer(module.prepare_parser)
        p.set_defaults(_run=module.run)
    return parser


def run_main(parser, argv):
    """Parse, run the chosen subcommand, turn DamoPipeError into one stderr line + exit code."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its message
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    logging.getLogger("damo_pipe").setLevel(logging.WARNING - 10 * min(args.verbose, 2))
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args._run(args) or 0
    except DamoPipeError as e:
        print("%s: error: %s" % (parser.prog, e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("%s: interrupted" % parser.prog, file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
