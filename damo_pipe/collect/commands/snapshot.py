"""``damo-collect snapshot``: one snapshot of the running monitoring, printed and/or archived."""
from damo_pipe.collect.commands import _options
from damo_pipe.errors import DamoPipeError

HELP = "take one snapshot of the monitoring damo-collect started; print it like `report access`"

DESCRIPTION = """\
Ask the kdamond that `damo-collect start` left running for the regions of its last
aggregation interval (one `update_schemes_tried_regions`), print them like damo's
`report access` (or --raw_form), and/or append them to an archive (-o; the archive is
rewritten atomically). Never touches a kdamond damo-collect did not create.

examples:
  damo-collect start --target_pid 1234 && damo-collect snapshot
  damo-collect snapshot --raw_form
  damo-collect snapshot -o snapshots.h5 --quiet
"""


def prepare_parser(parser):
    parser.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="also append the snapshot to this archive")
    parser.add_argument("--raw_form", action="store_true", help="print the raw_form layout")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    parser.add_argument("--dont_merge_regions", action="store_true",
                        help="keep adjacent regions of equal access frequency and age apart "
                             "(merged by default, like damo's live snapshot)")
    parser.add_argument("--engine", choices=("auto", "cython", "python"), default="auto",
                        help=argparse_suppress())
    _options.add_sysfs_options(parser)


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS


def render(records, raw_form=False):
    try:
        from damo_pipe.analyze import access
    except ImportError:
        access = None
    if access is not None and not raw_form and hasattr(access, "render_report"):
        return access.render_report(records, access.AccessOptions())
    if access is not None and hasattr(access, "render_raw_form"):
        return access.render_raw_form(records)
    lines = []
    for r in records:
        lines.append("target_id: %s" % r.target_id)
        lines.append("nr_regions: %d" % r.nr_regions)
        for i in range(r.nr_regions):
            lines.append("%x-%x %d %d" % (r.regions.start[i], r.regions.end[i],
                                          r.regions.nr_accesses[i], r.regions.age[i]))
    return "\n".join(lines)


def run(args):
    from damo_pipe.collect.kdamond import KdamondSession
    from damo_pipe.collect.snapshots import (append_to_archive, merge_regions,
                                             snapshot_records, take_snapshot)

    tree, owner = _options.open_tree_and_ownership(args)
    session = KdamondSession.attach(tree, owner)
    if not session.is_running():
        raise DamoPipeError("the kdamond damo-collect started is not running (target exited?); "
                            "`damo-collect stop` cleans up")
    tree.check_writable()
    snap = take_snapshot(session, engine=args.engine)
    session.update_stats()
    stats = session.read_stats()
    records = snapshot_records(session, snap, stats[session.stat_scheme_idx])
    if not args.dont_merge_regions:
        records = [merge_regions(r) for r in records]
    if args.output:
        append_to_archive(records, args.output)
    if not args.quiet:
        print(render(records, args.raw_form))
    return 0
