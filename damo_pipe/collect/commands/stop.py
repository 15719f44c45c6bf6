"""``damo-collect stop``: stop the monitoring that damo-collect started (and only that)."""
import os

from damo_pipe.collect.commands import _options

HELP = "stop the monitoring damo-collect started (never touches other kdamonds)"

DESCRIPTION = """\
Turn off every kdamond listed in the ownership file (started by `damo-collect start`,
or left behind by a killed `damo-collect record`) whose thread pid still matches,
restore nr_kdamonds to 0 and forget it. Kdamonds that damo-collect did not create are
left alone. Also undoes tracefs changes of killed tracepoint recordings.

examples:
  damo-collect stop
"""


def prepare_parser(parser):
    _options.add_sysfs_options(parser)
    parser.add_argument("--tracer_state_dir", metavar="DIR", default=None,
                        help=argparse_suppress())


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS


def run(args):
    from damo_pipe.collect.kdamond import KdamondSession
    from damo_pipe.errors import CollectError

    tree, owner = _options.open_tree_and_ownership(args)
    tree.check_available()
    entries = owner.find(tree.root)
    stopped = 0
    if entries:
        tree.check_writable()
    for e in entries:
        owner_pid = e.get("owner_pid")
        if e.get("mode") == "record" and owner_pid and owner_pid != os.getpid() and \
                os.path.exists("/proc/%d" % owner_pid):
            print("kdamond %d belongs to a running `damo-collect record` (process %d): "
                  "signal that process instead" % (e["kdamond_idx"], owner_pid))
            continue
        try:
            s = KdamondSession.attach(tree, owner, e["kdamond_idx"])
        except CollectError as err:
            # gone or replaced: forget the entry, touch nothing
            owner.remove(tree.root, e["kdamond_idx"])
            print("forgot stale entry for kdamond %d: %s" % (e["kdamond_idx"], err))
            continue
        s.stop()
        stopped += 1
        print("stopped kdamond %d (thread pid %s)" % (s.idx, s.kdamond_pid))
    if tree.is_default:   # with a fake/other tree, leave the real tracefs alone
        from damo_pipe.collect.tracing import cleanup_after_crash
        for msg in cleanup_after_crash(getattr(args, "tracefs_root", None),
                                       args.tracer_state_dir):
            print(msg)
    if not entries:
        print("nothing to stop: no monitoring started by damo-collect")
    return 0
