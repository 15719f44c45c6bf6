"""``damo-collect record``: monitor with DAMON and append snapshots to an HDF5 archive."""
import logging
import os
import subprocess
import sys
import time

from damo_pipe.collect.commands import _options
from damo_pipe.errors import UsageError

log = logging.getLogger(__name__)

HELP = "monitor a process or physical memory with DAMON and record it into an HDF5 archive"

DESCRIPTION = """\
Create a kdamond through DAMON sysfs, take a snapshot of the monitoring results (a
`stat` DAMOS scheme's tried regions) every aggregation interval (or every
--snapshot_interval) and append it to an HDF5 archive that `damo-analyze` can read while
recording goes on. Scheme stats, /proc/PID/statm and /proc/meminfo are recorded too.
Stops at --timeout, when the target exits, or on SIGINT/SIGTERM; the kdamond is then
turned off and nr_kdamonds restored. Refuses to run when any kdamond exists that
damo-collect did not create.

TARGET is a pid, a command line (after --), `paddr`, or `ongoing` (record from the
kdamond that `damo-collect start` left running; it keeps running afterwards).

examples:
  damo-collect record -o app.h5 --target_pid 1234 --timeout 60
  damo-collect record -o app.h5 -- ./my_workload --size 1G
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
    _options.add_sysfs_options(parser)
    try:
        from damo_pipe.collect.commands import record_trace
        record_trace.add_tracer_options(parser)
    except ImportError:   # tracer not installed
        pass


def _deduce_target(args):
    """-> (mode, pids, command)"""
    t = list(args.target)
    if len(t) == 1 and t[0] == "ongoing":
        return "ongoing", [], None
    if len(t) == 1 and t[0] == "paddr":
        if args.ops not in (None, "paddr"):
            raise UsageError("target paddr conflicts with --ops %s" % args.ops)
        args.ops = "paddr"
        return "new", list(args.target_pid), None
    if len(t) == 1 and t[0].isdigit():
        return "new", list(args.target_pid) + [int(t[0])], None
    if t:
        return "new", list(args.target_pid), t
    return "new", list(args.target_pid), None


def run(args):
    from damo_pipe.collect.kdamond import KdamondSession
    from damo_pipe.collect.recorder import ArchiveRecorder, record_loop, record_metas

    mode, pids, command = _deduce_target(args)
    snapshot_interval = None
    if args.snapshot_interval:
        snapshot_interval = _options._num_us(args.snapshot_interval, "snapshot interval") / 1e6
    if args.flush_interval <= 0:
        raise UsageError("--flush_interval must be positive")
    tracer_kind = getattr(args, "tracer", "none") or "none"
    if tracer_kind != "none" and args.output_flush_sec:
        raise UsageError("--tracer cannot be combined with --output_flush_sec rotation")
    if mode == "new" and not pids and not command and args.ops != "paddr":
        raise UsageError("nothing to monitor: give --target_pid, a command after --, or --ops paddr")
    tree, owner = _options.open_tree_and_ownership(args)
    tree.check_available()
    # import the archive stack (h5py, compression filters) before a command starts: it
    # takes seconds on a slow machine, and a short command would be over by then
    import damo_pipe.archive  # noqa: F401
    from damo_pipe.archive.layout import compression_kwargs
    compression_kwargs(args.compression)

    child = None
    session = None
    recorder = None
    tracer = None
    reason = "error"
    with _options.StopFlag() as stop:
        try:
            if mode == "ongoing":
                session = KdamondSession.attach(tree, owner)
                if not session.is_running():
                    raise UsageError("the kdamond started by damo-collect is not running")
            else:
                # validate everything (spec, sysfs, ownership) before running a command
                tree.check_writable()
                from damo_pipe.collect.kdamond import check_idle
                check_idle(tree, owner)
                if command:
                    try:
                        child = subprocess.Popen(command)
                    except OSError as e:
                        raise UsageError("cannot run %s: %s" % (command[0], e)) from None
                    pids = pids + [child.pid]
                spec = _options.build_spec(args, pids)
                session = KdamondSession.create(
                    tree, owner, spec, mode="record",
                    description="damo-collect record -o %s (process %d)" % (args.output, os.getpid()))
                owner.update(tree.root, session.idx, output=os.path.abspath(args.output))
            prov = {"command_line": " ".join(["damo-collect", "record"] + list(args.target)),
                    "sysfs_root": tree.root}

            trace_keys = {}

            def add_trace_records(writer):
                if tracer_kind == "none":
                    return
                import dataclasses
                for m in record_metas(session):
                    trace_keys[m.target_id] = writer.add_record(
                        dataclasses.replace(m, scheme_idx=None))

            recorder = ArchiveRecorder(
                session, args.output, flush_interval=args.flush_interval,
                compression=args.compression, stats_interval=args.stats_interval,
                footprint_interval=args.footprint_interval, rotate_interval=args.output_flush_sec,
                proc_root=args.proc_root, provenance=prov, engine=args.engine,
                on_open=add_trace_records)
            if tracer_kind != "none":
                from damo_pipe.collect.commands import record_trace
                tracer = record_trace.start_tracer(args, recorder.writer, trace_keys, flush=False)

            def should_stop():
                if tracer is not None:
                    tracer.poll()
                return stop()

            log.info("recording %s into %s", session.spec.ops, args.output)
            reason = record_loop(session, recorder, timeout=args.timeout,
                                 snapshot_interval=snapshot_interval, should_stop=should_stop,
                                 child=child, proc_root=args.proc_root)
            if stop.signum is not None:
                reason = "signal %d" % stop.signum
        finally:
            stop.shield()
            errors = []
            if recorder is not None:
                try:
                    recorder.record_final_stats()
                except Exception as e:  # noqa: BLE001 - still stop and close
                    log.warning("final DAMOS stats not recorded: %s", e)
            if session is not None and mode == "new":
                try:
                    session.stop()
                except Exception as e:  # noqa: BLE001 - still close the archive
                    errors.append(e)
            if tracer is not None:
                try:
                    tracer.stop()
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
            if recorder is not None:
                try:
                    recorder.close()
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
            if child is not None and child.poll() is None:
                child.terminate()
                try:
                    child.wait(5)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            if errors and sys.exc_info()[0] is None:
                raise errors[0]
            for e in errors:
                log.warning("cleanup: %s", e)
    log.info("recording ended (%s): %d snapshots, %d regions in %s", reason,
             recorder.nr_snapshots, recorder.nr_regions, ", ".join(recorder.paths))
    if recorder.nr_failed:
        log.warning("%d snapshots were skipped: their tried regions could not be read",
                    recorder.nr_failed)
    return 0
