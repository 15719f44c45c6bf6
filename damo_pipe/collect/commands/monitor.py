"""``damo-collect monitor``: damo's ``monitor`` — a report of the last DELAY seconds,
refreshed every DELAY seconds."""
import logging
import sys

from damo_pipe.collect.commands import _options

log = logging.getLogger(__name__)

HELP = "monitor live: a holistic (or heatmap, wss) report of the last DELAY seconds, repeated"

DESCRIPTION = """\
damo's `monitor`: record DELAY seconds, print the report of those seconds, and again,
until --count reports were printed, SIGINT/SIGTERM, or the target exits. The holistic
view (the default; damo's default is heats) shows the heatmap axes of the last DELAY
seconds, the distributions of the working set size and the memory footprints, and the
hotspot functions of a system-wide CPU profile (`perf record`, when perf is installed).

TARGET is a pid, a command (one quoted shell command line, or after --; its output is
discarded), `paddr`, or `ongoing`: the kdamond that `damo-collect start` left running
(it keeps running). Otherwise the kdamond is created like `damo-collect record` does
(refused when any kdamond exists) and removed at the end, however monitor ends.

examples:
  damo-collect monitor 1234
  damo-collect monitor --count 3 --delay 5 -- ./my_workload --size 1G
  damo-collect monitor "./my_workload --size 1G" --report_type heats
  damo-collect start --target_pid 1234 && damo-collect monitor ongoing --report_type wss
"""


def prepare_parser(parser):
    parser.add_argument("target", nargs="*", metavar="TARGET",
                        help="pid, command, `paddr` or `ongoing`")
    parser.add_argument("--report_type", choices=("holistic", "heats", "wss"),
                        default="holistic", help="report to show (default holistic)")
    parser.add_argument("--delay", type=float, default=3.0, metavar="SECONDS",
                        help="seconds recorded per report (default 3)")
    parser.add_argument("--count", type=int, default=0, metavar="N",
                        help="stop after N reports (default 0: until stopped)")
    parser.add_argument("--no_cpu_profile", action="store_true",
                        help="holistic view without hotspots (no perf record)")
    parser.add_argument("--profile_wait", type=float, default=300.0, metavar="SECONDS",
                        help="wait up to this long for perf to start recording before the "
                             "first round (default 300)")
    parser.add_argument("--flush_interval", type=float, default=1.0, help=_suppress())
    parser.add_argument("--engine", choices=("auto", "cython", "python"), default="auto",
                        help=_suppress())
    _options.add_monitoring_options(parser)
    _options.add_profile_options(parser, do_record=False)
    _options.add_sysfs_options(parser)


def _suppress():
    import argparse
    return argparse.SUPPRESS


def run(args):
    from damo_pipe.collect.monitor import MonitorOptions, monitor
    from damo_pipe.collect.profile import profile_options_for

    if not args.target and not args.target_pid and args.ops != "paddr":
        from damo_pipe.errors import UsageError
        raise UsageError("nothing to monitor: give a pid, a command, paddr or ongoing")
    target = _options.deduce_target(args, shell_single=True)
    profile = None
    # a test tree (--sysfs_root): no profile of the real machine unless a perf is given
    if args.report_type == "holistic" and not args.no_cpu_profile and (
            args.sysfs_root is None or args.perf_path is not None):
        profile = profile_options_for(["cpu_profile"], args.perf_path,
                                      freq=args.cpu_profile_freq)
    options = MonitorOptions(
        delay=args.delay, count=args.count, report_type=args.report_type, cpu_profile=profile,
        profile_wait=args.profile_wait, flush_interval=args.flush_interval, engine=args.engine,
        proc_root=args.proc_root,
        command_line=" ".join(["damo-collect", "monitor"] + list(args.target)))
    tree, owner = _options.open_tree_and_ownership(args)

    def emit(text):
        sys.stdout.write(text)
        sys.stdout.flush()

    result = monitor(target, options, tree=tree, ownership=owner,
                     spec_builder=lambda pids: _options.build_spec(args, pids), emit=emit)
    log.info("monitor ended (%s) after %d reports", result.reason, result.nr_reports)
    return 0
