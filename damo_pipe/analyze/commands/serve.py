"""``damo-analyze serve``: a resident process that starts every later command in a few ms."""
import os
import sys

HELP = "keep numpy, h5py and the reports loaded in a resident process (commands start in ms)"
DESCRIPTION = """\
Start a resident server for this user's damo-analyze commands. A fresh damo-analyze
spends most of a short command importing numpy and h5py (75-90 ms on a small virtual
machine); with a server running, each command is forked from it with everything
already imported, in the caller's directory and environment and on its terminal,
pipes and files, so the output and exit code are those of a local run. Commands look
for the server by themselves; a server of other code (after an upgrade or an edit)
refuses, stops, and the command runs locally.

The socket is $DAMO_PIPE_SERVER, else $XDG_RUNTIME_DIR/damo-pipe/analyze.sock, else
/tmp/damo-pipe-UID/analyze.sock, in a directory of mode 0700; only commands of the
same user are served. DAMO_PIPE_SERVER=off runs every command locally. See
docs/serve.md.

examples:
  damo-analyze serve --detach              # start in the background
  damo-analyze report wss --input day.h5 --time_range 43200s 43260s
  damo-analyze serve --status
  damo-analyze serve --stop
  damo-analyze serve --idle_timeout 3600   # in the foreground, ends after an idle hour
"""


def prepare_parser(parser):
    parser.add_argument("--socket", metavar="PATH", default=None,
                        help="the socket's path (default: $DAMO_PIPE_SERVER, else the "
                             "user's runtime directory, see above)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--detach", action="store_true",
                        help="run in the background; return once the server listens")
    action.add_argument("--stop", action="store_true", help="stop the running server")
    action.add_argument("--status", action="store_true",
                        help="print the running server's pid and commands served; exit 1 "
                             "when none runs")
    parser.add_argument("--idle_timeout", metavar="SECONDS", type=_positive_seconds,
                        default=None, help="stop after this long without a command")


def _positive_seconds(text):
    import argparse
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive, not %s" % text)
    return value


def _socket_path(args):
    from damo_pipe.analyze import resident
    from damo_pipe.errors import UsageError
    if args.socket:
        return args.socket
    path = resident.configured_socket_path()
    if path is None:
        raise UsageError("%s=off: give the socket with --socket PATH" % resident.ENV)
    return path


def run(args):
    from damo_pipe.analyze import resident, server
    path = _socket_path(args)
    if args.status or args.stop:
        try:
            pid, served = resident.request(path, resident.STOP if args.stop else resident.PING)
        except resident.ServerRefused as e:
            print("no server: %s" % e, file=sys.stderr)
            return 1
        if args.stop:
            print("stopped the server at %s (pid %d, %d commands served)" % (path, pid, served))
        else:
            print("server at %s: pid %d, %d commands served" % (path, pid, served))
        return 0

    def make():
        return server.ResidentServer(path, idle_timeout=args.idle_timeout)

    if args.detach:
        pid = server.detach_and_serve(make)
        print("serving at %s (pid %d); stop with: damo-analyze serve --stop" % (path, pid))
        return 0
    srv = make()
    try:
        count = srv.start()
        print("serving at %s (pid %d, %d modules loaded); Ctrl-C or "
              "damo-analyze serve --stop ends it" % (srv.path, os.getpid(), count),
              file=sys.stderr, flush=True)
        srv.serve_forever()
    finally:
        srv.close()
    return 0
