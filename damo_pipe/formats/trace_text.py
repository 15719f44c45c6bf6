"""Trace text readers: ``perf script`` output, ``trace-cmd report`` text (with or
without the latency column), raw tracefs ``trace_pipe`` text, and perf.data (through
``perf script``).  FORMATS.md §4.

Two engines share one grammar:

* ``python`` — the reference: one line at a time with ``bytes.split()``;
* ``cython`` — :func:`damo_pipe.formats._trace_kernels.trace_scan`, one pass over the
  bytes with no Python object per line.

Both turn event lines into *rows* (end time, target, nr_regions, region, snapshot id,
record index) with the same per-target grouping state machine, then
:func:`rows_to_batch` groups rows into snapshots and :class:`ChunkAssembler` applies
damo's start deduction and fake-snapshot removal.

Line grammar (damo 3.x normalisation): ``tokens = line.split()``; lines with < 4 tokens
are skipped; ``ts_idx = 2 if tokens[2].endswith(':') else 3``; the event is
``tokens[ts_idx+1][:-1]`` without a ``damon:`` prefix; ``fields = tokens[ts_idx+2:]``.
``damon_aggregated`` takes 5 fields (4 = no age), ``damos_before_apply`` 7
(target := target_idx); the other DAMON events (``damos_esz``,
``damos_stat_after_apply_interval``, ``damon_monitor_intervals_tune``,
``damon_region_aggregated``) become side-table rows (:mod:`.trace_events`), lines of
DAMON events we do not know are counted and named in one warning, everything else is
ignored.  Timestamps are
``int(float(ts) * 1e9)``.  Deviations from damo (see docs/compat.md): lines
without an event token (``CPU 1 is empty``) are skipped instead of crashing; an age
written as ``None`` (damo's own perf_script writer) reads as unknown; each target has
its own open snapshot (damo has one global flag, which misgroups interleaved targets).
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import numpy as np

from damo_pipe import perf_tool as _perf_tool
from damo_pipe._engine import select_engine
from damo_pipe.errors import RecordFormatError
from damo_pipe.formats._assemble import ChunkAssembler, SnapBatch, collect_records
from damo_pipe.formats._trace_state import TraceState
from damo_pipe.formats.perf_data_header import check_perf_data_header
from damo_pipe.model import AGE_UNKNOWN, Record

log = logging.getLogger(__name__)

U64_MAX = (1 << 64) - 1
I64_MAX = (1 << 63) - 1
_TS_RE = re.compile(rb"\A(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
_UINT_RE = re.compile(rb"\A[0-9]+\Z")
_INT_RE = re.compile(rb"\A-?[0-9]+\Z")

#: rows produced per engine call, as numpy arrays (all the same length)
ROW_FIELDS = ("end_ns", "nr_regions", "start", "end", "nr_accesses", "age", "sid", "rec")

# bytes read per step when streaming a file
READ_CHUNK = 4 << 20


def _bad(msg, path, line):
    return RecordFormatError(msg, path=path, line=line)


def _parse_uint(tok, what, path, line):
    if not _UINT_RE.match(tok):
        raise _bad("bad %s %r" % (what, tok.decode("latin-1")), path, line)
    v = int(tok)
    if v > U64_MAX:
        raise _bad("%s %s out of range" % (what, v), path, line)
    return v


def _parse_int(tok, what, path, line):
    if not _INT_RE.match(tok):
        raise _bad("bad %s %r" % (what, tok.decode("latin-1")), path, line)
    v = int(tok)
    if not -I64_MAX - 1 <= v <= I64_MAX:
        raise _bad("%s %s out of range" % (what, v), path, line)
    return v


def _after_eq(tok, what, path, line):
    i = tok.find(b"=")
    if i < 0:
        raise _bad("bad %s field %r" % (what, tok.decode("latin-1")), path, line)
    return tok[i + 1:]


def _parse_event_line(raw, line, path, st=None):
    """(target id, end_ns, nr_regions, start, end, nr_accesses, age, has age field, is
    damos_before_apply) of a DAMON region event line; None for any other line (the other DAMON events go to
    ``st.side_event``: side tables, unknown ones counted); RecordFormatError for a
    damaged event line."""
    toks = raw.split()
    if len(toks) < 4:
        return None
    ts_idx = 2 if toks[2].endswith(b":") else 3
    if len(toks) <= ts_idx + 1:
        return None  # e.g. trace-cmd's "CPU 1 is empty" (damo: IndexError)
    ev = toks[ts_idx + 1][:-1]
    had_prefix = ev.startswith(b"damon:")
    if had_prefix:
        ev = ev[6:]
    fields = toks[ts_idx + 2:]
    nf = len(fields)
    if ev == b"damon_aggregated":
        if nf not in (4, 5):
            raise _bad("damon_aggregated line with %d fields (expected 4 or 5)" % nf,
                       path, line)
        tidt, nrt, rng, acct = fields[0], fields[1], fields[2], fields[3]
        aget = fields[4] if nf == 5 else None
    elif ev == b"damos_before_apply":
        if nf != 7:
            raise _bad("damos_before_apply line with %d fields (expected 7)" % nf, path, line)
        tidt, nrt, rng, acct, aget = fields[2], fields[3], fields[4], fields[5], fields[6]
    else:
        if st is not None:
            st.side_event(line, raw, ev, had_prefix, toks[ts_idx][:-1], fields, path)
        return None
    tst = toks[ts_idx][:-1]
    if not _TS_RE.match(tst):
        raise _bad("bad timestamp %r" % tst.decode("latin-1"), path, line)
    d = float(tst) * 1e9
    if not d < 9223372036854775808.0:    # also inf (a very long digit string)
        raise _bad("timestamp %s out of range" % tst.decode("latin-1"), path, line)
    end_ns = int(d)
    tid = _parse_uint(_after_eq(tidt, "target", path, line), "target id", path, line)
    nr = _parse_uint(_after_eq(nrt, "nr_regions", path, line), "nr_regions", path, line)
    if nr > I64_MAX:
        raise _bad("nr_regions %d out of range" % nr, path, line)
    rng = rng[:-1]
    dash = rng.find(b"-")
    if dash < 0:
        raise _bad("bad address range %r" % rng.decode("latin-1"), path, line)
    start = _parse_uint(rng[:dash], "region start", path, line)
    end = _parse_uint(rng[dash + 1:], "region end", path, line)
    acc = _parse_int(acct, "nr_accesses", path, line)
    if aget is None or aget == b"None":
        age = AGE_UNKNOWN
    else:
        age = _parse_int(aget, "age", path, line)
    return tid, end_ns, nr, start, end, acc, age, aget is not None, nf == 7


def py_trace_scan(data: bytes, st: TraceState, final: bool, path=None):
    """Reference engine: parse complete lines of ``data``; return (consumed, rows dict).

    Only whole lines are consumed unless ``final`` (then a last unterminated line is
    parsed too).  Lines are grouped with ``st`` (:meth:`TraceState.add_line`); damaged
    event lines raise RecordFormatError, or are counted in ``st`` when it is lenient.
    """
    cols = {f: [] for f in ROW_FIELDS}
    if not isinstance(data, bytes):
        data = bytes(data)
    if final:
        body = data
    else:
        cut = data.rfind(b"\n")
        body = data[:cut + 1] if cut >= 0 else b""
    consumed = len(body)
    lines = body.split(b"\n")
    if body.endswith(b"\n") or not body:
        lines.pop()
    base = st.line_no
    lenient = st.lenient
    for li, raw in enumerate(lines):
        line = base + li + 1
        try:
            ev = _parse_event_line(raw, line, path, st)
        except RecordFormatError:
            if not lenient:
                raise
            st.damaged(line)
            continue
        if ev is None:
            continue
        tid, end_ns, nr, start, end, acc, age, has_age, before_apply = ev
        got = st.add_line(line, tid, end_ns, nr, start, end, has_age, path)
        if before_apply:
            # every field of it (ctx_idx, scheme_idx too) also goes to a side table
            st.side_line(line, raw, path)
        if got is None:
            continue
        sid, r = got
        for f, v in zip(ROW_FIELDS, (end_ns, nr, start, end, acc, age, sid, r)):
            cols[f].append(v)
    st.line_no = base + len(lines)
    rows = {
        "end_ns": np.array(cols["end_ns"], np.int64),
        "nr_regions": np.array(cols["nr_regions"], np.int64),
        "start": np.array(cols["start"], np.uint64),
        "end": np.array(cols["end"], np.uint64),
        "nr_accesses": np.array(cols["nr_accesses"], np.int64),
        "age": np.array(cols["age"], np.int64),
        "sid": np.array(cols["sid"], np.int64),
        "rec": np.array(cols["rec"], np.int64),
    }
    return consumed, rows


KERNELS = "damo_pipe.formats._trace_kernels"


def _engine_scan(engine):
    """The line scanner of ``engine``: the compiled kernel or :func:`py_trace_scan`."""
    kernels = select_engine(engine, KERNELS)
    return py_trace_scan if kernels is None else kernels.trace_scan


def _concat_rows(a, b):
    if a is None or len(a["sid"]) == 0:
        return b
    if len(b["sid"]) == 0:
        return a
    return {f: np.concatenate([a[f], b[f]]) for f in ROW_FIELDS}


def _concat_pieces(parts):
    """Row dicts ``parts`` joined (one copy)."""
    parts = [p for p in parts if len(p["sid"])] or parts[:1]
    if len(parts) == 1:
        return parts[0]
    return {f: np.concatenate([p[f] for p in parts]) for f in ROW_FIELDS}


def _take_rows(rows, idx):
    return {f: rows[f][idx] for f in ROW_FIELDS}


def drop_rows(rows, sids):
    """``rows`` without the rows of snapshot ids ``sids`` (dropped snapshots; -1: rows
    of skipped lines)."""
    keep = ~np.isin(rows["sid"], np.asarray(sids, np.int64))
    if keep.all():
        return rows
    return _take_rows(rows, np.nonzero(keep)[0])


def rows_to_batch(rows, open_sids):
    """Group rows into completed snapshots; return (SnapBatch, carry rows of open ones)."""
    sid = rows["sid"]
    n = len(sid)
    if n == 0:
        return None, rows
    if n > 1 and not np.all(sid[1:] >= sid[:-1]):
        order = np.argsort(sid, kind="stable")
        rows = _take_rows(rows, order)
        sid = rows["sid"]
    carry = None
    if open_sids:
        opens = np.asarray(sorted(open_sids), np.int64)
        cut = int(np.searchsorted(sid, opens[0], side="left"))
        tail = sid[cut:]
        if len(tail) == 0:
            pass
        elif np.isin(tail, opens).all():
            # common case: the open snapshots are the newest ones -> slices, no copy
            carry = {f: rows[f][cut:] for f in ROW_FIELDS}
            rows = {f: rows[f][:cut] for f in ROW_FIELDS}
            sid = rows["sid"]
        else:
            is_open = np.isin(sid, opens)
            carry = _take_rows(rows, np.nonzero(is_open)[0])
            rows = _take_rows(rows, np.nonzero(~is_open)[0])
            sid = rows["sid"]
    if len(sid) == 0:
        return None, carry
    firsts = np.nonzero(np.concatenate(([True], sid[1:] != sid[:-1])))[0]
    counts = np.diff(np.append(firsts, len(sid)))
    batch = SnapBatch(rec_idx=rows["rec"][firsts], end_ns=rows["end_ns"][firsts],
                      nr_regions=counts.astype(np.int64), start=rows["start"],
                      end=rows["end"], nr_accesses=rows["nr_accesses"], age=rows["age"])
    return batch, carry


class SnapshotPiece:
    """What a :class:`TraceStreamParser` with ``open_regions`` hands out for a snapshot
    too big to hold (a page-granularity snapshot of tens of millions of regions): its
    regions in pieces while it is still open, then its end, or its drop.

    ``kind``: ``"rows"`` (``regions``: the next region rows of the open snapshot, in
    order), ``"end"`` (the snapshot is complete: ``start_ns``, ``end_ns``,
    ``nr_regions``), ``"drop"`` (lenient reading dropped it as incomplete: the rows handed
    out for it are void).  ``end_ns`` and ``nr_regions`` (the count its lines state) are
    set on every piece.  :meth:`damo_pipe.archive.ArchiveWriter.append_open`,
    ``end_open`` and ``drop_open`` take them.
    """

    __slots__ = ("kind", "regions", "start_ns", "end_ns", "nr_regions")

    def __init__(self, kind, end_ns, nr_regions, regions=None, start_ns=None):
        self.kind = kind
        self.regions = regions
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.nr_regions = nr_regions

    @property
    def nr_rows(self):
        return 0 if self.regions is None else len(self.regions)

    def __repr__(self):
        return "SnapshotPiece(%s, end_ns=%d, nr_regions=%d, rows=%d)" % (
            self.kind, self.end_ns, self.nr_regions, self.nr_rows)


_REGION_ROW_FIELDS = ("start", "end", "nr_accesses", "age")


class _BufferPool:
    """Column buffer sets of streamed pieces, used again once nothing references them
    any more: a piece's consumer may keep its arrays (or views of them, e.g. the
    archive writer's chunks being compressed) as long as it likes, and a set is only
    refilled when its arrays' reference counts show that every such holder let go.
    Fresh buffers for every piece cost a page fault per 4 KiB (~6 % of a
    page-granularity ingest)."""

    MAX_SPARE = 4

    def __init__(self):
        self._spare = []
        # the count of an array that only its set holds, taken the way take() takes it
        # (interpreters differ in the references their own stack holds)
        probe = {"start": np.empty(1)}
        self._alone = _refcount(probe, "start")

    def take(self, capacity, dtypes):
        for k, cols in enumerate(self._spare):
            if len(cols["start"]) == capacity and all(
                    cols[f].dtype == dtypes[f] and _refcount(cols, f) <= self._alone
                    for f in cols):
                del self._spare[k]
                return cols
        return {f: np.empty(capacity, dtypes[f]) for f in _REGION_ROW_FIELDS}

    def give(self, cols):
        self._spare.append(cols)
        if len(self._spare) > self.MAX_SPARE:
            del self._spare[0]


def _refcount(cols, name):
    """The reference count of buffer ``cols[name]``: a view of it or any other name for
    it adds one."""
    return sys.getrefcount(cols[name])


class _Stream:
    """A snapshot whose rows the parser streams: its region fields are copied into
    column buffers of ``capacity`` rows, handed out as a "rows" piece when full (the
    scanner's row arrays are then freed at once: kept, they would cost fresh memory and
    page faults for every piece of text). The buffers come from the parser's
    :class:`_BufferPool`."""

    __slots__ = ("rec", "end_ns", "nr_regions", "capacity", "cols", "fill", "pool")

    def __init__(self, rec, end_ns, nr_regions, capacity, pool=None):
        self.rec = rec
        self.end_ns = end_ns
        self.nr_regions = nr_regions
        self.capacity = max(1, int(capacity))
        self.cols = None
        self.fill = 0
        self.pool = _BufferPool() if pool is None else pool

    def add(self, rows, out):
        """Copy the region fields of row dict ``rows``; full buffers go to ``out``."""
        n = len(rows["sid"])
        i = 0
        while i < n:
            if self.cols is None:
                self.cols = self.pool.take(self.capacity,
                                           {f: rows[f].dtype for f in _REGION_ROW_FIELDS})
                self.fill = 0
            k = min(n - i, self.capacity - self.fill)
            for f in _REGION_ROW_FIELDS:
                self.cols[f][self.fill:self.fill + k] = rows[f][i:i + k]
            self.fill += k
            i += k
            if self.fill == self.capacity:
                self.hand_out(out)

    def hand_out(self, out):
        """The buffered rows (if any) as a "rows" piece into ``out``."""
        if self.cols is None or not self.fill:
            return
        from damo_pipe.model import RegionColumns
        c = {f: v[:self.fill] for f, v in self.cols.items()}
        out.append((self.rec, SnapshotPiece(
            "rows", self.end_ns, self.nr_regions,
            regions=RegionColumns(c["start"], c["end"], c["nr_accesses"], c["age"]))))
        self.pool.give(self.cols)
        self.cols, self.fill = None, 0

    @property
    def pending_rows(self):
        return self.fill


def _split_sid(rows, s):
    """(rows of snapshot ``s``, the other rows); slices when they lead the rows."""
    sid = rows["sid"]
    n = len(sid)
    if n and sid[0] == s:
        other = (sid != s).nonzero()[0]
        k = int(other[0]) if len(other) else n
        if len(other) == n - k:
            return ({f: rows[f][:k] for f in ROW_FIELDS},
                    {f: rows[f][k:] for f in ROW_FIELDS})
    mask = sid == s
    if not mask.any():
        return None, rows
    return _take_rows(rows, mask.nonzero()[0]), _take_rows(rows, (~mask).nonzero()[0])


class TraceStreamParser:
    """Incremental trace-text parser for live capture (``trace_pipe``, ``perf script``).

    Usage::

        p = TraceStreamParser()
        for data in pipe:                      # any byte chunks, split anywhere
            for key, chunk in p.feed(data):
                ...                            # key: record index (0, 1, ... in order
                                               # of first appearance); p.records[key] is
                                               # the record's metadata (target_id)
        for key, chunk in p.finish():          # held-back data
            ...
        p.first_starts                         # {key: exact float start of snapshot 0}

    Each chunk is a :class:`~damo_pipe.model.Record` holding consecutive *completed*
    snapshots of one record (region offsets relative to the chunk).  Snapshot k>0
    starts where k-1 ended; the first snapshot of a record carries ``start = end`` as a
    placeholder until ``finish()`` reports the deduced start in ``first_starts`` (apply
    it with ``ArchiveWriter.set_first_start``).  ``chunk_regions`` > 0 batches output
    until that many regions of a record are pending (0 = emit on every feed).

    The rows of open snapshots are kept as the pieces they came in and joined once, when
    a snapshot completes: a snapshot of N regions costs O(N) whatever the pieces.
    ``open_regions`` > 0 bounds what is held: once the open snapshots hold that many
    rows, they are *streamed*: their rows are handed out as :class:`SnapshotPiece`
    items (in pieces of ``open_regions`` rows, the last one fewer) in place of a chunk, then an
    ``"end"`` (or ``"drop"``) piece; the record's earlier snapshots are handed out
    first.  Only callers that take SnapshotPieces pass it (the live tracer, convert).

    Damage (a lost, added or garbled line, an input that ends inside a snapshot; see
    :mod:`damo_pipe.formats._trace_state`) raises :class:`RecordFormatError` with the
    line number.  ``lenient=True`` instead drops incomplete snapshots and skips
    damaged lines, counts them in ``state`` (``dropped_snapshots``, ``dropped_lines``,
    ``damaged_lines``; :meth:`damage_message`) and logs one warning at ``finish()``:
    what a live collector wants, since one lost or garbled kernel line must not end
    the recording.
    """

    def __init__(self, *, engine="auto", path=None, chunk_regions=0, intervals=None,
                 lenient=False, open_regions=0):
        self._scan = _engine_scan(engine)
        #: the compiled scanner may hand out views of its scratch rows (see _process)
        self._scan_views = self._scan is not py_trace_scan
        self.path = path
        self.state = TraceState(lenient)
        self.records = []          # metadata Records, by key
        self.intervals = intervals
        self.open_regions = int(open_regions or 0)
        self._asm = ChunkAssembler(self.records, chunk_regions)
        self._buf = b""
        self._carry = []           # rows of open snapshots: the pieces they came in
        self._carry_rows = 0
        self._streams = {}         # snapshot id -> _Stream (open_regions)
        self._buffers = _BufferPool()
        self.first_starts = {}
        self._finished = False
        self.last_consumed = 0

    def _sync_metas(self):
        for tid in self.state.targets[len(self.records):]:
            self.records.append(Record(target_id=tid, intervals=self.intervals))

    @property
    def lenient(self):
        return self.state.lenient

    @property
    def held_rows(self):
        """Rows of open snapshots held here (carried or pending in a stream)."""
        return self._carry_rows + sum(s.pending_rows for s in self._streams.values())

    def damage_message(self):
        """What lenient reading dropped so far (one line), or None."""
        return self.state.damage_message()

    def take_side_rows(self):
        """``{side table: {column: numpy array}}`` of the DAMON events that are not
        regions (``damos_stat_after_apply_interval``, ``damos_esz``,
        ``damon_monitor_intervals_tune``, ``damon_region_aggregated``; see
        :mod:`damo_pipe.formats.trace_events`) parsed since the last call."""
        return self.state.side.take()

    def unknown_message(self):
        """One line about the DAMON event lines of unknown events (counted, not read),
        or None."""
        return self.state.unknown_message()

    def unknown_events(self):
        """(count, (first line, its text) or None) of the unknown DAMON event lines."""
        return self.state.unknown_lines, self.state.first_unknown

    def _process(self, data, final):
        st = self.state
        if self._scan_views:
            consumed, rows = self._scan(data, st, final, self.path, True)
        else:
            consumed, rows = self._scan(data, st, final, self.path)
        self._sync_metas()
        if final:
            st.end_of_input(self.path)
        out = []
        if st.dropped_sids:
            dropped, st.dropped_sids = st.dropped_sids, []
            rows = drop_rows(rows, dropped)
            if self._carry:
                self._carry = [c for c in (drop_rows(c, dropped) for c in self._carry)
                               if len(c["sid"])]
                self._carry_rows = sum(len(c["sid"]) for c in self._carry)
            for s in dropped:
                stream = self._streams.pop(s, None)
                if stream is not None:
                    out.append((stream.rec, SnapshotPiece("drop", stream.end_ns,
                                                          stream.nr_regions)))
        opens = [] if final else st.open_sids()
        if self._streams:
            rows = self._stream_rows(rows, opens, out)
        if self._scan_views:
            # the rows kept below (carry, chunks) must not be the scanner's scratch rows,
            # which its next call overwrites; the streams copied theirs already
            rows = {f: v.copy() if v.base is not None else v for f, v in rows.items()}
        sid = rows["sid"]
        n = len(sid)
        batch = None
        if n and opens and (sid[0] == sid[-1] == opens[0] and len(opens) == 1
                            and bool((sid == opens[0]).all())
                            or len(opens) > 1 and bool(np.isin(sid, opens).all())):
            # no snapshot completed: keep the piece (joined when one does)
            self._carry.append(rows)
            self._carry_rows += n
        elif n or (final and self._carry):
            if self._carry:
                rows = _concat_pieces(self._carry + [rows])
            batch, carry = rows_to_batch(rows, opens)
            self._carry = [carry] if carry is not None and len(carry["sid"]) else []
            self._carry_rows = len(carry["sid"]) if self._carry else 0
        if batch is not None:
            out += self._asm.add(batch)
        if self.open_regions and self._carry_rows >= self.open_regions:
            self._start_streams(out)
        return consumed, out

    def _stream_rows(self, rows, opens, out):
        """Take the streamed snapshots' rows out of ``rows``; hand out their pieces (and
        ends) to ``out``; return the other rows."""
        for s, stream in list(self._streams.items()):
            mine, rows = _split_sid(rows, s)
            if mine is not None and len(mine["sid"]):
                stream.add(mine, out)
            if s not in opens:
                stream.hand_out(out)
                del self._streams[s]
                start = self._asm.end_stream(stream.rec, stream.end_ns)
                out.append((stream.rec, SnapshotPiece("end", stream.end_ns, stream.nr_regions,
                                                      start_ns=start)))
        return rows

    def _start_streams(self, out):
        """Stream every open snapshot of the carried rows (they hold ``open_regions``)."""
        rows = _concat_pieces(self._carry)
        self._carry, self._carry_rows = [], 0
        sid = rows["sid"]
        _, first = np.unique(sid, return_index=True)
        for i in sorted(first.tolist()):
            s = int(sid[i])
            mine, rows = _split_sid(rows, s)
            r = int(mine["rec"][0])
            ch = self._asm.flush_before_stream(r)
            if ch is not None:
                out.append((r, ch))
            stream = self._streams[s] = _Stream(r, int(mine["end_ns"][0]),
                                               int(mine["nr_regions"][0]), self.open_regions,
                                               self._buffers)
            stream.add(mine, out)

    def feed(self, data: bytes):
        """Consume bytes; return [(record key, Record chunk)] of completed snapshots."""
        if self._finished:
            raise ValueError("feed() after finish()")
        if self._buf:
            buf = self._buf + data
        else:
            buf = data
        consumed, out = self._process(buf, False)
        self._buf = bytes(buf[consumed:])
        if self._asm.chunk_regions == 0:
            out = self._drain(out)
        return out

    def feed_window(self, window, final=False):
        """Like feed() for a zero-copy window of a larger buffer: parses the complete
        lines of ``window`` (only valid when no partial line is pending) and sets
        ``last_consumed``; the caller passes the unconsumed rest again."""
        if self._buf:
            raise ValueError("feed_window() after feed() left a partial line")
        consumed, out = self._process(window, final)
        self.last_consumed = consumed
        if self._asm.chunk_regions == 0:
            out = self._drain(out)
        return out

    def _drain(self, out):
        have = {r for r, _ in out}
        for r in list(self._asm._pending):
            if r not in have:
                ch = self._asm._flush(r, final=False)
                if ch is not None:
                    out.append((r, ch))
        return out

    def finish(self, rest=b""):
        """Parse what is left (an unterminated last line, open snapshots); return chunks."""
        if self._finished:
            return []
        self._finished = True
        _, out = self._process(self._buf + bytes(rest) if rest else self._buf, True)
        self._buf = b""
        rest, self.first_starts = self._asm.finish()
        where = "" if self.path is None else "%s: " % self.path
        msg = self.state.damage_message()
        if msg is not None:
            log.warning("%s%s", where, msg)
        msg = self.state.unknown_message()
        if msg is not None and self.state.kept_lines > 0:
            # (without any snapshot, check_found's error says it instead of a warning)
            log.warning("%s%s", where, msg)
        return out + rest

    def check_found(self):
        """After ``finish()``: RecordFormatError unless the input held at least one
        snapshot (a text file without any DAMON event is no record)."""
        st = self.state
        if st.kept_lines > 0:
            return
        unknown = st.unknown_message()
        unknown = "" if unknown is None else "; " + unknown
        if st.events or st.damaged_lines:
            raise RecordFormatError("no complete snapshot (%s)%s" % (st.damage_message(),
                                                                     unknown), path=self.path)
        raise RecordFormatError("not a DAMON record: no damon_aggregated or "
                                "damos_before_apply trace event found%s" % unknown,
                                path=self.path)


def iter_trace_chunks(fileobj, *, path=None, chunk_regions=1 << 20, engine="auto",
                      intervals=None, read_size=READ_CHUNK, lenient=False,
                      require_record=True, open_regions=0):
    """Yield (rec_idx, chunk) from a binary file object.  The first item is
    ``(None, parser)`` so that the caller can reach ``parser.records`` and, after the
    iteration, ``parser.first_starts``.  Regular files are memory-mapped and scanned in
    windows of ``read_size`` bytes without copying; pipes are read.  ``lenient``: see
    :class:`TraceStreamParser`; ``require_record``: an input without any snapshot is a
    RecordFormatError (:meth:`TraceStreamParser.check_found`); ``open_regions``: huge
    snapshots come as :class:`SnapshotPiece` items (see TraceStreamParser)."""
    import mmap
    p = TraceStreamParser(engine=engine, path=path, chunk_regions=chunk_regions,
                          intervals=intervals, lenient=lenient, open_regions=open_regions)
    yield None, p
    mm = None
    try:
        fd = fileobj.fileno()
        if os.path.isfile(getattr(fileobj, "name", "") or "") or _is_regular(fd):
            size = os.fstat(fd).st_size
            if size:
                mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, AttributeError, TypeError):
        mm = None
    if mm is not None:
        try:
            mv = memoryview(mm)
            from damo_pipe.formats._mm import PageReleaser
            rel = PageReleaser(mm)
            try:
                pos, n = 0, len(mv)
                while pos < n:
                    hi = min(n, pos + read_size)
                    with mv[pos:hi] as window:
                        items = p.feed_window(window, final=False)
                    for item in items:
                        yield item
                    pos += p.last_consumed
                    rel.release_upto(pos)
                    if hi >= n:
                        break
                    if p.last_consumed == 0:
                        # a line longer than the window: take the next window too
                        read_size *= 2
                for item in p.finish(bytes(mv[pos:])):
                    yield item
            finally:
                mv.release()
        finally:
            mm.close()
        if require_record:
            p.check_found()
        return
    while True:
        data = fileobj.read(read_size)
        if not data:
            break
        for item in p.feed(data):
            yield item
    for item in p.finish():
        yield item
    if require_record:
        p.check_found()


def _is_regular(fd):
    import stat
    return stat.S_ISREG(os.fstat(fd).st_mode)


def read_trace_text(path, engine="auto", intervals=None, lenient=False):
    """Read a trace text file into full records."""
    with open(path, "rb") as f:
        gen = iter_trace_chunks(f, path=path, chunk_regions=1 << 62, engine=engine,
                                intervals=intervals, lenient=lenient)
        _, parser = next(gen)
        chunks = list(gen)
    return collect_records(parser.records, chunks, parser.first_starts)


def parse_trace_bytes(data, engine="auto", path=None, lenient=False):
    """Records of trace text held in memory (read like a file)."""
    p = TraceStreamParser(engine=engine, path=path, chunk_regions=1 << 62, lenient=lenient)
    chunks = p.feed(data) + p.finish()
    p.check_found()
    return collect_records(p.records, chunks, p.first_starts)


# ---------------------------------------------------------------- perf.data

#: where perf is looked for (module attribute: tests point it elsewhere)
PERF_CANDIDATES = _perf_tool.PERF_CANDIDATES


def find_perf():
    """perf's path, or None when it is not installed."""
    return _perf_tool.which_perf(None, PERF_CANDIDATES)


def open_perf_script(path):
    """Start ``perf script --force -i path`` through the one perf runner
    (:mod:`damo_pipe.perf_tool`): a PerfProcess whose stdout is a pipe."""
    check_perf_data_header(path)    # perf can spin forever on a damaged section table
    perf = _perf_tool.find_perf(None, "(needed to read perf.data %s)" % path,
                                candidates=PERF_CANDIDATES)
    return _perf_tool.popen_perf([perf, "script", "--force", "-i", os.fspath(path)])


def iter_perf_data_chunks(path, *, chunk_regions=1 << 20, engine="auto", intervals=None,
                          lenient=False, open_regions=0):
    """Stream ``perf script`` output of a perf.data through the trace parser."""
    proc = open_perf_script(path)
    ok = False
    parser = None
    try:
        gen = iter_trace_chunks(proc.stdout, path=path, chunk_regions=chunk_regions,
                                engine=engine, intervals=intervals, read_size=1 << 20,
                                lenient=lenient, require_record=False,
                                open_regions=open_regions)
        for item in gen:
            if item[0] is None:
                parser = item[1]
            yield item
        ok = True
    except RecordFormatError:
        # a perf that failed half-way leaves damaged text: its own error explains it
        try:
            failed = proc.proc.wait(timeout=1) != 0
        except subprocess.TimeoutExpired:
            failed = False
        if failed:
            ok = True
            try:
                proc.check()
            finally:
                proc.close()
        raise
    finally:
        if not ok:
            proc.close()
    try:
        proc.check()    # ExternalToolError naming the command, exit status and stderr
    finally:
        proc.close()
    parser.check_found()


def read_perf_data(path, engine="auto", intervals=None, lenient=False):
    gen = iter_perf_data_chunks(path, chunk_regions=1 << 62, engine=engine, intervals=intervals,
                                lenient=lenient)
    _, parser = next(gen)
    chunks = list(gen)
    return collect_records(parser.records, chunks, parser.first_starts)
