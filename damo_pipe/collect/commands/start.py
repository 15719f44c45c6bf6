"""``damo-collect start``: start DAMON monitoring and leave it running."""
import os

from damo_pipe.collect.commands import _options
from damo_pipe.errors import UsageError

HELP = "start DAMON monitoring (and DAMOS schemes) and leave it running"

DESCRIPTION = """\
Create and start a kdamond with the given targets, intervals and DAMOS schemes, record
it in the ownership file and exit; it keeps running until `damo-collect stop`.
`damo-collect snapshot` and `damo-collect record ongoing` read it meanwhile. Refuses
to run when any kdamond exists (nr_kdamonds is not 0).

examples:
  damo-collect start --target_pid 1234
  damo-collect start --ops paddr --damos_action pageout --damos_access_rate 0 0 \\
      --damos_age 60s max
"""


def prepare_parser(parser):
    parser.add_argument("target", nargs="?", metavar="TARGET", default=None,
                        help="a pid or `paddr` (damo's deducible target)")
    _options.add_monitoring_options(parser)
    _options.add_sysfs_options(parser)


def run(args):
    from damo_pipe.collect.kdamond import KdamondSession

    pids = list(args.target_pid)
    if args.target == "paddr":
        args.ops = "paddr"
    elif args.target is not None:
        if not args.target.isdigit():
            raise UsageError("TARGET must be a pid or paddr (commands need `damo-collect record`)")
        pids.append(int(args.target))
    if not pids and args.ops != "paddr":
        raise UsageError("nothing to monitor: give --target_pid or --ops paddr")
    tree, owner = _options.open_tree_and_ownership(args)
    spec = _options.build_spec(args, pids)
    s = KdamondSession.create(tree, owner, spec, mode="start",
                              description="damo-collect start (process %d)" % os.getpid())
    print("started kdamond %d (thread pid %s): %s%s, %d scheme(s) + stat snapshot scheme"
          % (s.idx, s.kdamond_pid, spec.ops,
             "" if spec.ops == "paddr" else " of pid " + " ".join(map(str, spec.pids)),
             len(spec.schemes)))
    return 0
