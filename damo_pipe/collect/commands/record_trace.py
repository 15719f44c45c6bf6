"""Tracepoint recording for ``damo-collect record --tracer tracefs|perf|none``.

Not a subcommand: helpers that the ``record`` command calls. How the record loop
must use them::

    from damo_pipe.collect.commands import record_trace

    def prepare_parser(parser):
        ...
        record_trace.add_tracer_options(parser)

    def run(args):
        writer = ArchiveWriter(args.output, swmr=..., ...)
        # 1. add every record the tracer will fill BEFORE starting it (SWMR writers
        #    refuse records once appending started). Key = what the trace calls the
        #    target: the DAMON target index (``target_id=`` of damon_aggregated, which
        #    is the target's index in its context on modern kernels). Keep these
        #    records separate from the records the sysfs snapshots go to.
        record_keys = {tidx: writer.add_record(meta_for_trace(tidx)) for tidx in ...}
        # 2. start the tracer before turning the kdamond on, so the first
        #    aggregation is not missed (it never touches sysfs / kdamonds).
        tracer = record_trace.start_tracer(args, writer, record_keys)
        try:
            start_kdamond(...)
            while not done:
                tracer.poll()               # non-blocking; appends + flushes when due
                ... sysfs work, or tracer.wait(0.2) to sleep until trace data arrives
        finally:
            stop_kdamond(...)               # first: no new events after this
            summary = tracer.stop()         # drains, finishes, set_first_start, flush,
                                            # restores tracefs / reaps perf; idempotent
        writer.close()

``start_tracer`` returns a handle with ``poll() -> int`` (regions appended),
``wait(timeout)``, ``fileno()``, ``stop() -> dict`` (summary: tracer, bytes, snapshots,
regions, dropped_regions). With ``--tracer none`` it returns a handle whose methods do
nothing, so the loop needs no branch. The writer is flushed by the handle every
``args.flush_interval`` seconds (1 s when the command has no such option) unless
``start_tracer(..., flush=False)``: pass that when the loop already flushes the same
writer on that interval (damo-collect's ArchiveRecorder does), to avoid a second flush. While the handle is alive SIGTERM raises ``SystemExit(143)`` (only if
SIGTERM had its default action and we run in the main thread), so ``finally`` blocks
restore tracefs on SIGTERM as on SIGINT.

After a SIGKILL: the archive holds every flushed snapshot; a private tracing instance
``<tracefs>/instances/damo-pipe-<pid>`` (default mode) or the top-level tracefs changes
(``--tracefs_mode toplevel``; saved in ``<state dir>/tracefs-toplevel-<pid>.json``)
remain until ``damo-collect stop`` calls :func:`cleanup_after_crash`; perf children
exit by themselves (PDEATHSIG).
"""
import argparse
import signal
import threading

from damo_pipe.collect import tracer as _tracer

TRACERS = ("none", "tracefs", "perf")


def add_tracer_options(parser):
    """Add --tracer and its options to the ``record`` command's parser."""
    g = parser.add_argument_group("tracepoint recording")
    g.add_argument("--tracer", choices=TRACERS, default="none",
                   help="also stream DAMON tracepoints into the archive: tracefs "
                        "(trace_pipe of a private tracing instance), perf (perf record | "
                        "perf script), none (default: sysfs snapshots only)")
    g.add_argument("--tracefs_root", metavar="DIR", default=None,
                   help="tracefs directory (default: /sys/kernel/tracing, mounted if needed)")
    g.add_argument("--trace_buffer_kb", type=int, metavar="KB", default=None,
                   help="per-CPU trace buffer size in KiB (tracefs; default: unchanged)")
    g.add_argument("--tracefs_mode", choices=("instance", "toplevel"), default="instance",
                   help="instance (default): a private tracing instance, no conflict with "
                        "other tracing users; toplevel: the global buffer, refused when "
                        "tracing is in use, restored afterwards")
    g.add_argument("--trace_damos", action="store_true",
                   help="also record damos_before_apply (regions each DAMOS scheme is about "
                        "to apply to) into separate records; doubles the trace volume with "
                        "damo-collect's catch-all stat scheme")
    g.add_argument("--perf", metavar="PATH", default="perf",
                   help="perf executable for --tracer perf (default: perf in PATH)")
    g.add_argument("--perf_mmap_pages", type=int, metavar="N", default=None,
                   help="perf record -m (smaller = lower latency, more wakeups)")
    g.add_argument("--tracer_state_dir", metavar="DIR", default=None, help=argparse.SUPPRESS)
    return g


class _SigtermGuard:
    """Turn SIGTERM into SystemExit(143) while tracing (so ``finally`` restores tracefs)."""

    def __init__(self):
        self.installed = False
        self.previous = None

    def install(self):
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        self.previous = signal.signal(signal.SIGTERM, _raise_exit)
        self.installed = True

    def uninstall(self):
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous)
            self.installed = False


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def start_tracer(args, writer, record_keys, *, parser=None, flush=True):
    """Start the tracer chosen by ``args.tracer``; see the module docstring for the loop.

    ``record_keys``: dict trace key (target index) -> archive record index; with
    ``--trace_damos`` also ("damos_before_apply", target index) -> record index (records
    not announced are added if the writer still allows it, else dropped and counted).
    ``parser``: an incremental trace parser (default: formats.trace_text.TraceStreamParser).
    ``flush=False``: never flush the writer from ``poll()`` (the caller already flushes
    the shared writer every ``--flush_interval``; each flush costs ~50 ms on the dev host,
    so flushing twice per interval doubles that). ``stop()`` always flushes.
    """
    kind = getattr(args, "tracer", "none") or "none"
    if kind == "none":
        return _tracer.NullTracerHandle()
    flush_interval = (getattr(args, "flush_interval", None) or 1.0) if flush else None
    guard = _SigtermGuard()
    guard.install()
    try:
        if kind == "tracefs":
            handle = _tracer.open_tracefs_tracer(
                writer, record_keys, tracefs_root=getattr(args, "tracefs_root", None),
                mode=getattr(args, "tracefs_mode", "instance"),
                buffer_kb=getattr(args, "trace_buffer_kb", None),
                state_dir=getattr(args, "tracer_state_dir", None),
                flush_interval=flush_interval, parser=parser,
                damos=getattr(args, "trace_damos", False))
        elif kind == "perf":
            handle = _tracer.open_perf_tracer(
                writer, record_keys, perf=getattr(args, "perf", "perf"),
                tracefs_root=getattr(args, "tracefs_root", None),
                mmap_pages=getattr(args, "perf_mmap_pages", None),
                flush_interval=flush_interval, parser=parser,
                damos=getattr(args, "trace_damos", False))
        else:
            from damo_pipe.errors import UsageError
            raise UsageError("unknown --tracer %r (choose from %s)" % (kind, ", ".join(TRACERS)))
    except BaseException:
        guard.uninstall()
        raise
    handle._on_stop = guard.uninstall
    return handle


def cleanup_after_crash(args=None):
    """For ``damo-collect stop``: undo tracefs changes left by SIGKILLed recordings.

    Returns human-readable messages (one per action); never raises for "nothing to do".
    """
    return _tracer.cleanup_stale_tracing(
        tracefs_root=getattr(args, "tracefs_root", None),
        state_dir=getattr(args, "tracer_state_dir", None))
