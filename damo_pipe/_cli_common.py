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


def exit_fast(rc):
    """Leave the process with ``rc`` without the interpreter's teardown, when nothing can
    be lost by it; otherwise return ``rc`` for a normal ``sys.exit``.

    Freeing every module and object at exit (numpy, h5py, the report's arrays) costs
    ~50 ms of a 0.45 s ``report heatmap``. It is skipped only when no other thread runs
    and no HDF5 file is open (so the HDF5 library has nothing to flush); the ``atexit``
    callbacks (logging, matplotlib, multiprocessing, dask, ...) still run, and stdout
    and stderr are flushed. Console scripts only: ``main()`` itself always returns.
    """
    import atexit
    import os
    import threading
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is None or threading.active_count() != 1 or _hdf5_files_open():
        return rc
    run_exitfuncs()
    if threading.active_count() != 1 or _hdf5_files_open():
        return rc
    os._exit(flush_stdio(rc if isinstance(rc, int) else 1))


def flush_stdio(rc):
    """Flush stdout and stderr before a fast exit; returns ``rc``, or 1 when stdout met
    a full disk (the report did not reach its file: never exit 0 with a cut output; one
    error line says so). A closed or broken pipe is ignored, as a normal exit would."""
    import os
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except OSError as e:
            import errno
            if stream is sys.stdout and e.errno in (errno.ENOSPC, errno.EDQUOT):
                try:
                    sys.stderr.write("%s: error: no space left on device writing stdout\n"
                                     % os.path.basename(sys.argv[0] or "damo-pipe"))
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                rc = rc or 1
        except ValueError:
            pass
    return rc


def _hdf5_files_open():
    h5f = getattr(sys.modules.get("h5py"), "h5f", None)
    if h5f is None:
        return False
    try:
        return h5f.get_obj_count(h5f.OBJ_ALL, h5f.OBJ_FILE) > 0
    except Exception:   # noqa: BLE001 - any doubt: the normal exit
        return True


def _terminal_columns():
    """``shutil.get_terminal_size().columns`` without importing shutil (and the bz2,
    lzma, fnmatch it pulls in: ~4 ms per command)."""
    import os
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions printed as written (they hold the examples), wrapped help lines.

    argparse builds a formatter for every ``add_argument``; its own one imports shutil
    each time a command line is parsed, only to learn the terminal width."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class DashAwareParser(argparse.ArgumentParser):
    """ArgumentParser accepting both ``--time_range`` and ``--time-range`` spellings."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

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
    parser = DashAwareParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    add_common_options(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=DashAwareParser)
    for name, modname in commands:
        module = importlib.import_module("%s.%s" % (package, modname))
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        add_common_options(p)
        p.defer(module.prepare_parser)
        p.set_defaults(_run=module.run)
    return parser


def run_main(parser, argv):
    """Parse, run the chosen subcommand, turn DamoPipeError into one stderr line + exit code."""
    if argv is None:    # a real command line: maybe a shell completion request
        from damo_pipe._completion import autocomplete
        autocomplete(parser)
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
    except OSError as e:
        # a full disk met outside the writers that translate it (e.g. stdout redirected
        # to a file): one line, like every other error
        import errno
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = " writing %s" % e.filename if e.filename else ""
        print("%s: error: no space left on device%s" % (parser.prog, where), file=sys.stderr)
        return 1
