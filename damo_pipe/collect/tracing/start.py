"""Start the tracer a recording asks for (tracefs, perf or none) from one options object.

How a record loop uses it::

    writer = ArchiveWriter(path, swmr=True, ...)
    # 1. add every record the tracer will fill BEFORE starting it (SWMR writers refuse
    #    records once appending started). Key = what the trace calls the target: the
    #    DAMON target index (``target_id=`` of damon_aggregated). Keep these records
    #    apart from the records the sysfs snapshots go to.
    record_keys = {tidx: writer.add_record(meta_for_trace(tidx)) for tidx in ...}
    # 2. start the tracer (it never touches sysfs / kdamonds)
    tracer = start_tracer(TracerOptions(kind="tracefs"), writer, record_keys)
    try:
        start_kdamond(...)
        while not done:
            tracer.poll()        # non-blocking; appends + flushes when due
            ... sysfs work, or tracer.wait(0.2) to sleep until trace data arrives
    finally:
        stop_kdamond(...)        # first: no new events after this
        summary = tracer.stop()  # drains, finishes, set_first_start, flush, restores
                                 # tracefs / reaps perf; idempotent
    writer.close()

After a SIGKILL: the archive holds every flushed snapshot; a private tracing instance
``<tracefs>/instances/damo-pipe-<pid>`` (default mode) or the top-level tracefs changes
(``mode="toplevel"``; saved in ``<state dir>/tracefs-toplevel-<pid>.json``) remain until
:func:`cleanup_after_crash` (``damo-collect stop``); perf children exit by themselves
(PDEATHSIG).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from damo_pipe.collect.signals import SigtermExit
from damo_pipe.collect.tracing.handle import (NullTracerHandle, open_perf_tracer,
                                              open_tracefs_tracer)
from damo_pipe.collect.tracing.tracefs import cleanup_stale_tracing
from damo_pipe.errors import UsageError

TRACERS = ("none", "tracefs", "perf")


@dataclasses.dataclass
class TracerOptions:
    """Which tracer, and how (the ``--tracer`` options of ``damo-collect record``)."""

    kind: str = "none"                    # none, tracefs or perf
    tracefs_root: Optional[str] = None    # None: /sys/kernel/tracing (mounted if needed)
    tracefs_mode: str = "instance"        # instance or toplevel
    buffer_kb: Optional[int] = None       # per-CPU ring buffer size (tracefs)
    state_dir: Optional[str] = None       # crash-recovery files of toplevel mode
    damos: bool = False                   # also damos_before_apply, into own records
    perf: str = "perf"                    # perf executable
    perf_mmap_pages: Optional[int] = None

    def __post_init__(self):
        if self.kind not in TRACERS:
            raise UsageError("unknown --tracer %r (choose from %s)"
                             % (self.kind, ", ".join(TRACERS)))

    @property
    def enabled(self):
        return self.kind != "none"


def open_trace_side_tables(options: TracerOptions, writer):
    """Before SWMR appending starts: the side tables of the DAMON events that are not
    regions which the tracer will enable (those of the default events this kernel has;
    every default one when tracefs cannot be looked at now). {} for ``--tracer none``."""
    if not options.enabled:
        return {}
    from damo_pipe.collect.tracing.handle import _events_for
    from damo_pipe.collect.tracing.streamer import open_side_tables, side_tables_of_events
    from damo_pipe.collect.tracing.tracefs import available_damon_events, find_tracefs
    events = _events_for(None, options.damos)
    try:
        avail = set(available_damon_events(find_tracefs(options.tracefs_root, mount=False)))
        events = [e for e in events if e in avail]
    except Exception:  # noqa: BLE001 - the tracer's own start reports a missing tracefs
        pass
    return open_side_tables(writer, side_tables_of_events(events))


def start_tracer(options: TracerOptions, writer, record_keys, *, parser=None,
                 flush_interval=1.0, sigterm_exits=True, side_tables=None):
    """Start the tracer ``options`` names and return its handle (see the module docstring).

    ``record_keys``: dict trace key (target index) -> archive record index; with
    ``options.damos`` also ("damos_before_apply", target index) -> record index (records
    not announced are added if the writer still allows it, else dropped and counted).
    ``parser``: an incremental trace parser (default: formats.trace_text.TraceStreamParser).
    ``flush_interval``: seconds between flushes from ``poll()``; None never flushes there
    (for callers that flush the shared writer themselves: each flush costs ~50 ms on the
    dev host, so flushing twice per interval doubles that). ``stop()`` always flushes.
    ``sigterm_exits``: while the handle lives, SIGTERM raises ``SystemExit(143)`` (only
    when SIGTERM had its default action and we run in the main thread), so ``finally``
    blocks restore tracefs on SIGTERM as on SIGINT. With kind "none" the handle's
    methods do nothing, so the loop needs no branch. ``side_tables``: what
    :func:`open_trace_side_tables` made (None: made at the first row if still allowed).
    """
    if not options.enabled:
        return NullTracerHandle()
    guard = SigtermExit()
    if sigterm_exits:
        guard.install()
    try:
        if options.kind == "tracefs":
            handle = open_tracefs_tracer(
                writer, record_keys, tracefs_root=options.tracefs_root,
                mode=options.tracefs_mode, buffer_kb=options.buffer_kb,
                state_dir=options.state_dir, flush_interval=flush_interval, parser=parser,
                damos=options.damos, side_tables=side_tables)
        else:
            handle = open_perf_tracer(
                writer, record_keys, perf=options.perf, tracefs_root=options.tracefs_root,
                mmap_pages=options.perf_mmap_pages, flush_interval=flush_interval,
                parser=parser, damos=options.damos, side_tables=side_tables)
    except BaseException:
        guard.uninstall()
        raise
    handle._on_stop = guard.uninstall
    return handle


def cleanup_after_crash(tracefs_root=None, state_dir=None):
    """Undo tracefs changes left by SIGKILLed recordings (for ``damo-collect stop``).

    Returns human-readable messages (one per action); never raises for "nothing to do".
    """
    return cleanup_stale_tracing(tracefs_root=tracefs_root, state_dir=state_dir)
