# cython: language_level=3, wraparound=False, cdivision=True
"""Cython kernel of the trace text readers (the ``cython`` engine of trace_text.py).

Pure-Python twin: ``damo_pipe.formats.trace_text.py_trace_scan`` (same rows, same
state updates, same errors).  Lines are tokenized and parsed without the GIL into
:class:`_Rows`; a buffer of >= 1 MiB is split at a newline and its halves are parsed
by two threads; the per-target grouping state machine then runs over the rows in order
(the steps of ``_trace_state.TraceState.add_line``: strict reading raises at the first
damaged line or incomplete snapshot, lenient reading counts and drops).
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint8_t
from libc.stdlib cimport free, malloc, realloc, strtod
from libc.string cimport memcmp, memcpy

from damo_pipe._kernels_common cimport (
    AGE_UNKNOWN, CH_0, CH_COLON, CH_EQUALS, CH_LF, CH_MINUS, CH_SPACE, CH_TAB, CH_CR,
    PARSE_OK, _bytes_eq, _parse_i64, _parse_u64, _ts_ok, _ts_to_double)

import re
import threading

import numpy as np

from damo_pipe.errors import RecordFormatError

cdef enum:
    MAXTOK = 16                 # tokens of a line that are located (more are counted)
    PARALLEL_MIN = 1 << 20      # buffers this long are parsed by two threads
    BYTES_PER_ROW_MIN = 14      # no event line is shorter: bounds the rows of a buffer
    TS_STACK = 128              # timestamps shorter than this are copied on the stack
    FAST_U64_DIGITS = 19        # fast path: at most this many digits (< 2**64, no check)
    FAST_I64_DIGITS = 18        # and for signed fields (< 2**63)

# buffers this long are parsed by two threads (set_parallel(False): never)
cdef Py_ssize_t _parallel_min = PARALLEL_MIN


def set_parallel(bint on):
    """Let trace_scan split buffers of >= 1 MiB over two threads (the default) or not
    (benchmarks measure one core); returns the previous setting."""
    global _parallel_min
    cdef bint was = _parallel_min == PARALLEL_MIN
    _parallel_min = PARALLEL_MIN if on else (<Py_ssize_t>1) << 62
    return was

# byte classes of _CLASS
cdef enum:
    C_TOKEN = 0
    C_SPACE = 1
    C_EOL = 2

cdef uint8_t _CLASS[256]
for _i in range(256):
    _CLASS[_i] = (C_EOL if _i == CH_LF else
                  C_SPACE if (_i == CH_SPACE or CH_TAB <= _i <= CH_CR) else C_TOKEN)
del _i

# tokenizer failures; _ERRORS turns them into messages
cdef enum TraceError:
    TE_OK = 0
    TE_TIMESTAMP
    TE_TIME_RANGE
    TE_TARGET_FIELD
    TE_TARGET_ID
    TE_NR_FIELD
    TE_NR_REGIONS
    TE_RANGE
    TE_START
    TE_END
    TE_NR_ACCESSES
    TE_AGE
    TE_ROW_OVERFLOW
    TE_FIELDS_AGGREGATED
    TE_FIELDS_BEFORE_APPLY

_ERRORS = {
    TE_TIMESTAMP: "bad timestamp %r",
    TE_TIME_RANGE: "timestamp %s out of range",
    TE_TARGET_FIELD: "bad target field %r",
    TE_TARGET_ID: "bad target id %r",
    TE_NR_FIELD: "bad nr_regions field %r",
    TE_NR_REGIONS: "bad nr_regions %r",
    TE_RANGE: "bad address range %r",
    TE_START: "bad region start %r",
    TE_END: "bad region end %r",
    TE_NR_ACCESSES: "bad nr_accesses %r",
    TE_AGE: "bad age %r",
    TE_ROW_OVERFLOW: "internal row overflow%.0s",
    TE_FIELDS_AGGREGATED: "damon_aggregated line with %d fields (expected 4 or 5)",
    TE_FIELDS_BEFORE_APPLY: "damos_before_apply line with %d fields (expected 7)",
}

# numeric fields: code -> (name in the out-of-range message, signed)
_NUMBER_FIELDS = {
    TE_TARGET_ID: ("target id", False),
    TE_NR_REGIONS: ("nr_regions", False),
    TE_START: ("region start", False),
    TE_END: ("region end", False),
    TE_NR_ACCESSES: ("nr_accesses", True),
    TE_AGE: ("age", True),
}
_UINT_RE = re.compile(r"\A[0-9]+\Z")
_INT_RE = re.compile(r"\A-?[0-9]+\Z")

# event kinds (the value is the number of fields after the event token)
cdef enum:
    EV_NONE = 0
    EV_AGGREGATED_NO_AGE = 4
    EV_AGGREGATED = 5
    EV_BEFORE_APPLY = 7


cdef struct TokErr:
    int code
    Py_ssize_t line
    Py_ssize_t a
    Py_ssize_t b
    Py_ssize_t nf


include "_trace_fast.pxi"
include "_trace_side.pxi"


cdef class _Rows:
    """Rows parsed from a range of lines (filled without the GIL)."""
    cdef public object end_a, tid_a, nr_a, s_a, e_a, acc_a, age_a, lines_a, hasage_a
    cdef int64_t[::1] end_v, nr_v, acc_v, age_v, lines_v
    cdef uint64_t[::1] tid_v, s_v, e_v
    cdef uint8_t[::1] hasage_v
    cdef public Py_ssize_t n, nlines
    cdef public Py_ssize_t ndamaged, first_damaged   # lenient: skipped lines, first one
    cdef bint lenient
    cdef TokErr err
    # the other DAMON event lines (formats.trace_events): line, start and end offsets,
    # in a malloc'ed array grown by _side (3 entries per line)
    cdef Py_ssize_t* side
    cdef Py_ssize_t nside, side_cap
    # damos_before_apply lines whose side row is made from their row: row, ctx_idx,
    # scheme_idx (3 entries per line; _before_apply)
    cdef int64_t* ba
    cdef Py_ssize_t nba, ba_cap

    def __dealloc__(self):
        free(self.side)
        free(self.ba)

    def __init__(self, Py_ssize_t cap, bint lenient=False):
        self.end_a = np.empty(cap, np.int64)
        self.tid_a = np.empty(cap, np.uint64)
        self.nr_a = np.empty(cap, np.int64)
        self.s_a = np.empty(cap, np.uint64)
        self.e_a = np.empty(cap, np.uint64)
        self.acc_a = np.empty(cap, np.int64)
        self.age_a = np.empty(cap, np.int64)
        self.lines_a = np.empty(cap, np.int64)
        self.hasage_a = np.empty(cap, np.uint8)
        self.lines_v = self.lines_a
        self.hasage_v = self.hasage_a
        self.end_v = self.end_a
        self.tid_v = self.tid_a
        self.nr_v = self.nr_a
        self.s_v = self.s_a
        self.e_v = self.e_a
        self.acc_v = self.acc_a
        self.age_v = self.age_a
        self.n = 0
        self.nlines = 0
        self.ndamaged = 0
        self.first_damaged = 0
        self.lenient = lenient
        self.err.code = TE_OK

    cdef void _reset(self):
        """Empty again, to parse another range (trace_scan's scratch rows)."""
        self.n = 0
        self.nlines = 0
        self.ndamaged = 0
        self.first_damaged = 0
        self.nside = 0
        self.nba = 0
        self.err.code = TE_OK

    @cython.boundscheck(False)  # &mv[0] and mv[hi - 1] only when hi > lo (range checked)
    def run(self, data, Py_ssize_t lo, Py_ssize_t hi):
        """Parse the lines of ``data[lo:hi]``, which ends with a newline."""
        cdef const uint8_t[::1] mv = data
        cdef Py_ssize_t nb = mv.shape[0]
        if not (0 <= lo <= hi <= nb):
            raise ValueError("bad range")
        if hi == lo:
            return
        if mv[hi - 1] != CH_LF:
            raise ValueError("the range does not end with a newline")
        with nogil:
            self._tok(&mv[0], lo, hi)

    cdef bint _side(self, Py_ssize_t line, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
        """Keep the place of a DAMON event line that is not a region (parsed in Python by
        TraceState.side_line, as the twin does); False when out of memory."""
        cdef Py_ssize_t* grown
        cdef Py_ssize_t ncap
        if self.nside >= self.side_cap:
            ncap = 64 if self.side_cap == 0 else self.side_cap * 2
            grown = <Py_ssize_t*>realloc(self.side, ncap * 3 * sizeof(Py_ssize_t))
            if grown == NULL:
                return False
            self.side = grown
            self.side_cap = ncap
        self.side[3 * self.nside] = line
        self.side[3 * self.nside + 1] = lo
        self.side[3 * self.nside + 2] = hi
        self.nside += 1
        return True

    cdef bint _before_apply(self, const uint8_t* b, Py_ssize_t cs, Py_ssize_t ce,
                            Py_ssize_t ss, Py_ssize_t se, Py_ssize_t row, uint64_t nrr,
                            int64_t acc, int64_t age, Py_ssize_t line, Py_ssize_t lo,
                            Py_ssize_t hi) noexcept nogil:
        """A damos_before_apply line also makes a side row (every field): when its
        ctx_idx, scheme_idx, nr_regions, nr_accesses and age are well-formed %u values
        the row is made from its region row (_before_apply_rows), else the line goes to
        _side (TraceState parses it and names what is wrong, as the twin)."""
        cdef uint64_t ctx = 0, sch = 0
        cdef int64_t* grown
        cdef Py_ssize_t ncap
        if not (nrr <= U32_MAX_ and 0 <= acc <= U32_MAX_ and 0 <= age <= U32_MAX_
                and _u32_named(b + cs, ce - cs, b"ctx_idx=", 8, &ctx)
                and _u32_named(b + ss, se - ss, b"scheme_idx=", 11, &sch)):
            return self._side(line, lo, hi)
        if self.nba >= self.ba_cap:
            ncap = 64 if self.ba_cap == 0 else self.ba_cap * 2
            grown = <int64_t*>realloc(self.ba, ncap * 3 * sizeof(int64_t))
            if grown == NULL:
                return False
            self.ba = grown
            self.ba_cap = ncap
        self.ba[3 * self.nba] = row
        self.ba[3 * self.nba + 1] = <int64_t>ctx
        self.ba[3 * self.nba + 2] = <int64_t>sch
        self.nba += 1
        return True

    def side_lines(self):
        """[(line, start offset, end offset)] of the other DAMON event lines, in order."""
        return [(self.side[3 * i], self.side[3 * i + 1], self.side[3 * i + 2])
                for i in range(self.nside)]

    @cython.boundscheck(False)  # every row written is < cap: see "row >= cap" below
    cdef void _tok(self, const uint8_t* b, Py_ssize_t pos, Py_ssize_t body) noexcept nogil:
        """Parse the lines of b[pos:body]; run() has checked 0 <= pos < body <= len and
        b[body - 1] == '\\n', the sentinel that stops every byte loop of a line."""
        cdef Py_ssize_t line = 0, j, ntok, ts_idx, nf, f0, lend, row = 0
        cdef Py_ssize_t ts_s[MAXTOK]
        cdef Py_ssize_t ts_e[MAXTOK]
        cdef Py_ssize_t cap = self.end_v.shape[0]
        cdef const uint8_t* tp
        cdef Py_ssize_t tl, ev_s, ev_l, k, dash
        cdef Py_ssize_t tidf = 0, nrf = 0, rngf = 0, accf = 0, agef = 0
        cdef int kind
        cdef uint64_t tid = 0, nrr = 0, rs = 0, re_ = 0
        cdef int64_t acc = 0, age = 0
        cdef double d = 0
        cdef char tsbuf[TS_STACK]
        cdef char* big
        # fast path: a line that has the same bytes as the last damon_aggregated line
        # parsed in full (pp) before its timestamp (pre bytes) and between its timestamp
        # and its address range (post bytes at pp + post_at; no newline in either) has
        # the same target and nr_regions (f_*); its timestamp is parsed only when it
        # differs from the last one seen (lt, ltl bytes with the ':'; f_end), and then its
        # tail (_fast_line).  The lines of a snapshot share those bytes.
        cdef const uint8_t* pp = NULL
        cdef Py_ssize_t pre = 0, post_at = 0, post = 0, ls
        cdef const uint8_t* lt = NULL
        cdef Py_ssize_t ltl = 0
        cdef int64_t f_end = 0
        cdef uint64_t f_tid = 0, f_nr = 0
        cdef uint8_t hasage = 0
        # faster still: a line whose first pfx bytes (up to its address range) equal
        # those of the last line taken whole or by the fast path (pl) has that line's
        # target, nr_regions and timestamp (f_*): one memcmp, then its tail.  pfx is 0
        # whenever f_* may not be pl's.
        cdef const uint8_t* pl = NULL
        cdef Py_ssize_t pfx = 0
        while pos < body:
            line += 1
            if pfx and body - pos > pfx and memcmp(b + pos, pl, pfx) == 0:
                # b[pos + pfx] is before the final newline (body - pos > pfx)
                k = _fast_tail(b + pos + pfx, body - pos - pfx, &rs, &re_, &acc, &age,
                               &hasage)
                if k >= 0 and row < cap:
                    _put_row(self, row, f_end, f_tid, f_nr, rs, re_, acc, age, hasage, line)
                    row += 1
                    pos += pfx + k + 1
                    continue
            if pre and body - pos > pre and memcmp(b + pos, pp, pre) == 0:
                # b[pos + pre] is before the final newline (body - pos > pre)
                k = _fast_line(b + pos + pre, body - pos - pre, pp + post_at, post, &lt,
                               &ltl, &f_end, &rs, &re_, &acc, &age, &hasage)
                if k >= 0 and row < cap:
                    _put_row(self, row, f_end, f_tid, f_nr, rs, re_, acc, age, hasage, line)
                    row += 1
                    pl = b + pos
                    pfx = pre + ltl + post
                    pos += pre + k + 1
                    continue
            pfx = 0
            ls = pos
            ntok = 0
            j = pos
            # tokens of one line: [ts_s[i], ts_e[i]) for the first MAXTOK; the line's
            # '\n' (C_EOL) ends both loops, so j never passes body - 1
            while True:
                while _CLASS[b[j]] == C_SPACE:
                    j += 1
                if _CLASS[b[j]] == C_EOL:
                    break
                if ntok < MAXTOK:
                    ts_s[ntok] = j
                j += 1
                while _CLASS[b[j]] == C_TOKEN:
                    j += 1
                if ntok < MAXTOK:
                    ts_e[ntok] = j
                ntok += 1
            lend = j
            pos = lend + 1
            if ntok < 4:
                continue
            ts_idx = 2 if b[ts_e[2] - 1] == CH_COLON else 3
            if ntok <= ts_idx + 1:
                continue
            # the event token without its ':' and an optional "damon:" prefix
            ev_s = ts_s[ts_idx + 1]
            ev_l = ts_e[ts_idx + 1] - ev_s - 1
            if ev_l >= 6 and _bytes_eq(b + ev_s, 6, b"damon:", 6):
                ev_s += 6
                ev_l -= 6
            nf = ntok - ts_idx - 2
            f0 = ts_idx + 2
            kind = EV_NONE
            if _bytes_eq(b + ev_s, ev_l, b"damon_aggregated", 16):
                if nf != EV_AGGREGATED_NO_AGE and nf != EV_AGGREGATED:
                    if self._fail(TE_FIELDS_AGGREGATED, line, ev_s, nf): break
                    continue
                kind = nf
                tidf = f0; nrf = f0 + 1; rngf = f0 + 2; accf = f0 + 3; agef = f0 + 4
            elif _bytes_eq(b + ev_s, ev_l, b"damos_before_apply", 18):
                if nf != EV_BEFORE_APPLY:
                    if self._fail(TE_FIELDS_BEFORE_APPLY, line, ev_s, nf): break
                    continue
                kind = EV_BEFORE_APPLY
                tidf = f0 + 2; nrf = f0 + 3; rngf = f0 + 4; accf = f0 + 5; agef = f0 + 6
            elif ev_s != ts_s[ts_idx + 1] or (ev_l >= 6 and (
                    _bytes_eq(b + ev_s, 6, b"damon_", 6) or _bytes_eq(b + ev_s, 6, b"damos_", 6))):
                # another DAMON event (ev_s moved: the token had perf's "damon:" prefix):
                # its line goes to TraceState.side_line
                if not self._side(line, ls, lend):
                    if self._fail(TE_ROW_OVERFLOW, line, 0, 0): break
                continue
            if kind == EV_NONE or f0 + nf > MAXTOK:
                continue
            # timestamp (without its ':')
            tp = b + ts_s[ts_idx]
            tl = ts_e[ts_idx] - ts_s[ts_idx] - 1
            if not _ts_ok(tp, tl):
                if self._fail(TE_TIMESTAMP, line, ts_s[ts_idx], ts_s[ts_idx] + tl): break
                continue
            if _ts_to_double(tp, tl, &d):
                pass
            elif tl < TS_STACK - 1:
                memcpy(tsbuf, tp, tl)
                tsbuf[tl] = 0
                d = strtod(tsbuf, NULL)
            else:
                big = <char*>malloc(tl + 1)
                if big == NULL:
                    if self._fail(TE_TIME_RANGE, line, ts_s[ts_idx], ts_s[ts_idx] + tl): break
                    continue
                memcpy(big, tp, tl)
                big[tl] = 0
                d = strtod(big, NULL)
                free(big)
            d = d * 1e9
            if not (d < 9223372036854775808.0):
                if self._fail(TE_TIME_RANGE, line, ts_s[ts_idx], ts_s[ts_idx] + tl): break
                continue
            # target id: "name=<u64>"
            tp = b + ts_s[tidf]
            tl = ts_e[tidf] - ts_s[tidf]
            k = 0
            while k < tl and tp[k] != CH_EQUALS:
                k += 1
            if k >= tl:
                if self._fail(TE_TARGET_FIELD, line, ts_s[tidf], ts_e[tidf]): break
                continue
            if _parse_u64(tp + k + 1, tl - k - 1, &tid) != PARSE_OK:
                if self._fail(TE_TARGET_ID, line, ts_s[tidf] + k + 1, ts_e[tidf]): break
                continue
            # nr_regions: "nr_regions=<u64 below 2**63>"
            tp = b + ts_s[nrf]
            tl = ts_e[nrf] - ts_s[nrf]
            k = 0
            while k < tl and tp[k] != CH_EQUALS:
                k += 1
            if k >= tl:
                if self._fail(TE_NR_FIELD, line, ts_s[nrf], ts_e[nrf]): break
                continue
            if (_parse_u64(tp + k + 1, tl - k - 1, &nrr) != PARSE_OK
                    or nrr > 9223372036854775807ULL):
                if self._fail(TE_NR_REGIONS, line, ts_s[nrf] + k + 1, ts_e[nrf]): break
                continue
            # range: "<start>-<end>:"
            tp = b + ts_s[rngf]
            tl = ts_e[rngf] - ts_s[rngf] - 1
            dash = 0
            while dash < tl and tp[dash] != CH_MINUS:
                dash += 1
            if dash >= tl:
                if self._fail(TE_RANGE, line, ts_s[rngf], ts_s[rngf] + (tl if tl > 0 else 0)): break
                continue
            if _parse_u64(tp, dash, &rs) != PARSE_OK:
                if self._fail(TE_START, line, ts_s[rngf], ts_s[rngf] + dash): break
                continue
            if _parse_u64(tp + dash + 1, tl - dash - 1, &re_) != PARSE_OK:
                if self._fail(TE_END, line, ts_s[rngf] + dash + 1, ts_s[rngf] + tl): break
                continue
            # nr_accesses, age
            tp = b + ts_s[accf]
            tl = ts_e[accf] - ts_s[accf]
            if _parse_i64(tp, tl, &acc) != PARSE_OK:
                if self._fail(TE_NR_ACCESSES, line, ts_s[accf], ts_e[accf]): break
                continue
            if kind == EV_AGGREGATED_NO_AGE:
                age = AGE_UNKNOWN
            else:
                tp = b + ts_s[agef]
                tl = ts_e[agef] - ts_s[agef]
                if _bytes_eq(tp, tl, b"None", 4):
                    age = AGE_UNKNOWN
                elif _parse_i64(tp, tl, &age) != PARSE_OK:
                    if self._fail(TE_AGE, line, ts_s[agef], ts_e[agef]): break
                    continue
            if row >= cap:
                if self._fail(TE_ROW_OVERFLOW, line, 0, 0): break
                continue
            _put_row(self, row, <int64_t>d, tid, nrr, rs, re_, acc, age,
                     kind != EV_AGGREGATED_NO_AGE, line)
            row += 1
            if kind != EV_BEFORE_APPLY:
                pp = b + ls
                pre = ts_s[ts_idx] - ls
                post_at = ts_e[ts_idx] - ls
                post = ts_s[rngf] - ts_e[ts_idx]
                lt = b + ts_s[ts_idx]
                ltl = ts_e[ts_idx] - ts_s[ts_idx]
                f_end = <int64_t>d
                f_tid = tid
                f_nr = nrr
                pl = pp
                pfx = pre + ltl + post
            elif not self._before_apply(b, ts_s[f0], ts_e[f0], ts_s[f0 + 1], ts_e[f0 + 1],
                                        row - 1, nrr, acc, age, line, ls, lend):
                # damos_before_apply: all its fields also go to a side table
                if self._fail(TE_ROW_OVERFLOW, line, 0, 0): break
        self.n = row
        self.nlines = line

    cdef bint _fail(self, int code, Py_ssize_t line, Py_ssize_t a, Py_ssize_t bb) noexcept nogil:
        """A damaged event line: strict reading records the error and returns True (stop);
        lenient reading counts the line and returns False (go on with the next line).
        The TE_FIELDS_* codes pass the number of fields as ``bb``."""
        if self.lenient:
            if self.ndamaged == 0:
                self.first_damaged = line
            self.ndamaged += 1
            return False
        self.err.code = code
        self.err.line = line
        self.err.a = a
        self.err.b = bb
        self.err.nf = bb
        return True

    def error(self, data, path, Py_ssize_t line0):
        """The RecordFormatError of the tokenizer failure, or None."""
        if self.err.code == TE_OK:
            return None
        if self.err.code == TE_FIELDS_AGGREGATED or self.err.code == TE_FIELDS_BEFORE_APPLY:
            return RecordFormatError(_ERRORS[self.err.code] % self.err.nf, path=path,
                                     line=line0 + self.err.line)
        tok = bytes(data[self.err.a:self.err.b]).decode("latin-1")
        what = _NUMBER_FIELDS.get(self.err.code)
        if what is not None and (_INT_RE if what[1] else _UINT_RE).match(tok):
            # a well-formed number out of its type's range: the twin's wording
            return RecordFormatError("%s %d out of range" % (what[0], int(tok)), path=path,
                                     line=line0 + self.err.line)
        return RecordFormatError(_ERRORS[self.err.code] % tok, path=path,
                                 line=line0 + self.err.line)


@cython.boundscheck(False)  # callers write only rows < cap (_Rows._tok checks)
@cython.wraparound(False)
cdef inline void _put_row(_Rows r, Py_ssize_t row, int64_t end, uint64_t tid, uint64_t nr,
                          uint64_t rs, uint64_t re_, int64_t acc, int64_t age,
                          uint8_t hasage, Py_ssize_t line) noexcept nogil:
    """One parsed damon_aggregated row into the columns of ``r``."""
    r.end_v[row] = end
    r.tid_v[row] = tid
    r.nr_v[row] = <int64_t>nr
    r.s_v[row] = rs
    r.e_v[row] = re_
    r.acc_v[row] = acc
    r.age_v[row] = age
    r.hasage_v[row] = hasage
    r.lines_v[row] = line


cdef enum:
    HAS_LAST = 1        # _Group.has_v bits: last_end known,
    HAS_CLOSED = 2      # closed_end known,
    OPEN_AGE = 4        # the open snapshot's first line has an age field


cdef class _Group:
    """TraceState's per-record lists as typed arrays for the grouping loop (loaded
    from the state, grown for new records, stored back before returning or raising)."""
    cdef object open_a, cnt_a, want_a, line_a, last_a, closed_a, addr_a, has_a
    cdef int64_t[::1] open_v, cnt_v, want_v, line_v, last_v, closed_v
    cdef uint64_t[::1] addr_v
    cdef uint8_t[::1] has_v
    cdef Py_ssize_t cap
    #: trace_scan's scratch _Rows (one per thread), kept with the cached group: a piece
    #: parsed into pages touched before takes no page faults (~40 % of the tokenizer's
    #: time with fresh arrays per 1 MiB piece)
    cdef public object scratch

    def __init__(self, st):
        cdef Py_ssize_t i, n = len(st.targets)
        self._alloc(n + 16, 0)
        for i in range(n):
            self.open_v[i] = st.open_sid[i]
            self.cnt_v[i] = st.count[i]
            self.want_v[i] = st.want[i]
            self.line_v[i] = st.open_line[i]
            self.addr_v[i] = st.addr_end[i]
            if st.open_age[i]:
                self.has_v[i] |= OPEN_AGE
            if st.last_end[i] is not None:
                self.last_v[i] = st.last_end[i]
                self.has_v[i] |= HAS_LAST
            if st.closed_end[i] is not None:
                self.closed_v[i] = st.closed_end[i]
                self.has_v[i] |= HAS_CLOSED

    def _alloc(self, Py_ssize_t cap, Py_ssize_t keep):
        old = (self.open_a, self.cnt_a, self.want_a, self.line_a, self.last_a,
               self.closed_a, self.addr_a, self.has_a)
        self.open_a = np.full(cap, -1, np.int64)
        self.cnt_a = np.zeros(cap, np.int64)
        self.want_a = np.zeros(cap, np.int64)
        self.line_a = np.zeros(cap, np.int64)
        self.last_a = np.zeros(cap, np.int64)
        self.closed_a = np.zeros(cap, np.int64)
        self.addr_a = np.zeros(cap, np.uint64)
        self.has_a = np.zeros(cap, np.uint8)
        new = (self.open_a, self.cnt_a, self.want_a, self.line_a, self.last_a,
               self.closed_a, self.addr_a, self.has_a)
        if keep:
            for a, b in zip(new, old):
                a[:keep] = b[:keep]
        self.open_v = self.open_a
        self.cnt_v = self.cnt_a
        self.want_v = self.want_a
        self.line_v = self.line_a
        self.last_v = self.last_a
        self.closed_v = self.closed_a
        self.addr_v = self.addr_a
        self.has_v = self.has_a
        self.cap = cap

    cdef void ensure(self, Py_ssize_t r):
        """Room for record index ``r`` (a new record: its slot starts closed, empty)."""
        if r >= self.cap:
            self._alloc(self.cap * 2 if r < self.cap * 2 else r + 16, self.cap)

    def store(self, st):
        cdef Py_ssize_t i
        for i in range(len(st.targets)):
            st.open_sid[i] = int(self.open_v[i])
            st.count[i] = int(self.cnt_v[i])
            st.want[i] = int(self.want_v[i])
            st.open_line[i] = int(self.line_v[i])
            st.addr_end[i] = int(self.addr_v[i])
            st.open_age[i] = bool(self.has_v[i] & OPEN_AGE)
            st.last_end[i] = int(self.last_v[i]) if self.has_v[i] & HAS_LAST else None
            st.closed_end[i] = int(self.closed_v[i]) if self.has_v[i] & HAS_CLOSED else None


cdef inline void _drop(_Group g, int64_t r, list dropped):
    """Drop the open snapshot of record ``r`` (TraceState.drop_open without its
    counters, which the caller keeps)."""
    dropped.append(g.open_v[r])
    g.open_v[r] = -1
    g.last_v[r] = g.closed_v[r]
    if g.has_v[r] & HAS_CLOSED:
        g.has_v[r] |= HAS_LAST
    else:
        g.has_v[r] &= ~HAS_LAST


cdef enum:
    SCRATCH_MAX_ROWS = (8 << 20) // BYTES_PER_ROW_MIN    # scratch rows kept: <= 8 MiB


cdef _Rows _scratch_rows(_Group g, int i, Py_ssize_t cap, bint lenient):
    """Empty _Rows of >= cap rows: scratch ``i`` of the cached group ``g`` when there
    is one (kept there for the next call), else a new one."""
    cdef _Rows r
    if g is None or cap > SCRATCH_MAX_ROWS:
        return _Rows(cap, lenient)
    if g.scratch is None:
        g.scratch = [None, None]
    r = g.scratch[i]
    if r is None or r.end_v.shape[0] < cap or r.lenient != lenient:
        # room for the largest piece so far (and at least 1 MiB of lines)
        r = _Rows(max(cap, (1 << 20) // BYTES_PER_ROW_MIN + 2), lenient)
        g.scratch[i] = r
    else:
        r._reset()
    return r


@cython.boundscheck(False)  # rows index the _Rows arrays below n; r < g.cap (g.ensure)
def trace_scan(data, st, bint final, path=None, bint views=False):
    """Cython twin of ``trace_text.py_trace_scan`` (same rows, same state updates).

    Lines are tokenized and parsed without the GIL; a buffer of >= 1 MiB is split at a
    newline and its halves parsed by two threads. ``views``: the row columns may be
    views of scratch rows that the next call parses into again (the caller copies what
    it keeps; a streamed snapshot's rows are copied into its buffers at once).  The grouping state machine then runs
    over the rows in order.  Rows of lines that lenient reading skips get snapshot id
    -1 (and -1 joins ``st.dropped_sids``, so that the caller filters them out).
    """
    cdef const uint8_t[::1] mv = data
    cdef Py_ssize_t n = mv.shape[0]
    cdef const uint8_t* b = &mv[0] if n > 0 else NULL
    cdef Py_ssize_t body, lines_end = 0, i, mid
    cdef bint lenient = st.lenient
    # lines_end: just after the last newline; the bytes after it are a line only when
    # ``final`` (body: the bytes this call consumes)
    i = n - 1
    while i >= 0:
        if b[i] == CH_LF:
            lines_end = i + 1
            break
        i -= 1
    body = n if final else lines_end
    if lines_end >= _parallel_min:
        mid = lines_end // 2
        while mid < lines_end and b[mid - 1] != CH_LF:
            mid += 1
        r1 = _scratch_rows(st.kernel_group, 0, mid // BYTES_PER_ROW_MIN + 2, lenient)
        r2 = _scratch_rows(st.kernel_group, 1, (lines_end - mid) // BYTES_PER_ROW_MIN + 2,
                           lenient)
        th = threading.Thread(target=r2.run, args=(data, mid, lines_end))
        th.start()
        try:
            r1.run(data, 0, mid)
        finally:
            th.join()
        parts = [(r1, data), (r2, data)]      # (rows, the buffer their offsets index)
    else:
        r1 = _scratch_rows(st.kernel_group, 0, lines_end // BYTES_PER_ROW_MIN + 2, lenient)
        r1.run(data, 0, lines_end)
        parts = [(r1, data)]
    if body > lines_end:
        # a last line without a newline: _Rows parses a copy that has one
        tail = bytes(mv[lines_end:body]) + b"\n"
        rt = _Rows(2, lenient)
        rt.run(tail, 0, len(tail))
        parts.append((rt, tail))

    # grouping over the rows, in order (TraceState.add_line, step for step)
    cdef Py_ssize_t total = 0
    cdef _Rows rp
    for rp, _ in parts:
        total += rp.n
    sid_a = np.empty(total, np.int64)
    rec_a = np.empty(total, np.int64)
    cdef int64_t[::1] sid_v = sid_a, rec_v = rec_a
    cdef _Group g = st.kernel_group
    if g is None:
        g = _Group(st)
    cdef int64_t next_sid = st.next_sid
    rec_of = st.rec_of
    targets = st.targets
    dropped = st.dropped_sids
    cdef Py_ssize_t line0 = st.line_no, row = 0, k, line, j, run_end, n_rows
    cdef int64_t want, cnt, last
    cdef uint64_t addr
    cdef uint8_t age_bit
    cdef Py_ssize_t events = 0, ndropped = 0, dropped_lines = 0, damaged = 0
    cdef Py_ssize_t first_damage = -1 if st.first_damage is None else st.first_damage
    cdef Py_ssize_t first_disorder = -1 if st.first_disorder is None else st.first_disorder
    cdef bint skipped = False
    cdef _Rows rr
    cdef uint64_t tid, cached_tid = 0
    cdef int64_t r, cached_r = -1, sid, end_ns, nrr
    cdef uint8_t has_age
    try:
        for rr, buf in parts:
            run_end = 0
            n_rows = rr.n
            for k in range(n_rows):
                if k < run_end:
                    continue      # taken by the run below
                tid = rr.tid_v[k]
                end_ns = rr.end_v[k]
                line = line0 + rr.lines_v[k]
                if cached_r >= 0 and tid == cached_tid:
                    r = cached_r
                else:
                    ro = rec_of.get(tid)
                    if ro is None:
                        r = st.new_record(tid)
                        g.ensure(r)
                    else:
                        r = ro
                    cached_r = r
                    cached_tid = tid
                if g.has_v[r] & HAS_LAST and g.last_v[r] > end_ns:
                    if not lenient:
                        raise RecordFormatError("trace is not time-sorted", path=path,
                                                line=line)
                    if g.open_v[r] >= 0:
                        _drop(g, r, dropped)
                        ndropped += 1
                        dropped_lines += g.cnt_v[r]
                        if first_damage < 0 or line < first_damage:
                            first_damage = line
                    if g.has_v[r] & HAS_LAST and g.last_v[r] > end_ns:
                        damaged += 1
                        if first_damage < 0 or line < first_damage:
                            first_damage = line
                        sid_v[row] = -1
                        rec_v[row] = r
                        row += 1
                        skipped = True
                        continue
                sid = g.open_v[r]
                nrr = rr.nr_v[k]
                has_age = OPEN_AGE if rr.hasage_v[k] else 0
                if sid >= 0:
                    if nrr != g.want_v[r] or has_age != g.has_v[r] & OPEN_AGE:
                        if not lenient:
                            g.store(st)
                            st.first_disorder = None if first_disorder < 0 else first_disorder
                            if nrr != g.want_v[r]:
                                raise st.incomplete(r, path, line, nrr)
                            raise st.incomplete(r, path, line, nrr, bool(has_age))
                        _drop(g, r, dropped)
                        ndropped += 1
                        dropped_lines += g.cnt_v[r]
                        if first_damage < 0 or line < first_damage:
                            first_damage = line
                        sid = -1
                    elif rr.s_v[k] < g.addr_v[r]:
                        if lenient:
                            _drop(g, r, dropped)
                            ndropped += 1
                            dropped_lines += g.cnt_v[r]
                            if first_damage < 0 or line < first_damage:
                                first_damage = line
                            sid = -1
                        elif first_disorder < 0:
                            first_disorder = line
                if sid < 0:
                    if nrr == 0:
                        if not lenient:
                            raise RecordFormatError("nr_regions=0 on a region line",
                                                    path=path, line=line)
                        damaged += 1
                        if first_damage < 0 or line < first_damage:
                            first_damage = line
                        sid_v[row] = -1
                        rec_v[row] = r
                        row += 1
                        skipped = True
                        continue
                    sid = next_sid
                    next_sid += 1
                    g.open_v[r] = sid
                    g.cnt_v[r] = 0
                    g.want_v[r] = nrr
                    g.line_v[r] = line
                    g.last_v[r] = end_ns
                    g.has_v[r] = (g.has_v[r] & ~OPEN_AGE) | HAS_LAST | has_age
                g.cnt_v[r] += 1
                g.addr_v[r] = rr.e_v[k]
                events += 1
                if g.cnt_v[r] == g.want_v[r]:
                    g.open_v[r] = -1
                    g.closed_v[r] = g.last_v[r]
                    g.has_v[r] |= HAS_CLOSED
                sid_v[row] = sid
                rec_v[row] = r
                row += 1
                if g.open_v[r] >= 0:
                    # the run of rows that simply continue this open snapshot (the steps
                    # above for each: same target, time-sorted, same nr_regions and age
                    # form, addresses ascending), in locals; any other row ends the run
                    # and takes the steps above
                    want = g.want_v[r]
                    cnt = g.cnt_v[r]
                    last = g.last_v[r]
                    addr = g.addr_v[r]
                    age_bit = g.has_v[r] & OPEN_AGE
                    j = k + 1
                    while j < n_rows and cnt < want and rr.tid_v[j] == tid \
                            and rr.end_v[j] >= last and rr.nr_v[j] == want \
                            and (OPEN_AGE if rr.hasage_v[j] else 0) == age_bit \
                            and rr.s_v[j] >= addr:
                        cnt += 1
                        addr = rr.e_v[j]
                        sid_v[row] = sid
                        rec_v[row] = r
                        row += 1
                        j += 1
                    if j > k + 1:
                        events += j - k - 1
                        g.cnt_v[r] = cnt
                        g.addr_v[r] = addr
                        if cnt == want:
                            g.open_v[r] = -1
                            g.closed_v[r] = last
                            g.has_v[r] |= HAS_CLOSED
                        run_end = j
            err = rr.error(buf, path, line0)
            if err is not None:
                raise err     # the side lines before it: the except clause below
            if rr.nside or rr.nba:
                nd, fd = _side_lines(st, rr, buf, line0, path, None)
                damaged += nd
                if fd >= 0 and (first_damage < 0 or fd < first_damage):
                    first_damage = fd
            if rr.ndamaged:
                damaged += rr.ndamaged
                if first_damage < 0 or line0 + rr.first_damaged < first_damage:
                    first_damage = line0 + rr.first_damaged
            line0 += rr.nlines
    except RecordFormatError as e:
        # strict reading: the other DAMON lines of this part before the error are read
        # first (an error among them comes first, as in the twin)
        if rr is not None and (rr.nside or rr.nba) and e.line is not None:
            _side_lines(st, rr, buf, line0, path, e.line)
        raise
    finally:
        g.store(st)
        st.kernel_group = g       # valid until Python code changes the lists
        st.next_sid = next_sid
        st.line_no = line0
        st.events += events
        st.dropped_snapshots += ndropped
        st.dropped_lines += dropped_lines
        st.damaged_lines += damaged
        st.first_damage = None if first_damage < 0 else first_damage
        st.first_disorder = None if first_disorder < 0 else first_disorder
    if skipped:
        dropped.append(-1)

    def cat(name):       # copies: the scratch rows are parsed into again next call
        arrs = [getattr(p, name)[:(<_Rows>p).n] for p, _ in parts]
        if len(arrs) > 1:
            return np.concatenate(arrs)
        return arrs[0] if views else arrs[0].copy()
    rows = {"end_ns": cat("end_a"), "nr_regions": cat("nr_a"), "start": cat("s_a"),
            "end": cat("e_a"), "nr_accesses": cat("acc_a"), "age": cat("age_a"),
            "sid": sid_a, "rec": rec_a}
    return body, rows

