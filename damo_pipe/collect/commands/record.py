"""``damo-collect record``: monitor with DAMON and append snapshots to an HDF5 archive."""
import logging

from damo_pipe.collect.commands import _options

log = logging.getLogger(__name__)

HELP = "monitor a process or physical memory with DAMON and record it into an HDF5 archive"

DESCRIPTION = """\
Create a kdamond through DAMON sysfs, take a snapshot of the monitoring results (a
`stat` DAMOS scheme's tried regions) every aggregation interval (or every
--snapshot_interval) and append it to an HDF5 archive that `damo-analyze` can read while
recording goes on. Scheme stats, /proc/PID/statm and /proc/meminfo, and a CPU profile
(`perf record -a`, when perf is installed) are recorded too (--do_record chooses).
Stops at --timeout, when the target exits, or on SIGINT/SIGTERM; the kdamond is then
turned off and nr_kdamonds restored. Refuses to run when any kdamond exists that
damo-collect did not create.

TARGET is a pid, a command line (after --), `paddr`, or `ongoing` (record from the
kdamond that `damo-collect start` left running; it keeps running afterwards).

examples:
  damo-collect record -o app.h5 --target_pid 1234 --timeout 60
  damo-collect record -o app.h5 -- ./my_workload --size 1G
  damo-collect record -o app.h5 --do_record access mem_footprint -- ./my_workload
  damo-collect record -o ram.h5 --ops paddr --timeout 10
  damo-collect record -o app.h5 --target_pid 1234 --damos_action pageout \\
      --damos_access_rate 0 0 --damos_sz_region 4K max --damos_age 60s max
  damo-collect start --target_pid 1234 && damo-collect record ongoing -o a.h5 --timeout 5
"""


def prepare_parser(parser):
    parser.add_argument("target", nargs="*", metavar="TARGET",
                        help="pid, `paddr`, `ongoing`, or (after --) a command to run and monitor")
    parser.add_argument("-o", "--out", "--output", dest="output", default="damon.h5", metavar="FILE",
                        help="archive to write (default damon.h5)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="stop recording after this many seconds")
    _options.add_monitoring_options(parser)
    _options.add_record_timing_options(parser)
    _options.add_profile_options(parser)
    _options.add_sysfs_options(parser)
    from damo_pipe.collect.commands import record_trace
    record_trace.add_tracer_options(parser)


def _recording_options(args):
    from damo_pipe.collect.profile import profile_options_for
    from damo_pipe.collect.recording import RecordingOptions

    words = _options.do_record_words(args)
    snapshot_interval = None
    if args.snapshot_interval:
        snapshot_interval = _options._num_us(args.snapshot_interval, "snapshot interval") / 1e6
    return RecordingOptions(
        output=args.output, timeout=args.timeout, snapshot_interval=snapshot_interval,
        flush_interval=args.flush_interval, stats_interval=args.stats_interval,
        footprint_interval=args.footprint_interval, rotate_interval=args.output_flush_sec,
        compression=args.compression, engine=args.engine, proc_root=args.proc_root,
        command_line=" ".join(["damo-collect", "record"] + list(args.target)),
        footprints="mem_footprint" in words,
        cpu_profile=profile_options_for(words, _options.perf_path(args),
                                        freq=args.cpu_profile_freq))


def run(args):
    from damo_pipe.collect.commands import record_trace
    from damo_pipe.collect.recording import Recording, check_request

    target = _options.deduce_target(args)
    options = _recording_options(args)
    tracer = record_trace.tracer_options(args)
    check_request(target, options, tracer)      # usage errors before sysfs is opened
    tree, owner = _options.open_tree_and_ownership(args)
    result = Recording(target, options, tree=tree, ownership=owner, tracer=tracer,
                       spec_builder=lambda pids: _options.build_spec(args, pids)).run()
    log.info("recording ended (%s): %d snapshots, %d regions in %s", result.reason,
             result.nr_snapshots, result.nr_regions, ", ".join(result.paths))
    if result.nr_failed:
        log.warning("%d snapshots were skipped: their tried regions could not be read",
                    result.nr_failed)
    return 0
