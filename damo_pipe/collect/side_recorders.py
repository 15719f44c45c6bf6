"""What a recording writes beside the DAMON snapshots, into the same archive.

A :class:`SideRecorder` plugs into :class:`~damo_pipe.collect.recorder.ArchiveRecorder`
(per archive file) and :class:`~damo_pipe.collect.recording.Recording` (per recording).
Its hooks, in the order they are called:

``open(writer, session)``
    an archive file was opened (the first one, and each one rotation opens): add the
    records and side tables this recorder fills. SWMR has not started yet.
``start(writer)``
    once, after the first archive is open and the kdamond runs: start producers
    (processes, tracing). The recording enters :meth:`stop` into its clean-up stack.
``ready()``
    whether it records yet (perf takes a while to start); a recording with
    ``wait_ready`` waits for every side recorder before its first snapshot.
``poll()``
    every turn of the record loop (non-blocking).
``sample(now)``
    after every appended snapshot (``now``: ``time.monotonic()`` when the step began):
    take what is due.
``close(writer)``
    before an archive file is closed (rotation, end): its final rows (or what
    ``writer.set_profile`` stores while the file closes).
``closed(path)``
    after that archive file was closed and compacted: clean up what it no longer
    needs (temporary files), use the finished file (``damo-collect monitor`` reports
    it). Not called when closing failed.
``stop()``
    once at the end, after the kdamond is off and before the archive closes: stop
    producers, drain, release; idempotent. Returns a summary dict (or None).

:class:`~damo_pipe.collect.footprints.FootprintRecorder` (statm, meminfo),
:class:`~damo_pipe.collect.profile.ProfileRecorder` (CPU profile, ``perf record``) and
:class:`TraceRecorder` (DAMON tracepoints) are the ones ``damo-collect record`` uses.
"""
from __future__ import annotations

import dataclasses

from damo_pipe.collect.snapshots import record_metas


class SideRecorder:
    """Base class: every hook does nothing (see the module docstring)."""

    #: short name (summaries, logs)
    name = "side"

    def open(self, writer, session):
        pass

    def start(self, writer):
        pass

    def ready(self):
        return True

    def poll(self):
        pass

    def sample(self, now):
        pass

    def close(self, writer):
        pass

    def closed(self, path):
        pass

    def stop(self):
        return None


class TraceRecorder(SideRecorder):
    """DAMON tracepoints (tracefs or perf) streamed into records of their own.

    One archive record per target (the snapshot records' metadata without a scheme),
    added when the archive opens; the tracer starts after that and is polled from the
    loop. The recorder's writer flushes on its own interval, so the tracer never flushes
    from ``poll()``. Not combinable with rotation (the tracer keeps one writer).
    """

    name = "trace"

    def __init__(self, options, *, parser=None):
        self.options = options
        self.parser = parser
        self.record_keys = {}
        self.handle = None
        self.summary = None

    def open(self, writer, session):
        self.record_keys = {m.target_id: writer.add_record(dataclasses.replace(m, scheme_idx=None))
                            for m in record_metas(session)}
        # the side tables of the DAMON events that are not regions, before SWMR starts
        from damo_pipe.collect.tracing import open_trace_side_tables
        self.side_tables = open_trace_side_tables(self.options, writer)

    def start(self, writer):
        from damo_pipe.collect.tracing import start_tracer
        self.handle = start_tracer(self.options, writer, self.record_keys, parser=self.parser,
                                   flush_interval=None,
                                   side_tables=getattr(self, "side_tables", None))

    def poll(self):
        if self.handle is not None:
            self.handle.poll()

    def stop(self):
        if self.handle is not None and self.summary is None:
            self.summary = self.handle.stop()
        return self.summary
