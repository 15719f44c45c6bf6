"""Feed trace text to the incremental parser and append completed snapshots to an archive.

:class:`TraceStreamer` reads nothing itself: it is fed bytes (from ``trace_pipe`` or
``perf script``), parses them with ``damo_pipe.formats.trace_text.TraceStreamParser``,
appends every completed snapshot to an :class:`~damo_pipe.archive.ArchiveWriter` and
flushes it at a fixed interval, so that no intermediate text file exists and a killed
recording leaves an archive holding everything flushed. :func:`read_available` drains a
non-blocking descriptor.
"""
from __future__ import annotations

import logging
import os
import re
import time

from damo_pipe.collect.tracing.tracefs import DAMOS_EVENT

log = logging.getLogger(__name__)

#: bytes read from the trace descriptor before the parser is fed
READ_CHUNK = 1 << 20

_LOST_RE = re.compile(rb"\[LOST (\d+) EVENTS\]")


def default_parser_factory():
    """A lenient parser: one lost or garbled kernel line must not end a recording; the
    incomplete snapshot is dropped, counted and reported (TraceStreamParser)."""
    from damo_pipe.formats.trace_text import TraceStreamParser
    return TraceStreamParser(lenient=True)


class TraceStreamer:
    """Feed trace text to the incremental parser and append completed snapshots.

    ``record_keys`` maps target ids (the trace's ``target_id=``; ``target_idx=`` for
    damos_before_apply) to archive record indexes. A chunk of a target not in it gets a
    new archive record (possible unless the writer already started SWMR appends; its
    regions are then dropped and counted in ``dropped_regions``). The parser's own keys
    (record indexes in order of first appearance) are only cached.

    The exact first start of every record (damo's mean-span deduction, FORMATS.md §0) is
    stored with ``set_first_start`` by :meth:`finish`.
    """

    def __init__(self, writer, record_keys=None, *, parser=None, flush_interval=1.0,
                 clock=time.monotonic, damos_parser=None):
        self.writer = writer
        #: a second parser for damos_before_apply lines (None: they are not enabled);
        #: their chunks go to records keyed ("damos_before_apply", target_idx)
        self.damos_parser = damos_parser
        self._line_tail = b""
        self.record_keys = dict(record_keys or {})
        self._by_parser_key = {}
        self.parser = parser if parser is not None else default_parser_factory()
        self.flush_interval = flush_interval
        self.clock = clock
        self._last_flush = clock()
        self._ends = {}     # record idx -> [first_end, last_end, nr_snapshots]
        self.bytes_in = 0
        self.regions_out = 0
        self.snapshots_out = 0
        self.dropped_regions = 0
        self.dirty = False
        self.finished = False
        self.flushes = 0
        self.flushed_snapshots = 0
        self.lost_events = 0       # from trace_pipe "CPU:N [LOST M EVENTS]" lines
        self._lost_tail = b""

    def _record_idx(self, key, chunk, source=None):
        idx = self._by_parser_key.get((source, key))
        if idx is not None:
            return idx
        tid = getattr(chunk, "target_id", None)
        if source is not None:
            tid = (source, tid)
        idx = self.record_keys.get(tid)
        if idx is None:
            try:
                idx = self.writer.add_record(chunk.meta())
            except Exception as e:  # SWMR writers refuse late records
                log.warning("dropping trace data of target %r: %s", tid, e)
                idx = -1
            else:
                log.info("trace target %r not announced; added archive record %d", tid, idx)
            self.record_keys[tid] = idx
        self._by_parser_key[(source, key)] = idx
        return idx

    def _append(self, items, source=None):
        n = 0
        for key, chunk in items:
            if not chunk.nr_snapshots:
                continue
            idx = self._record_idx(key, chunk, source)
            if idx < 0:
                self.dropped_regions += chunk.nr_regions
                continue
            self.writer.append(idx, chunk)
            ends = chunk.snapshots.end_ns
            e = self._ends.get(idx)
            if e is None:
                self._ends[idx] = [int(ends[0]), int(ends[-1]), len(ends)]
            else:
                e[1] = int(ends[-1])
                e[2] += len(ends)
            n += chunk.nr_regions
            self.snapshots_out += chunk.nr_snapshots
            self.dirty = True
        self.regions_out += n
        return n

    def feed(self, data):
        """Parse ``data`` (bytes); append completed snapshots; return regions appended."""
        if not data:
            return 0
        self.bytes_in += len(data)
        if b"LOST" in data or b"LOST" in self._lost_tail + data[:8]:
            self._count_lost(data)
        self._lost_tail = data[-32:]
        if self.damos_parser is not None:
            return self._feed_split(data)
        return self._append(self.parser.feed(data))

    def _feed_split(self, data, final=False):
        """Route damos_before_apply lines to their own parser (their own records)."""
        buf = self._line_tail + data
        cut = len(buf) if final else buf.rfind(b"\n") + 1
        self._line_tail = buf[cut:]
        body = buf[:cut]
        if DAMOS_EVENT.encode() not in body:
            return self._append(self.parser.feed(body)) if body else 0
        lines = body.splitlines(keepends=True)
        tag = DAMOS_EVENT.encode() + b":"
        main = b"".join(ln for ln in lines if tag not in ln)
        damos = b"".join(ln for ln in lines if tag in ln)
        n = self._append(self.parser.feed(main)) if main else 0
        return n + self._append(self.damos_parser.feed(damos), DAMOS_EVENT)

    def _count_lost(self, data):
        tail = self._lost_tail
        buf = tail + data
        for m in _LOST_RE.finditer(buf):
            if m.end() > len(tail):
                self.lost_events += int(m.group(1))
        if self.lost_events:
            log.warning("the kernel dropped %d trace events so far (trace buffer too small "
                        "or reader too slow; try a larger --trace_buffer_kb)", self.lost_events)

    def maybe_flush(self, force=False):
        """Flush the writer when ``flush_interval`` passed (None: only when forced,
        for callers that flush the shared writer themselves)."""
        now = self.clock()
        if self.flush_interval is None and not force:
            return False
        if self.dirty and (force or now - self._last_flush >= self.flush_interval):
            self._flush()
            self._last_flush = now
            return True
        return False

    def first_starts(self):
        """record idx -> deduced exact first start (records with >= 2 snapshots)."""
        out = {}
        for idx, (first, last, n) in self._ends.items():
            if n >= 2:
                out[idx] = first - float(last - first) / (n - 1)
        return out

    def finish(self):
        """Parse what remains buffered, append it, store first starts and flush."""
        if self.finished:
            return 0
        self.finished = True
        n = 0
        if self.damos_parser is not None:
            n += self._feed_split(b"", final=True)
            n += self._append(self.damos_parser.finish() or [], DAMOS_EVENT)
        n += self._append(self.parser.finish() or [])
        for idx, value in self.first_starts().items():
            self.writer.set_first_start(idx, value)
        self._flush()
        return n

    def _flush(self):
        self.writer.flush()
        self.dirty = False
        self.flushes += 1
        self.flushed_snapshots = self.snapshots_out


def read_available(fd, buf, limit=READ_CHUNK * 8):
    """Read what ``fd`` (non-blocking) has now, up to ``limit`` bytes.

    Returns (data, eof). tracefs' trace_pipe returns at most a page per read(); pipes
    up to 64 KiB, so we loop until EAGAIN or the limit.
    """
    parts = []
    total = 0
    eof = False
    view = memoryview(buf)
    while total < limit:
        try:
            n = os.readv(fd, [view])
        except BlockingIOError:
            break
        except InterruptedError:
            continue
        if n == 0:
            eof = True
            break
        parts.append(bytes(view[:n]))
        total += n
    return b"".join(parts), eof
