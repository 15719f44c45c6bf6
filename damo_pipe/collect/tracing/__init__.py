"""Stream DAMON tracepoints (tracefs ``trace_pipe`` or ``perf``) straight into an archive.

Layers, each usable alone:

* :mod:`.tracefs` — :class:`TracefsSession` owns the kernel side of tracefs (a private
  instance, or the top-level buffer saved and restored) and opens ``trace_pipe``
  non-blocking; :func:`cleanup_stale_tracing` undoes what a SIGKILLed recording left.
* :mod:`.perf` — :class:`PerfSession` runs ``perf record | perf script`` and exposes
  perf script's text output as a non-blocking pipe.
* :mod:`.streamer` — :class:`TraceStreamer` feeds such text to the incremental trace
  parser and appends completed snapshots to an ``ArchiveWriter``, flushing at an interval.
* :mod:`.handle` — :class:`TracerHandle` glues a session and a streamer (``poll()`` /
  ``stop()``); :func:`open_tracefs_tracer`, :func:`open_perf_tracer` start one.
* :mod:`.start` — :class:`TracerOptions` and :func:`start_tracer`, what a recording calls.

Library code: no printing, no exiting; errors are :class:`~damo_pipe.errors.CollectError`
(tracefs), :class:`~damo_pipe.errors.DamonBusyError` (tracing in use),
:class:`~damo_pipe.errors.DamonUnavailableError` (no tracefs / no DAMON tracepoints) and
:class:`~damo_pipe.errors.ExternalToolError` (perf).
"""
from damo_pipe.collect.tracing.handle import (NullTracerHandle, TracerHandle, open_perf_tracer,
                                              open_tracefs_tracer)
from damo_pipe.collect.tracing.perf import PERF_GATE_SCRIPT, PerfSession
from damo_pipe.collect.tracing.start import (TRACERS, TracerOptions, cleanup_after_crash,
                                             open_trace_side_tables, start_tracer)
from damo_pipe.collect.tracing.streamer import TraceStreamer, read_available
from damo_pipe.collect.tracing.tracefs import (DAMON_EVENTS, DAMOS_EVENT, DEFAULT_EVENTS,
                                               REQUIRED_EVENT, TracefsSession,
                                               available_damon_events, cleanup_stale_tracing,
                                               find_pipe_readers, find_tracefs,
                                               restore_toplevel)

__all__ = ["DAMON_EVENTS", "DAMOS_EVENT", "DEFAULT_EVENTS", "NullTracerHandle",
           "PERF_GATE_SCRIPT", "PerfSession", "REQUIRED_EVENT", "TRACERS", "TraceStreamer",
           "TracefsSession", "TracerHandle", "TracerOptions", "available_damon_events",
           "cleanup_after_crash", "cleanup_stale_tracing", "find_pipe_readers",
           "find_tracefs", "open_perf_tracer", "open_trace_side_tables",
           "open_tracefs_tracer", "read_available",
           "restore_toplevel", "start_tracer"]
