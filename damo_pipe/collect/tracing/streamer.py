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
    incomplete snapshot is dropped, counted and reported (TraceStreamParser), with the
    rows of open snapshots held without copies (:func:`_hold_open_rows`)."""
    from damo_pipe.formats.trace_text import TraceStreamParser
    return _hold_open_rows(TraceStreamParser(lenient=True))


class _OpenRows:
    """The parser's scanner, wrapped so that the rows of open snapshots are held here
    without copies, in the one place each will have in the chunk.

    ``TraceStreamParser`` joins the rows of open snapshots with every new piece of
    input (``_concat_rows``), so that a snapshot of N regions read in 1 MiB pieces
    costs O(N**2 / piece) copies (a 3M-region snapshot took 9 s, a 30M one hours), and
    holds 64 bytes a region.  Here, while exactly one snapshot is open and its rows
    come in one run (one target: the kernel writes a snapshot's lines together), they
    go straight into its four region columns, allocated at its ``nr_regions`` (the
    pages are touched as rows arrive: 32 bytes a region), and the parser sees none of
    them; when it completes, the parser gets them as they are (views, and one-value
    broadcasts for snapshot id, record, nr_regions and end time: the end time of its
    first line, the only one rows_to_batch reads), then the rows that
    followed in the same piece at the next call (or at once when the input ends).
    Anything else (several open snapshots, damage, a dropped snapshot, the end of the
    input) gives the parser every row, held ones first, as before this wrapper:
    rows, their order and errors are unchanged.
    """

    #: a snapshot is held only when its nr_regions is below this (a garbled count
    #: must not allocate the impossible)
    MAX_HELD = 1 << 32
    #: the columns of snapshots this big are kept for the next one
    SPARE_MIN = 1 << 16
    REGION_FIELDS = ("start", "end", "nr_accesses", "age")
    CONST_FIELDS = ("end_ns", "nr_regions", "sid", "rec")

    def __init__(self, parser):
        from damo_pipe.formats.trace_text import ROW_FIELDS
        self.parser = parser
        self.scan = parser._scan
        self.fields = ROW_FIELDS
        self.held = None        # {"const": {field: value}, "cols": {field: array}, "n": rows}
        self.rest = None        # rows scanned after a held snapshot completed, not yet given
        self.rows_held = 0
        #: the columns of the last held snapshot, reused by the next one when nothing
        #: refers to them any more (the archive wrote them): its pages are not faulted
        #: and zeroed again (first-touch page faults were ~25 % of the cycles of a
        #: 30M-region snapshot, these 960 MB a large part of them)
        self.spare = None

    # -- helpers -----------------------------------------------------------------------
    def _held_rows(self):
        import numpy as np
        h = self.held
        n = h["n"]
        rows = {f: h["cols"][f][:n] for f in self.REGION_FIELDS}
        if n >= self.SPARE_MIN:
            self.spare = h["base"]
        for f in self.CONST_FIELDS:
            rows[f] = np.broadcast_to(np.asarray(h["const"][f], np.int64), (n,))
        self.held = None
        self.rows_held = 0
        return rows

    def _put(self, rows, lo, hi):
        """Append rows[lo:hi] (all of the held snapshot) to the held columns."""
        h = self.held
        n = h["n"]
        k = hi - lo
        for f in self.REGION_FIELDS:
            h["cols"][f][n:n + k] = rows[f][lo:hi]
        h["n"] = n + k
        self.rows_held = n + k

    def _give_all(self, rows):
        """Every held row, then ``rows`` (the parser's usual path)."""
        from damo_pipe.formats.trace_text import _concat_rows
        if self.held is not None:
            rows = _concat_rows(self._held_rows(), rows)
        return rows

    def _empty(self, rows):
        return {f: rows[f][:0] for f in self.fields}

    # -- the scanner -----------------------------------------------------------------
    def __call__(self, data, st, final, path=None):
        from damo_pipe.formats.trace_text import _concat_rows
        consumed, rows = self.scan(data, st, final, path)
        if self.rest is not None:
            rows = _concat_rows(self.rest, rows)
            self.rest = None
        if final or st.dropped_sids:
            return consumed, self._give_all(rows)
        sid = rows["sid"]
        n = len(sid)
        opens = st.open_sids()
        h = self.held
        if h is not None:
            o = h["const"]["sid"]
            if n == 0:
                return consumed, self._empty(rows)
            # the leading run of the held snapshot's rows
            other = (sid != o).nonzero()[0]
            k = int(other[0]) if len(other) else n
            if k + len(other) != n or h["n"] + k > len(h["cols"]["start"]):
                return consumed, self._give_all(rows)     # interleaved: the usual path
            self._put(rows, 0, k)
            if o in opens:
                return consumed, self._empty(rows)
            if k < n:
                self.rest = {f: rows[f][k:] for f in self.fields}
            return consumed, self._held_rows()
        # nothing held: hold the trailing run of the one open snapshot's rows
        if len(opens) != 1 or n == 0 or sid[-1] != opens[0]:
            return consumed, rows
        o = opens[0]
        carry = self.parser._carry
        if carry is not None and len(carry["sid"]) and not (carry["sid"] == o).all():
            return consumed, rows
        other = (sid != o).nonzero()[0]
        k = int(other[-1]) + 1 if len(other) else 0
        if len(other) != k:        # rows of the open snapshot before others: usual path
            return consumed, rows
        nr = int(rows["nr_regions"][-1])
        if not 0 < nr < self.MAX_HELD:
            return consumed, rows
        self._hold(rows, k, n, carry, nr, o)
        return consumed, {f: rows[f][:k] for f in self.fields}

    def _columns(self, nr, rows):
        """(arrays, four empty region columns of nr rows: views of them): the spare
        arrays when they are free (no view of them is alive: a view refers to its base
        array, so only ``spare`` and this loop do) and fit."""
        import sys

        import numpy as np
        spare, self.spare = self.spare, None
        if spare is not None:
            ok = True
            for f in self.REGION_FIELDS:
                a = spare[f]
                # references: the dict, ``a``, getrefcount's argument
                if not (nr <= len(a) <= 2 * nr and a.dtype == rows[f].dtype
                        and sys.getrefcount(a) <= 3):
                    ok = False
                    break
            a = None
            if ok:
                return spare, {f: spare[f][:nr] for f in self.REGION_FIELDS}
        base = {f: np.empty(nr, rows[f].dtype) for f in self.REGION_FIELDS}
        return base, {f: base[f][:nr] for f in self.REGION_FIELDS}

    def _hold(self, rows, k, n, carry, nr, o):
        first = carry if carry is not None and len(carry["sid"]) else \
            {f: rows[f][k:] for f in ("end_ns",)}
        # end_ns: the snapshot's (its first line's, as rows_to_batch takes it)
        self.held = {"const": {"sid": o, "rec": int(rows["rec"][-1]),
                               "end_ns": int(first["end_ns"][0]), "nr_regions": nr},
                     "n": 0}
        self.held["base"], self.held["cols"] = self._columns(nr, rows)
        if carry is not None and len(carry["sid"]):
            self._put(carry, 0, len(carry["sid"]))
        self.parser._carry = None
        self._put(rows, k, n)


def _hold_open_rows(parser):
    """``parser`` (a TraceStreamParser) with its open snapshots' rows held by
    :class:`_OpenRows` (a parser without the private hooks is returned as is)."""
    if getattr(parser, "_scan", None) is None or not hasattr(parser, "_carry"):
        return parser
    parser._scan = _OpenRows(parser)
    return parser


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
                 clock=time.monotonic, damos_parser=None, side_tables=None):
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
        # memchr for an "L" first: a substring search over every piece costs as much as
        # tokenizing it (0.18 s per 400 MB), and trace text rarely holds an "L"
        first_l = data.find(b"L")
        if (first_l >= 0 and data.find(b"LOST", first_l) >= 0) \
                or b"LOST" in self._lost_tail + data[:8]:
            self._count_lost(data)
        self._lost_tail = data[-32:]
        if self.damos_parser is not None:
            n = self._feed_split(data)
        else:
            n = self._append(self.parser.feed(data))
        self._take_side_rows()
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
