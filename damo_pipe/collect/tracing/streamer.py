"""Feed trace text to the incremental parser and append completed snapshots to an archive.

:class:`TraceStreamer` reads nothing itself: it is fed bytes (from ``trace_pipe`` or
``perf script``), parses them with ``damo_pipe.formats.trace_text.TraceStreamParser``,
appends every completed snapshot to an :class:`~damo_pipe.archive.ArchiveWriter` and
flushes it at a fixed interval, so that no intermediate text file exists and a killed
recording leaves an archive holding everything flushed. :meth:`TraceStreamer.read_from`
drains a non-blocking descriptor into a reused buffer and parses the text there, in
place (the live tracer's path); :func:`read_available` returns what it read as bytes.
"""
from __future__ import annotations

import logging
import os
import re
import time

from damo_pipe.collect.tracing.tracefs import DAMOS_EVENT
from damo_pipe.errors import RecordFormatError
from damo_pipe.formats.trace_text import SnapshotPiece

log = logging.getLogger(__name__)

#: bytes read from the trace descriptor before the parser is fed
READ_CHUNK = 1 << 20

#: size of TraceStreamer's reused read buffer: the text is parsed where it was read,
#: once the buffer is full or the descriptor has nothing more. 2 MiB: a full buffer
#: holds more than 1 MiB of lines (trace_scan's two-thread split); 4 MiB costs 15 MiB
#: more peak RSS at page granularity (larger row arrays per parse) and is no faster
READ_BUFFER = 2 << 20

#: bytes read_from reads per call before it returns (then the caller may flush)
READ_LIMIT = READ_CHUNK * 8

#: the read buffer grows (doubling) for a line longer than it, up to this size; a longer
#: line is an error (no trace event line is that long: a stream without newlines)
MAX_LINE = 64 << 20

_LOST_RE = re.compile(rb"\[LOST (\d+) EVENTS\]")


#: rows of open snapshots a tracer's parser holds before it streams them to the archive
#: (formats.trace_text.TraceStreamParser ``open_regions``): 64 bytes a row, 16 MiB
OPEN_REGIONS = 1 << 18


def default_parser_factory():
    """A lenient parser: one lost or garbled kernel line must not end a recording; the
    incomplete snapshot is dropped, counted and reported (TraceStreamParser). Snapshots
    too big to hold are streamed to the archive in pieces (``OPEN_REGIONS``)."""
    from damo_pipe.formats.trace_text import TraceStreamParser
    return TraceStreamParser(lenient=True, open_regions=OPEN_REGIONS)


class TraceStreamer:
    """Feed trace text to the incremental parser and append completed snapshots.

    ``record_keys`` maps target ids (the trace's ``target_id=``; ``target_idx=`` for
    damos_before_apply) to archive record indexes. A chunk of a target not in it gets a
    new archive record (possible unless the writer already started SWMR appends; its
    regions are then dropped and counted in ``dropped_regions``). The parser's own keys
    (record indexes in order of first appearance) are only cached.

    The exact first start of every record (damo's mean-span deduction, FORMATS.md §0) is
    stored with ``set_first_start`` by :meth:`finish`.

    Text comes either as bytes (:meth:`feed`) or straight from a descriptor
    (:meth:`read_from`: parsed in place in a reused buffer of ``read_buffer`` bytes,
    which grows for a longer line up to ``max_line`` bytes); the two may be mixed.
    """

    def __init__(self, writer, record_keys=None, *, parser=None, flush_interval=1.0,
                 clock=time.monotonic, damos_parser=None, side_tables=None,
                 read_buffer=READ_BUFFER, max_line=MAX_LINE):
        self.writer = writer
        #: {table: SideTable} for the DAMON events that are not regions (made before
        #: SWMR appending starts: :func:`open_side_tables`); None: made at the first
        #: such row if the writer still allows it, else those rows are counted dropped
        self.side_tables = side_tables
        self.side_rows = 0             # side-table rows queued
        self.dropped_side_rows = 0     # rows of events without a table
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
        self._open_rows = {}    # record idx -> rows of its open (streamed) snapshot
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
        self._reader = None        # TraceReadBuffer of read_from (made at its first call)
        self._read_sizes = (read_buffer, max_line)
        #: feed() left a partial last line in the parser (read_from then feeds bytes)
        self._parser_partial = False

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
            if isinstance(chunk, SnapshotPiece):
                n += self._append_piece(key, chunk, source)
                continue
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

    def _append_piece(self, key, piece, source):
        """A piece of a snapshot too big to hold (SnapshotPiece): its rows go to the
        archive at once, its row is written when it ends; a dropped one is taken back.
        Returns the change of the regions appended."""
        parser = self.damos_parser if source is not None else self.parser
        idx = self._record_idx(key, parser.records[key], source)
        if piece.kind == "rows":
            if idx < 0:
                self.dropped_regions += piece.nr_rows
                return 0
            self.writer.append_piece(idx, piece)
            self._open_rows[idx] = self._open_rows.get(idx, 0) + piece.nr_rows
            self.dirty = True
            return piece.nr_rows
        if idx < 0:
            return 0
        rows = self._open_rows.pop(idx, 0)
        if piece.kind == "drop":
            self.writer.append_piece(idx, piece)
            return -rows
        self.writer.append_piece(idx, piece)
        e = self._ends.get(idx)
        if e is None:
            self._ends[idx] = [piece.end_ns, piece.end_ns, 1]
        else:
            e[1] = piece.end_ns
            e[2] += 1
        self.snapshots_out += 1
        self.dirty = True
        return 0

    def feed(self, data):
        """Parse ``data`` (bytes); append completed snapshots; return regions appended."""
        if not data:
            return 0
        self._note_input(data, 0, len(data))
        rest = self._reader.take_rest() if self._reader is not None else b""
        return self._parse_bytes(rest + data if rest else data)

    def _parse_bytes(self, data):
        """Parse ``data`` (bytes, the continuation of the text parsed so far)."""
        if self.damos_parser is not None:
            n = self._feed_split(data)
        else:
            n = self._append(self.parser.feed(data))
            self._parser_partial = data[-1:] != b"\n"
        self._take_side_rows()
        return n

    def _note_input(self, src, lo, hi):
        """Count the new text ``src[lo:hi]`` (bytes or the read buffer; nothing copied
        unless it holds a [LOST N EVENTS] line) and its lost events."""
        self.bytes_in += hi - lo
        # memchr for an "L" first: a substring search over every piece costs as much as
        # tokenizing it (0.18 s per 400 MB), and trace text rarely holds an "L"
        first_l = src.find(b"L", lo, hi)
        head = bytes(src[lo:min(hi, lo + 8)])
        if (first_l >= 0 and src.find(b"LOST", first_l, hi) >= 0) \
                or b"LOST" in self._lost_tail + head:
            self._count_lost(bytes(src[lo:hi]))
        # the last 32 bytes of all the text so far (a piece may be shorter)
        self._lost_tail = (self._lost_tail + bytes(src[max(lo, hi - 32):hi]))[-32:]

    def read_from(self, fd, limit=READ_LIMIT):
        """Read what the non-blocking ``fd`` has now, up to about ``limit`` bytes (until
        EAGAIN or EOF), and parse it where it was read: into a reused buffer whose front
        holds the partial last line of the previous read (no bytes object per read, no
        join, no copy of the text: issue 16). Returns (regions appended, bytes read,
        eof). tracefs' trace_pipe returns at most a page per read(), pipes up to 64 KiB,
        a file what fits."""
        rb = self._reader
        if rb is None:
            rb = self._reader = TraceReadBuffer(*self._read_sizes)
        regions = total = 0
        eof = False
        while total < limit:
            if rb.full:
                regions += self._parse_read_buffer(rb)
                if rb.full:
                    rb.grow(self._next_line())
            n = _read_now(rb.read, fd)
            if n is None:
                break
            if n == 0:
                eof = True
                break
            self._note_input(rb.data, rb.filled - n, rb.filled)
            total += n
        if rb.unparsed:
            regions += self._parse_read_buffer(rb)
        return regions, total, eof

    def _next_line(self):
        """Number of the line after the lines parsed so far (for errors), or None."""
        st = getattr(self.parser, "state", None)
        line_no = getattr(st, "line_no", None)
        return None if line_no is None or self.damos_parser is not None else line_no + 1

    def _parse_read_buffer(self, rb):
        """Parse the complete lines of the read buffer in place; keep the rest at its
        front. Returns regions appended."""
        if self.damos_parser is not None:
            # damos_before_apply lines go to their own parser: the rare case, copied
            cut = rb.data.rfind(b"\n", 0, rb.filled) + 1
            n = self._feed_split(bytes(rb.data[:cut])) if cut else 0
        elif self._parser_partial or not hasattr(self.parser, "feed_window"):
            # after feed() left a partial line, or a parser without windows
            n, cut = self._parse_bytes(bytes(rb.data[:rb.filled])), rb.filled
        else:
            with rb.window() as window:
                items = self.parser.feed_window(window)
            cut = self.parser.last_consumed
            n = self._append(items)
        self._take_side_rows()
        rb.consume(cut)
        return n

    def _take_side_rows(self):
        """Queue the parsers' rows of DAMON events that are not regions."""
        from damo_pipe.archive.sidetables import append_trace_event_rows
        for p in (self.parser, self.damos_parser):
            take = getattr(p, "take_side_rows", None)
            rows = take() if take is not None else None
            if not rows:
                continue
            if self.side_tables is None:
                self.side_tables = {}
            missing = [t for t in rows if t not in self.side_tables]
            if missing:
                try:
                    self.side_tables.update(open_side_tables(self.writer, missing))
                except Exception as e:  # noqa: BLE001 - SWMR writers refuse late tables
                    log.warning("trace events %s not recorded: %s", ", ".join(missing), e)
                    for t in missing:
                        self.side_tables[t] = None
            tables = {k: v for k, v in self.side_tables.items() if v is not None}
            dropped = append_trace_event_rows(tables, rows)
            total = sum(len(next(iter(c.values()))) for c in rows.values())
            self.side_rows += total - dropped
            self.dropped_side_rows += dropped
            if total - dropped:
                self.dirty = True

    def unknown_events(self):
        """(count, first (line, text) or None) of unknown DAMON event lines, all parsers."""
        count, first = 0, None
        for p in (self.parser, self.damos_parser):
            fn = getattr(p, "unknown_events", None)
            if fn is None:
                continue
            c, f = fn()
            count += c
            if first is None:
                first = f
        return count, first

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
        rest = self._reader.take_rest() if self._reader is not None else b""
        if rest:
            # the unterminated last line read by read_from: the parsers' finish reads it
            n += self._parse_bytes(rest)
        if self.damos_parser is not None:
            n += self._feed_split(b"", final=True)
            n += self._append(self.damos_parser.finish() or [], DAMOS_EVENT)
        n += self._append(self.parser.finish() or [])
        self._take_side_rows()
        for idx, value in self.first_starts().items():
            self.writer.set_first_start(idx, value)
        self._flush()
        return n

    def _flush(self):
        self.writer.flush()
        self.dirty = False
        self.flushes += 1
        self.flushed_snapshots = self.snapshots_out


#: trace event -> the side table its rows go to (formats.trace_events)
def side_tables_of_events(events):
    """Names of the side tables the DAMON events ``events`` fill."""
    from damo_pipe.formats.trace_events import SIDE_TABLES
    evs = set(events)
    return [name for name, (ev, _) in SIDE_TABLES.items() if ev in evs]


def open_side_tables(writer, names):
    """The side tables ``names`` of the trace events in ``writer`` ({name: SideTable}).
    A live recording makes them before SWMR appending starts (with the records)."""
    from damo_pipe.archive.sidetables import add_trace_event_tables
    return add_trace_event_tables(writer, names)


class TraceReadBuffer:
    """:meth:`TraceStreamer.read_from`'s reused read buffer: ``data[:filled]`` is text
    read and not yet consumed (at the front the partial last line of the text parsed
    before, then what was read since); reads go into the free space after it, the parser
    scans :meth:`window` in place, :meth:`consume` moves the small rest to the front.
    Anything that outlives a parse must be copied out of the window: the next read
    overwrites it."""

    def __init__(self, size=READ_BUFFER, max_size=MAX_LINE):
        self.data = bytearray(size)
        self.max_size = max(size, max_size)
        self.filled = 0
        self.parsed = 0     # filled as of the last consume (nothing new read since)

    @property
    def full(self):
        return self.filled == len(self.data)

    @property
    def unparsed(self):
        """Whether bytes were read since the last parse."""
        return self.filled > self.parsed

    def read(self, fd):
        """One readv into the free space; returns the bytes read (0: EOF); raises what
        os.readv raises (BlockingIOError: nothing to read now)."""
        with memoryview(self.data) as view, view[self.filled:] as free:
            n = os.readv(fd, [free])
        self.filled += n
        return n

    def window(self):
        """The filled part as a memoryview (release it before the next read: use
        ``with``)."""
        return memoryview(self.data)[:self.filled]

    def consume(self, n):
        """Drop the first ``n`` filled bytes (parsed): the rest moves to the front."""
        rest = self.filled - n
        if n and rest:
            self.data[:rest] = self.data[n:self.filled]
        self.filled = self.parsed = rest

    def take_rest(self):
        """The filled bytes (the partial last line) as bytes; the buffer is emptied."""
        rest = bytes(self.data[:self.filled])
        self.filled = self.parsed = 0
        return rest

    def grow(self, line=None):
        """Double the buffer, full with one line that has no end yet; a line longer than
        ``max_size`` is a RecordFormatError (``line``: its number)."""
        if len(self.data) >= self.max_size:
            raise RecordFormatError("a trace line longer than %d bytes (no newline in the "
                                    "trace text)" % self.max_size, line=line)
        bigger = bytearray(min(self.max_size, 2 * len(self.data)))
        bigger[:self.filled] = self.data
        self.data = bigger


def _read_now(read, fd):
    """``read(fd)``'s byte count (0 at end of file), retried when a signal interrupts
    it; None when the non-blocking ``fd`` has nothing now."""
    while True:
        try:
            return read(fd)
        except BlockingIOError:
            return None
        except InterruptedError:
            continue


def read_available(fd, buf, limit=READ_CHUNK * 8):
    """Read what ``fd`` (non-blocking) has now, up to ``limit`` bytes.

    Returns (data, eof). tracefs' trace_pipe returns at most a page per read(); pipes
    up to 64 KiB, so we loop until EAGAIN or the limit. (The tracer reads with
    :meth:`TraceStreamer.read_from`, which copies nothing.)
    """
    parts = []
    total = 0
    eof = False
    view = memoryview(buf)
    while total < limit:
        n = _read_now(lambda fd: os.readv(fd, [view]), fd)
        if n is None:
            break
        if n == 0:
            eof = True
            break
        parts.append(bytes(view[:n]))
        total += n
    return b"".join(parts), eof
