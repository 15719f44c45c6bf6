# cython: language_level=3, wraparound=False, cdivision=True
"""Cython kernel of the trace text readers (the ``cython`` engine of trace_text.py).

Pure-Python twin: ``damo_pipe.formats.trace_text.py_trace_scan`` (same rows, same
state updates, same errors).  Lines are tokenized and parsed without the GIL into
:class:`_Rows`; a buffer of >= 1 MiB is split at a newline and its halves are parsed
by two threads; the per-target grouping state machine then runs over the rows in order.
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint8_t
from libc.stdlib cimport free, malloc, strtod
from libc.string cimport memcpy

from damo_pipe._kernels_common cimport (
    AGE_UNKNOWN, CH_COLON, CH_EQUALS, CH_LF, CH_MINUS, CH_SPACE, CH_TAB, CH_CR, PARSE_OK,
    _bytes_eq, _parse_i64, _parse_u64, _ts_ok, _ts_to_double)

import threading

import numpy as np

from damo_pipe.errors import RecordFormatError

cdef enum:
    MAXTOK = 16                 # tokens of a line that are located (more are counted)
    PARALLEL_MIN = 1 << 20      # buffers this long are parsed by two threads
    BYTES_PER_ROW_MIN = 14      # no event line is shorter: bounds the rows of a buffer
    TS_STACK = 128              # timestamps shorter than this are copied on the stack

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
}

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


cdef class _Rows:
    """Rows parsed from a range of lines (filled without the GIL)."""
    cdef public object end_a, tid_a, nr_a, s_a, e_a, acc_a, age_a, lines_a
    cdef int64_t[::1] end_v, nr_v, acc_v, age_v, lines_v
    cdef uint64_t[::1] tid_v, s_v, e_v
    cdef public Py_ssize_t n, nlines
    cdef TokErr err

    def __init__(self, Py_ssize_t cap):
        self.end_a = np.empty(cap, np.int64)
        self.tid_a = np.empty(cap, np.uint64)
        self.nr_a = np.empty(cap, np.int64)
        self.s_a = np.empty(cap, np.uint64)
        self.e_a = np.empty(cap, np.uint64)
        self.acc_a = np.empty(cap, np.int64)
        self.age_a = np.empty(cap, np.int64)
        self.lines_a = np.empty(cap, np.int64)
        self.lines_v = self.lines_a
        self.end_v = self.end_a
        self.tid_v = self.tid_a
        self.nr_v = self.nr_a
        self.s_v = self.s_a
        self.e_v = self.e_a
        self.acc_v = self.acc_a
        self.age_v = self.age_a
        self.n = 0
        self.nlines = 0
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
        while pos < body:
            line += 1
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
            if nf == EV_AGGREGATED_NO_AGE or nf == EV_AGGREGATED:
                if _bytes_eq(b + ev_s, ev_l, b"damon_aggregated", 16):
                    kind = nf
                    tidf = f0; nrf = f0 + 1; rngf = f0 + 2; accf = f0 + 3; agef = f0 + 4
            elif nf == EV_BEFORE_APPLY:
                if _bytes_eq(b + ev_s, ev_l, b"damos_before_apply", 18):
                    kind = EV_BEFORE_APPLY
                    tidf = f0 + 2; nrf = f0 + 3; rngf = f0 + 4; accf = f0 + 5; agef = f0 + 6
            if kind == EV_NONE or f0 + nf > MAXTOK:
                continue
            # timestamp (without its ':')
            tp = b + ts_s[ts_idx]
            tl = ts_e[ts_idx] - ts_s[ts_idx] - 1
            if not _ts_ok(tp, tl):
                self._fail(TE_TIMESTAMP, line, ts_s[ts_idx], ts_s[ts_idx] + tl); break
            if _ts_to_double(tp, tl, &d):
                pass
            elif tl < TS_STACK - 1:
                memcpy(tsbuf, tp, tl)
                tsbuf[tl] = 0
                d = strtod(tsbuf, NULL)
            else:
                big = <char*>malloc(tl + 1)
                if big == NULL:
                    self._fail(TE_TIME_RANGE, line, ts_s[ts_idx], ts_s[ts_idx] + tl); break
                memcpy(big, tp, tl)
                big[tl] = 0
                d = strtod(big, NULL)
                free(big)
            d = d * 1e9
            if not (d < 9223372036854775808.0):
                self._fail(TE_TIME_RANGE, line, ts_s[ts_idx], ts_s[ts_idx] + tl); break
            # target id: "name=<u64>"
            tp = b + ts_s[tidf]
            tl = ts_e[tidf] - ts_s[tidf]
            k = 0
            while k < tl and tp[k] != CH_EQUALS:
                k += 1
            if k >= tl:
                self._fail(TE_TARGET_FIELD, line, ts_s[tidf], ts_e[tidf]); break
            if _parse_u64(tp + k + 1, tl - k - 1, &tid) != PARSE_OK:
                self._fail(TE_TARGET_ID, line, ts_s[tidf] + k + 1, ts_e[tidf]); break
            # nr_regions: "nr_regions=<u64 below 2**63>"
            tp = b + ts_s[nrf]
            tl = ts_e[nrf] - ts_s[nrf]
            k = 0
            while k < tl and tp[k] != CH_EQUALS:
                k += 1
            if k >= tl:
                self._fail(TE_NR_FIELD, line, ts_s[nrf], ts_e[nrf]); break
            if (_parse_u64(tp + k + 1, tl - k - 1, &nrr) != PARSE_OK
                    or nrr > 9223372036854775807ULL):
                self._fail(TE_NR_REGIONS, line, ts_s[nrf] + k + 1, ts_e[nrf]); break
            # range: "<start>-<end>:"
            tp = b + ts_s[rngf]
            tl = ts_e[rngf] - ts_s[rngf] - 1
            dash = 0
            while dash < tl and tp[dash] != CH_MINUS:
                dash += 1
            if dash >= tl:
                self._fail(TE_RANGE, line, ts_s[rngf], ts_s[rngf] + (tl if tl > 0 else 0)); break
            if _parse_u64(tp, dash, &rs) != PARSE_OK:
                self._fail(TE_START, line, ts_s[rngf], ts_s[rngf] + dash); break
            if _parse_u64(tp + dash + 1, tl - dash - 1, &re_) != PARSE_OK:
                self._fail(TE_END, line, ts_s[rngf] + dash + 1, ts_s[rngf] + tl); break
            # nr_accesses, age
            tp = b + ts_s[accf]
            tl = ts_e[accf] - ts_s[accf]
            if _parse_i64(tp, tl, &acc) != PARSE_OK:
                self._fail(TE_NR_ACCESSES, line, ts_s[accf], ts_e[accf]); break
            if kind == EV_AGGREGATED_NO_AGE:
                age = AGE_UNKNOWN
            else:
                tp = b + ts_s[agef]
                tl = ts_e[agef] - ts_s[agef]
                if _bytes_eq(tp, tl, b"None", 4):
                    age = AGE_UNKNOWN
                elif _parse_i64(tp, tl, &age) != PARSE_OK:
                    self._fail(TE_AGE, line, ts_s[agef], ts_e[agef]); break
            if row >= cap:
                self._fail(TE_ROW_OVERFLOW, line, 0, 0); break
            self.end_v[row] = <int64_t>d
            self.tid_v[row] = tid
            self.nr_v[row] = <int64_t>nrr
            self.s_v[row] = rs
            self.e_v[row] = re_
            self.acc_v[row] = acc
            self.age_v[row] = age
            self.lines_v[row] = line
            row += 1
        self.n = row
        self.nlines = line

    cdef void _fail(self, int code, Py_ssize_t line, Py_ssize_t a, Py_ssize_t bb) noexcept nogil:
        self.err.code = code
        self.err.line = line
        self.err.a = a
        self.err.b = bb

    def error(self, data, path, Py_ssize_t line0):
        """The RecordFormatError of the tokenizer failure, or None."""
        if self.err.code == TE_OK:
            return None
        tok = bytes(data[self.err.a:self.err.b]).decode("latin-1")
        return RecordFormatError(_ERRORS[self.err.code] % tok, path=path,
                                 line=line0 + self.err.line)


@cython.boundscheck(False)  # rows index the _Rows arrays below n; r < rcap (grown below)
def trace_scan(data, st, bint final, path=None):
    """Cython twin of ``trace_text.py_trace_scan`` (same rows, same state updates).

    Lines are tokenized and parsed without the GIL; a buffer of >= 1 MiB is split at a
    newline and its halves parsed by two threads.  The grouping state machine then runs
    over the rows in order.
    """
    cdef const uint8_t[::1] mv = data
    cdef Py_ssize_t n = mv.shape[0]
    cdef const uint8_t* b = &mv[0] if n > 0 else NULL
    cdef Py_ssize_t body, lines_end = 0, i, mid
    # lines_end: just after the last newline; the bytes after it are a line only when
    # ``final`` (body: the bytes this call consumes)
    i = n - 1
    while i >= 0:
        if b[i] == CH_LF:
            lines_end = i + 1
            break
        i -= 1
    body = n if final else lines_end
    if lines_end >= PARALLEL_MIN:
        mid = lines_end // 2
        while mid < lines_end and b[mid - 1] != CH_LF:
            mid += 1
        r1 = _Rows(mid // BYTES_PER_ROW_MIN + 2)
        r2 = _Rows((lines_end - mid) // BYTES_PER_ROW_MIN + 2)
        th = threading.Thread(target=r2.run, args=(data, mid, lines_end))
        th.start()
        try:
            r1.run(data, 0, mid)
        finally:
            th.join()
        parts = [(r1, data), (r2, data)]      # (rows, the buffer their offsets index)
    else:
        r1 = _Rows(lines_end // BYTES_PER_ROW_MIN + 2)
        r1.run(data, 0, lines_end)
        parts = [(r1, data)]
    if body > lines_end:
        # a last line without a newline: _Rows parses a copy that has one
        tail = bytes(mv[lines_end:body]) + b"\n"
        rt = _Rows(2)
        rt.run(tail, 0, len(tail))
        parts.append((rt, tail))

    # grouping over the rows, in order
    cdef Py_ssize_t total = 0
    cdef _Rows rp
    for rp, _ in parts:
        total += rp.n
    sid_a = np.empty(total, np.int64)
    rec_a = np.empty(total, np.int64)
    cdef int64_t[::1] sid_v = sid_a, rec_v = rec_a
    cdef Py_ssize_t nrec = len(st.targets)
    cdef Py_ssize_t rcap = nrec + 16
    open_a = np.full(rcap, -1, np.int64)
    cnt_a = np.zeros(rcap, np.int64)
    last_a = np.zeros(rcap, np.int64)
    has_a = np.zeros(rcap, np.uint8)
    cdef int64_t[::1] open_v = open_a, cnt_v = cnt_a, last_v = last_a
    cdef uint8_t[::1] has_v = has_a
    for i in range(nrec):
        open_v[i] = st.open_sid[i]
        cnt_v[i] = st.count[i]
        if st.last_end[i] is not None:
            last_v[i] = st.last_end[i]
            has_v[i] = 1
    cdef int64_t next_sid = st.next_sid
    rec_of = st.rec_of
    targets = st.targets
    cdef Py_ssize_t line0 = st.line_no, row = 0, k
    cdef _Rows rr
    cdef uint64_t tid, cached_tid = 0, nrr
    cdef int64_t r, cached_r = -1, sid, end_ns
    for rr, buf in parts:
        for k in range(rr.n):
            tid = rr.tid_v[k]
            end_ns = rr.end_v[k]
            if cached_r >= 0 and tid == cached_tid:
                r = cached_r
            else:
                ro = rec_of.get(tid)
                if ro is None:
                    r = len(targets)
                    rec_of[tid] = r
                    targets.append(tid)
                    st.open_sid.append(-1)
                    st.count.append(0)
                    st.last_end.append(None)
                    if r >= rcap:
                        rcap = rcap * 2
                        open_a = np.concatenate([open_a, np.full(rcap - len(open_a), -1, np.int64)])
                        cnt_a = np.concatenate([cnt_a, np.zeros(rcap - len(cnt_a), np.int64)])
                        last_a = np.concatenate([last_a, np.zeros(rcap - len(last_a), np.int64)])
                        has_a = np.concatenate([has_a, np.zeros(rcap - len(has_a), np.uint8)])
                        open_v = open_a; cnt_v = cnt_a; last_v = last_a; has_v = has_a
                    open_v[r] = -1
                    cnt_v[r] = 0
                    has_v[r] = 0
                else:
                    r = ro
                cached_r = r
                cached_tid = tid
            if has_v[r] and last_v[r] > end_ns:
                raise RecordFormatError("trace is not time-sorted", path=path,
                                        line=line0 + rr.lines_v[k])
            sid = open_v[r]
            if sid < 0:
                sid = next_sid
                open_v[r] = sid
                next_sid += 1
                cnt_v[r] = 0
                last_v[r] = end_ns
                has_v[r] = 1
            cnt_v[r] += 1
            nrr = <uint64_t>rr.nr_v[k]
            if <uint64_t>cnt_v[r] == nrr:
                open_v[r] = -1
            sid_v[row] = sid
            rec_v[row] = r
            row += 1
        err = rr.error(buf, path, line0)
        if err is not None:
            raise err
        line0 += rr.nlines
    nrec = len(targets)
    for i in range(nrec):
        st.open_sid[i] = int(open_v[i])
        st.count[i] = int(cnt_v[i])
        st.last_end[i] = int(last_v[i]) if has_v[i] else None
    st.next_sid = next_sid
    st.line_no = line0

    def cat(name):
        arrs = [getattr(p, name)[:(<_Rows>p).n] for p, _ in parts]
        return arrs[0] if len(arrs) == 1 else np.concatenate(arrs)
    rows = {"end_ns": cat("end_a"), "nr_regions": cat("nr_a"), "start": cat("s_a"),
            "end": cat("e_a"), "nr_accesses": cat("acc_a"), "age": cat("age_a"),
            "sid": sid_a, "rec": rec_a}
    return body, rows
