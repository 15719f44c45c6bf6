"""A running tracer (a tracefs or perf session glued to a :class:`TraceStreamer`) and the
functions that start one.

:class:`TracerHandle`: ``poll()`` it from the record loop (non-blocking), ``stop()`` it
once at the end (drains, finishes the parser, flushes, restores tracefs / reaps perf).
:class:`NullTracerHandle` has the same interface and does nothing (``--tracer none``).
"""
from __future__ import annotations

import select
import time

from damo_pipe.collect.tracing.perf import PerfSession
from damo_pipe.collect.tracing.streamer import TraceStreamer, default_parser_factory
from damo_pipe.collect.tracing.tracefs import DAMOS_EVENT, DEFAULT_EVENTS, TracefsSession
from damo_pipe.errors import ExternalToolError


class TracerHandle:
    """A running tracer: ``poll()`` it from the record loop, ``stop()`` it once at the end.

    ``source`` is a :class:`TracefsSession` or :class:`PerfSession` already opened
    (``source.fd`` readable, non-blocking).
    """

    kind = "trace"

    def __init__(self, source, streamer, *, kind=None, on_stop=None):
        self.source = source
        self.streamer = streamer
        if kind:
            self.kind = kind
        self._eof = False
        self.stopped = False
        self._on_stop = on_stop
        self.overrun_events = 0

    def fileno(self):
        """Descriptor to wait on with select/poll (None once stopped)."""
        return None if self.stopped else self.source.fd

    def poll(self):
        """Read everything available now, append completed snapshots, flush when due.

        Never blocks. Returns the number of regions appended.
        """
        if self.stopped or self._eof or self.source.fd is None:
            return 0
        n = 0
        if isinstance(self.source, PerfSession):
            self.source.check_ready()
        n, _, eof = self._read(self.source.fd)
        if eof and isinstance(self.source, PerfSession):
            # perf script's stdout closed while we did not stop it: perf died
            self._eof = True
            src = self.source
            rc = src.record.poll() if src.record else None
            msgs = [m for m in (src._stderr_tail(src._record_err),
                                src._stderr_tail(src._script_err)) if m]
            raise ExternalToolError("perf ended unexpectedly (perf record exit %s)%s"
                                    % (rc, ": " + "; ".join(msgs) if msgs else ""))
        self.streamer.maybe_flush()
        return n

    def _read(self, fd):
        """Read what ``fd`` has now and parse it in place in the streamer's reused buffer
        (TraceStreamer.read_from: no copy of the text); (regions, bytes read, eof).
        ``got_data`` is set even when parsing what was read fails."""
        seen = self.streamer.bytes_in
        try:
            return self.streamer.read_from(fd)
        finally:
            if self.streamer.bytes_in > seen:
                self.source.got_data = True

    def wait(self, timeout):
        """Block up to ``timeout`` s until trace data is readable (for simple loops)."""
        fd = self.fileno()
        if fd is None or self._eof:
            time.sleep(timeout)
            return False
        r, _, _ = select.select([fd], [], [], timeout)
        return bool(r)

    def _drain(self, timeout):
        """After the producer stopped: read until the source is empty / at EOF."""
        deadline = time.monotonic() + timeout
        fd = self.source.fd
        if fd is None:
            return
        perf = isinstance(self.source, PerfSession)
        idle_rounds = 0
        while time.monotonic() < deadline and not self._eof:
            _, nread, eof = self._read(fd)
            if nread:
                idle_rounds = 0
            if eof:
                self._eof = True
                break
            if not nread:
                if not perf:
                    # trace_pipe: events are disabled, so an empty read means drained;
                    # one extra short wait catches per-CPU buffers not yet woken.
                    idle_rounds += 1
                    if idle_rounds >= 2:
                        break
                select.select([fd], [], [], 0.05 if not perf else 0.2)

    def stop(self, drain_timeout=60.0):
        """Stop the producer, drain, finish the parser, flush, and undo tracing setup.

        Idempotent. Raises the first error after still having restored tracefs / reaped
        perf. Returns a summary dict.
        """
        if self.stopped:
            return self.summary()
        self.stopped = True
        first_error = None
        try:
            self.source.disable_events()
            self._drain(drain_timeout)
            if hasattr(self.source, "lost_events"):
                self.overrun_events = self.source.lost_events()
            self.streamer.finish()
        except BaseException as e:  # still restore below
            first_error = e
        try:
            self.source.close()
        except BaseException as e:
            if first_error is None:
                first_error = e
        if self._on_stop is not None:
            self._on_stop()
        if first_error is not None:
            raise first_error
        return self.summary()

    def summary(self):
        s = self.streamer
        return {"tracer": self.kind, "bytes": s.bytes_in, "snapshots": s.snapshots_out,
                "regions": s.regions_out, "dropped_regions": s.dropped_regions,
                "lost_events": max(s.lost_events, self.overrun_events),
                "side_rows": s.side_rows, "dropped_side_rows": s.dropped_side_rows,
                "unknown_damon_lines": s.unknown_events()[0],
                **_trace_damage(s.parser, s.damos_parser)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _trace_damage(*parsers):
    """Snapshots and lines the (lenient) trace parsers dropped or skipped."""
    out = {"dropped_snapshots": 0, "damaged_lines": 0}
    for p in parsers:
        st = getattr(p, "state", None)
        if st is not None:
            out["dropped_snapshots"] += getattr(st, "dropped_snapshots", 0)
            out["damaged_lines"] += getattr(st, "damaged_lines", 0)
    return out


class NullTracerHandle:
    """``--tracer none``: same interface, does nothing."""

    kind = "none"
    stopped = False

    def fileno(self):
        return None

    def poll(self):
        return 0

    def wait(self, timeout):
        time.sleep(timeout)
        return False

    def stop(self, drain_timeout=None):
        self.stopped = True
        return {"tracer": "none"}

    def summary(self):
        return {"tracer": "none"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _events_for(events, damos):
    events = tuple(events) if events else DEFAULT_EVENTS
    if damos and DAMOS_EVENT not in events:
        events = events + (DAMOS_EVENT,)
    return events


def _make_streamer(writer, record_keys, parser, flush_interval, events, damos_parser,
                   side_tables=None):
    if DAMOS_EVENT in events and damos_parser is None:
        damos_parser = default_parser_factory()
    return TraceStreamer(writer, record_keys, parser=parser, flush_interval=flush_interval,
                         damos_parser=damos_parser if DAMOS_EVENT in events else None,
                         side_tables=side_tables)


def open_tracefs_tracer(writer, record_keys=None, *, tracefs_root=None, mode="instance",
                        buffer_kb=None, events=None, state_dir=None, flush_interval=1.0,
                        parser=None, session_cls=TracefsSession, damos=False,
                        damos_parser=None, side_tables=None):
    """Open a tracefs session and return a running :class:`TracerHandle`.

    ``damos=True`` also enables damos_before_apply (own records, see TraceStreamer).
    ``side_tables``: the side tables of the other DAMON events (:func:`open_side_tables`,
    made before SWMR appending starts).
    """
    events = _events_for(events, damos)
    streamer = _make_streamer(writer, record_keys, parser, flush_interval, events, damos_parser,
                              side_tables)
    session = session_cls(tracefs_root, mode=mode, buffer_kb=buffer_kb, events=events,
                          state_dir=state_dir)
    session.open()
    return TracerHandle(session, streamer, kind="tracefs")


def open_perf_tracer(writer, record_keys=None, *, perf="perf", tracefs_root=None, events=None,
                     mmap_pages=None, flush_interval=1.0, parser=None, damos=False,
                     damos_parser=None, side_tables=None):
    """Start perf record | perf script and return a running :class:`TracerHandle`."""
    events = _events_for(events, damos)
    streamer = _make_streamer(writer, record_keys, parser, flush_interval, events, damos_parser,
                              side_tables)
    session = PerfSession(perf, tracefs_root=tracefs_root, events=events, mmap_pages=mmap_pages)
    session.open()
    return TracerHandle(session, streamer, kind="perf")
