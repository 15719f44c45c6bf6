# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled parsing kernels of damo-pipe's readers (the Cython engine).

Each kernel has a pure-Python reference twin with the same contract:

* :func:`binary_scan`  <-> ``damo_pipe.formats.binary.py_binary_scan``
* :func:`trace_scan`   <-> ``damo_pipe.formats.trace_text.py_trace_scan``
* :func:`json_regions_scan` <-> the region loop of ``damo_pipe.formats.damo_json``

Every cursor step is checked against the buffer end before the byte is read; no
allocation is sized from a count read in the file before the bytes that count
describes have been verified to exist.
"""
from libc.stdint cimport int64_t, uint64_t, uint32_t, int32_t, uint8_t
from libc.string cimport memcpy, memchr
from libc.stdlib cimport strtod, malloc, free

import numpy as np

from damo_pipe.errors import RecordFormatError

cdef extern from *:
    """
    #include <stdint.h>
    static inline int dp_end_ns(int64_t sec, int64_t nsec, int64_t *out) {
        __int128 v = (__int128)sec * 1000000000 + (__int128)nsec;
        if (v > (__int128)INT64_MAX || v < (__int128)INT64_MIN) return -1;
        *out = (int64_t)v;
        return 0;
    }
    """
    int dp_end_ns(int64_t sec, int64_t nsec, int64_t *out) nogil

DEF AGE_UNKNOWN = -1


# ======================================================================= binary

cdef inline uint32_t _ld_u32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v

cdef inline int32_t _ld_i32(const uint8_t* p) noexcept nogil:
    cdef int32_t v
    memcpy(&v, p, 4)
    return v

cdef inline uint64_t _ld_u64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v

cdef inline int64_t _ld_i64(const uint8_t* p) noexcept nogil:
    cdef int64_t v
    memcpy(&v, p, 8)
    return v


def binary_scan(buf, Py_ssize_t pos, int version, Py_ssize_t max_regions, path=None):
    """Parse whole blocks of a legacy binary record from ``pos`` (see binary.py).

    Returns (next_pos, tids list, ends list, nrs list, block offsets list,
    start uint64[], end uint64[], nr_accesses int64[]).
    """
    cdef const uint8_t[::1] mv = buf
    cdef Py_ssize_t n = mv.shape[0]
    cdef const uint8_t* b = &mv[0] if n > 0 else NULL
    cdef Py_ssize_t p, q, tid_sz = 4 if version == 1 else 8
    cdef Py_ssize_t total = 0, nsnap = 0, i, k
    cdef uint32_t nr_targets, nr, t
    cdef int64_t end_ns
    cdef int err = 0
    cdef Py_ssize_t err_off = 0
    cdef Py_ssize_t end_pos
    # pass 1: validate and count (no allocation sized from file counts)
    p = pos
    with nogil:
        while n - p >= 16 and (total < max_regions or nsnap == 0):
            if dp_end_ns(_ld_i64(b + p), _ld_i64(b + p + 8), &end_ns) != 0:
                err = 1; err_off = p; break
            q = p + 16
            if n - q < 4:
                err = 2; err_off = q; break
            nr_targets = _ld_u32(b + q)
            q += 4
            t = 0
            while t < nr_targets:
                if n - q < tid_sz + 4:
                    err = 3; err_off = q; break
                nr = _ld_u32(b + q + tid_sz)
                q += tid_sz + 4
                if (n - q) // 20 < <Py_ssize_t>nr:
                    err = 4; err_off = q; break
                q += <Py_ssize_t>nr * 20
                total += nr
                nsnap += 1
                t += 1
            if err:
                break
            p = q
    if err == 1:
        raise RecordFormatError("snapshot time out of range", path=path, offset=err_off)
    if err == 2:
        raise RecordFormatError("truncated block header (nr_targets)", path=path, offset=err_off)
    if err == 3:
        raise RecordFormatError("truncated target header", path=path, offset=err_off)
    if err == 4:
        nr = _ld_u32(b + err_off - 4)
        raise RecordFormatError("truncated region list (%d regions announced, %d bytes left)"
                                % (nr, n - err_off), path=path, offset=err_off)
    end_pos = p
    tids_a = np.empty(nsnap, np.int64 if version == 1 else np.uint64)
    ends_a = np.empty(nsnap, np.int64)
    nrs_a = np.empty(nsnap, np.int64)
    offs_a = np.empty(nsnap, np.int64)
    s_a = np.empty(total, np.uint64)
    e_a = np.empty(total, np.uint64)
    a_a = np.empty(total, np.int64)
    cdef int64_t[::1] ends_v = ends_a, nrs_v = nrs_a, offs_v = offs_a, a_v = a_a
    cdef uint64_t[::1] s_v = s_a, e_v = e_a
    cdef int64_t[::1] tid_i = tids_a if version == 1 else np.empty(0, np.int64)
    cdef uint64_t[::1] tid_u = tids_a if version != 1 else np.empty(0, np.uint64)
    cdef Py_ssize_t si = 0, ri = 0
    p = pos
    with nogil:
        while p < end_pos:
            dp_end_ns(_ld_i64(b + p), _ld_i64(b + p + 8), &end_ns)
            q = p + 16
            nr_targets = _ld_u32(b + q)
            q += 4
            for t in range(nr_targets):
                if version == 1:
                    tid_i[si] = _ld_i32(b + q)
                else:
                    tid_u[si] = _ld_u64(b + q)
                nr = _ld_u32(b + q + tid_sz)
                q += tid_sz + 4
                ends_v[si] = end_ns
                nrs_v[si] = nr
                offs_v[si] = p
                for i in range(nr):
                    s_v[ri] = _ld_u64(b + q)
                    e_v[ri] = _ld_u64(b + q + 8)
                    a_v[ri] = _ld_u32(b + q + 16)
                    q += 20
                    ri += 1
                si += 1
            p = q
    return (end_pos, tids_a.tolist(), ends_a.tolist(), nrs_a.tolist(), offs_a.tolist(),
            s_a, e_a, a_a)


# ======================================================================= trace text

cdef uint8_t _WS_TAB[256]
for _i in range(256):
    _WS_TAB[_i] = 2 if _i == 10 else (1 if (_i == 32 or 9 <= _i <= 13) else 0)

cdef inline bint _ws(uint8_t c) noexcept nogil:
    return _WS_TAB[c]

cdef double _POW10[23]
_POW10[0] = 1.0
for _i in range(1, 23):
    _POW10[_i] = _POW10[_i - 1] * 10.0

cdef inline int _fast_ts(const uint8_t* s, Py_ssize_t n, double* out) noexcept nogil:
    """Correctly rounded decimal -> double for <= 15 significant digits (exact integer
    mantissa divided by an exact power of ten: one IEEE rounding, as strtod).
    Returns 0 when it does not apply."""
    cdef uint64_t m = 0
    cdef int nd = 0, frac = 0
    cdef bint dot = False
    cdef Py_ssize_t i
    cdef uint8_t c
    for i in range(n):
        c = s[i]
        if c == 46:
            dot = True
            continue
        if m == 0 and c == 48:
            if dot:
                frac += 1
            continue
        nd += 1
        if nd > 15:
            return 0
        m = m * 10 + (c - 48)
        if dot:
            frac += 1
    if frac > 22:
        return 0
    out[0] = (<double>m) / _POW10[frac]
    return 1

DEF MAXTOK = 16

cdef inline int _parse_u64(const uint8_t* s, Py_ssize_t n, uint64_t* out) noexcept nogil:
    """digits only, no overflow; 0 ok, -1 bad"""
    cdef uint64_t v = 0, d
    cdef Py_ssize_t i
    if n <= 0:
        return -1
    for i in range(n):
        d = s[i] - 48
        if d > 9:
            return -1
        if v > 1844674407370955161ULL or (v == 1844674407370955161ULL and d > 5):
            return -2
        v = v * 10 + d
    out[0] = v
    return 0

cdef inline int _parse_i64(const uint8_t* s, Py_ssize_t n, int64_t* out) noexcept nogil:
    cdef bint neg = False
    cdef uint64_t v
    cdef int rc
    if n > 0 and s[0] == 45:  # '-'
        neg = True
        s += 1
        n -= 1
    rc = _parse_u64(s, n, &v)
    if rc != 0:
        return rc
    if neg:
        if v > 9223372036854775808ULL:
            return -2
        out[0] = -(<int64_t>(v - 1)) - 1 if v else 0
    else:
        if v > 9223372036854775807ULL:
            return -2
        out[0] = <int64_t>v
    return 0

cdef inline int _ts_ok(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """[0-9]+(.[0-9]*)? | .[0-9]+"""
    cdef Py_ssize_t i, nd = 0, ndot = 0
    if n <= 0:
        return 0
    for i in range(n):
        if 48 <= s[i] <= 57:
            nd += 1
        elif s[i] == 46:
            ndot += 1
            if ndot > 1:
                return 0
        else:
            return 0
    if nd == 0:
        return 0
    if s[0] == 46 and n < 2:
        return 0
    return 1

cdef inline bint _eq(const uint8_t* s, Py_ssize_t n, const char* lit, Py_ssize_t ln) noexcept nogil:
    cdef Py_ssize_t i
    if n != ln:
        return False
    for i in range(n):
        if s[i] != <uint8_t>lit[i]:
            return False
    return True


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
        self.err.code = 0

    def run(self, data, Py_ssize_t lo, Py_ssize_t hi):
        cdef const uint8_t[::1] mv = data
        cdef Py_ssize_t nb = mv.shape[0]
        if not (0 <= lo <= hi <= nb):
            raise ValueError("bad range")
        if hi == lo:
            return
        with nogil:
            self._tok(&mv[0], lo, hi)

    cdef void _tok(self, const uint8_t* b, Py_ssize_t pos, Py_ssize_t body) noexcept nogil:
        cdef Py_ssize_t line = 0, j, ntok, ts_idx, nf, f0, lend, row = 0
        cdef Py_ssize_t ts_s[MAXTOK]
        cdef Py_ssize_t ts_e[MAXTOK]
        cdef Py_ssize_t cap = self.end_v.shape[0]
        cdef const uint8_t* tp
        cdef Py_ssize_t tl, ev_s, ev_l, k, dash
        cdef Py_ssize_t tidf = 0, nrf = 0, rngf = 0, accf = 0, agef = 0
        cdef int kind, rc
        cdef uint64_t tid, nrr, rs, re_
        cdef int64_t acc, age
        cdef double d
        cdef char tsbuf[128]
        cdef char* big
        cdef uint8_t t
        cdef bint eol
        while pos < body:
            line += 1
            ntok = 0
            j = pos
            eol = False
            while True:
                while j < body:
                    t = _WS_TAB[b[j]]
                    if t == 0:
                        break
                    if t == 2:
                        eol = True
                        break
                    j += 1
                if eol or j >= body:
                    break
                if ntok < MAXTOK:
                    ts_s[ntok] = j
                j += 1
                while j < body and _WS_TAB[b[j]] == 0:
                    j += 1
                if ntok < MAXTOK:
                    ts_e[ntok] = j
                ntok += 1
            lend = j
            pos = lend + 1
            if ntok < 4:
                continue
            ts_idx = 2 if b[ts_e[2] - 1] == 58 else 3
            if ntok <= ts_idx + 1:
                continue
            ev_s = ts_s[ts_idx + 1]
            ev_l = ts_e[ts_idx + 1] - ev_s - 1
            if ev_l >= 6 and _eq(b + ev_s, 6, b"damon:", 6):
                ev_s += 6
                ev_l -= 6
            nf = ntok - ts_idx - 2
            f0 = ts_idx + 2
            kind = 0
            if nf == 4 or nf == 5:
                if _eq(b + ev_s, ev_l, b"damon_aggregated", 16):
                    kind = nf
                    tidf = f0; nrf = f0 + 1; rngf = f0 + 2; accf = f0 + 3; agef = f0 + 4
            elif nf == 7:
                if _eq(b + ev_s, ev_l, b"damos_before_apply", 18):
                    kind = 7
                    tidf = f0 + 2; nrf = f0 + 3; rngf = f0 + 4; accf = f0 + 5; agef = f0 + 6
            if kind == 0 or f0 + nf > MAXTOK:
                continue
            # timestamp
            tp = b + ts_s[ts_idx]
            tl = ts_e[ts_idx] - ts_s[ts_idx] - 1
            if not _ts_ok(tp, tl):
                self._fail(1, line, ts_s[ts_idx], ts_s[ts_idx] + tl); break
            if _fast_ts(tp, tl, &d):
                pass
            elif tl < 127:
                memcpy(tsbuf, tp, tl)
                tsbuf[tl] = 0
                d = strtod(tsbuf, NULL)
            else:
                big = <char*>malloc(tl + 1)
                if big == NULL:
                    self._fail(2, line, ts_s[ts_idx], ts_s[ts_idx] + tl); break
                memcpy(big, tp, tl)
                big[tl] = 0
                d = strtod(big, NULL)
                free(big)
            d = d * 1e9
            if not (d < 9223372036854775808.0):
                self._fail(2, line, ts_s[ts_idx], ts_s[ts_idx] + tl); break
            # target id
            tp = b + ts_s[tidf]
            tl = ts_e[tidf] - ts_s[tidf]
            k = 0
            while k < tl and tp[k] != 61:
                k += 1
            if k >= tl:
                self._fail(3, line, ts_s[tidf], ts_e[tidf]); break
            if _parse_u64(tp + k + 1, tl - k - 1, &tid) != 0:
                self._fail(4, line, ts_s[tidf] + k + 1, ts_e[tidf]); break
            # nr_regions
            tp = b + ts_s[nrf]
            tl = ts_e[nrf] - ts_s[nrf]
            k = 0
            while k < tl and tp[k] != 61:
                k += 1
            if k >= tl:
                self._fail(5, line, ts_s[nrf], ts_e[nrf]); break
            rc = _parse_u64(tp + k + 1, tl - k - 1, &nrr)
            if rc != 0 or nrr > 9223372036854775807ULL:
                self._fail(6, line, ts_s[nrf] + k + 1, ts_e[nrf]); break
            # range
            tp = b + ts_s[rngf]
            tl = ts_e[rngf] - ts_s[rngf] - 1
            dash = 0
            while dash < tl and tp[dash] != 45:
                dash += 1
            if dash >= tl:
                self._fail(7, line, ts_s[rngf], ts_s[rngf] + (tl if tl > 0 else 0)); break
            if _parse_u64(tp, dash, &rs) != 0:
                self._fail(8, line, ts_s[rngf], ts_s[rngf] + dash); break
            if _parse_u64(tp + dash + 1, tl - dash - 1, &re_) != 0:
                self._fail(9, line, ts_s[rngf] + dash + 1, ts_s[rngf] + tl); break
            # nr_accesses, age
            tp = b + ts_s[accf]
            tl = ts_e[accf] - ts_s[accf]
            if _parse_i64(tp, tl, &acc) != 0:
                self._fail(10, line, ts_s[accf], ts_e[accf]); break
            if kind == 4:
                age = AGE_UNKNOWN
            else:
                tp = b + ts_s[agef]
                tl = ts_e[agef] - ts_s[agef]
                if _eq(tp, tl, b"None", 4):
                    age = AGE_UNKNOWN
                elif _parse_i64(tp, tl, &age) != 0:
                    self._fail(11, line, ts_s[agef], ts_e[agef]); break
            if row >= cap:
                self._fail(12, line, 0, 0); break
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
        cdef int code = self.err.code
        if code == 0:
            return None
        tok = bytes(data[self.err.a:self.err.b]).decode("latin-1")
        msg = {1: "bad timestamp %r", 2: "timestamp %s out of range", 3: "bad target field %r",
               4: "bad target id %r", 5: "bad nr_regions field %r", 6: "bad nr_regions %r",
               7: "bad address range %r", 8: "bad region start %r", 9: "bad region end %r",
               10: "bad nr_accesses %r", 11: "bad age %r", 12: "internal row overflow%.0s"}[code]
        return RecordFormatError(msg % tok, path=path, line=line0 + self.err.line)


DEF PARALLEL_MIN = 1 << 20


def trace_scan(data, st, bint final, path=None):
    """Cython twin of ``trace_text.py_trace_scan`` (same rows, same state updates).

    Lines are tokenized and parsed without the GIL; a buffer of >= 1 MiB is split at a
    newline and its halves parsed by two threads.  The grouping state machine then runs
    over the rows in order.
    """
    cdef const uint8_t[::1] mv = data
    cdef Py_ssize_t n = mv.shape[0]
    cdef const uint8_t* b = &mv[0] if n > 0 else NULL
    cdef Py_ssize_t body = n, i, mid
    if not final:
        body = 0
        i = n - 1
        while i >= 0:
            if b[i] == 10:
                body = i + 1
                break
            i -= 1
    parts = []
    if body >= PARALLEL_MIN:
        mid = body // 2
        while mid < body and b[mid - 1] != 10:
            mid += 1
        r1 = _Rows(mid // 14 + 2)
        r2 = _Rows((body - mid) // 14 + 2)
        import threading
        th = threading.Thread(target=r2.run, args=(data, mid, body))
        th.start()
        try:
            r1.run(data, 0, mid)
        finally:
            th.join()
        parts = [r1, r2]
    else:
        r1 = _Rows(body // 14 + 2)
        r1.run(data, 0, body)
        parts = [r1]

    # grouping over the rows, in order
    cdef Py_ssize_t total = 0
    cdef _Rows rp
    for rp in parts:
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
    for rr in parts:
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
        err = rr.error(data, path, line0)
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
        arrs = [getattr(p, name)[:(<_Rows>p).n] for p in parts]
        return arrs[0] if len(arrs) == 1 else np.concatenate(arrs)
    rows = {"end_ns": cat("end_a"), "nr_regions": cat("nr_a"), "start": cat("s_a"),
            "end": cat("e_a"), "nr_accesses": cat("acc_a"), "age": cat("age_a"),
            "sid": sid_a, "rec": rec_a}
    return body, rows


# ======================================================================= JSON regions

DEF J_DONE = 0       # the regions array ended (pos is after ']')
DEF J_MORE = 1       # data ends inside a region (pos = start of that region)
DEF J_UNUSUAL = 2    # a region the fast path does not handle (pos = its '{')
DEF J_FULL = 3       # output arrays full (pos = start of the next region)

cdef inline bint _jws(uint8_t c) noexcept nogil:
    return c == 32 or c == 10 or c == 13 or c == 9

cdef inline Py_ssize_t _skip_ws(const uint8_t* b, Py_ssize_t p, Py_ssize_t n) noexcept nogil:
    """Skip JSON whitespace; runs of spaces (indentation) 8 bytes at a time."""
    cdef uint64_t w
    cdef uint8_t c
    while p < n:
        c = b[p]
        if c == 32:
            while n - p >= 8:
                memcpy(&w, b + p, 8)
                if w != 0x2020202020202020ULL:
                    break
                p += 8
            while p < n and b[p] == 32:
                p += 1
            continue
        if c == 10 or c == 13 or c == 9:
            p += 1
            continue
        break
    return p

# value kinds returned by _scalar
DEF V_NULL = 0
DEF V_UINT = 1       # unsigned integer (JSON number or digit/comma string)
DEF V_NEG = 2        # negative JSON integer
DEF V_OTHER = 3      # any other scalar that was skipped (string / number / bool)
DEF V_BAD = -1       # not handled by the fast path
DEF V_EOF = -2       # data ended

cdef inline int _scalar(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n, uint64_t* out,
                        bint want, bint allow_b=False) noexcept nogil:
    """Parse a scalar at pp[0]; advance pp.  Strings of digits and commas and JSON
    integers give V_UINT; 'N B' strings give V_UINT too (sz_filter_passed)."""
    cdef Py_ssize_t p = pp[0]
    cdef uint64_t v = 0, d
    cdef bint any_digit = False, neg = False, other = False
    cdef uint8_t c
    if p >= n:
        return V_EOF
    c = b[p]
    if c == 110:  # null
        if n - p < 4:
            return V_EOF
        if b[p + 1] == 117 and b[p + 2] == 108 and b[p + 3] == 108:
            pp[0] = p + 4
            return V_NULL
        return V_BAD
    if c == 34:  # string
        p += 1
        while True:
            if p >= n:
                return V_EOF
            c = b[p]
            if c == 34:
                break
            if c == 92 or c < 32:
                return V_BAD
            if 48 <= c <= 57:
                d = c - 48
                if v > 1844674407370955161ULL or (v == 1844674407370955161ULL and d > 5):
                    other = True
                else:
                    v = v * 10 + d
                any_digit = True
            elif c == 44:  # ','
                pass
            elif allow_b and c == 32 and p + 2 < n and b[p + 1] == 66 and b[p + 2] == 34 and any_digit:
                p += 2  # "<digits> B"
                continue
            else:
                other = True
            p += 1
        pp[0] = p + 1
        if other or not any_digit:
            return V_OTHER if not want else V_BAD
        out[0] = v
        return V_UINT
    if c == 45 or 48 <= c <= 57:  # number
        if c == 45:
            neg = True
            p += 1
        while p < n and 48 <= b[p] <= 57:
            d = b[p] - 48
            if v > 1844674407370955161ULL or (v == 1844674407370955161ULL and d > 5):
                other = True
            else:
                v = v * 10 + d
            any_digit = True
            p += 1
        if p >= n:
            return V_EOF
        c = b[p]
        if c == 46 or c == 101 or c == 69:  # fraction / exponent
            other = True
            while p < n and (48 <= b[p] <= 57 or b[p] == 46 or b[p] == 101 or b[p] == 69
                             or b[p] == 43 or b[p] == 45):
                p += 1
            if p >= n:
                return V_EOF
        pp[0] = p
        if not any_digit:
            return V_BAD
        if other:
            return V_OTHER if not want else V_BAD
        out[0] = v
        if neg:
            if v > 9223372036854775808ULL:
                return V_OTHER if not want else V_BAD
            return V_NEG
        return V_UINT
    if c == 116 or c == 102:  # true / false
        return V_BAD
    return V_BAD


cdef inline int _key(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n) noexcept nogil:
    """Read '"key"' ws ':' ws at pp[0]; return key id (0 unknown, <0 eof/bad)."""
    cdef Py_ssize_t p = pp[0], s, l
    cdef int kid = 0
    if p >= n:
        return -2
    if b[p] != 34:
        return -1
    s = p + 1
    p = s
    while p < n and b[p] != 34:
        if b[p] == 92:
            return -1
        p += 1
    if p >= n:
        return -2
    l = p - s
    p = _skip_ws(b, p + 1, n)
    if p >= n:
        return -2
    if b[p] != 58:
        return -1
    p = _skip_ws(b, p + 1, n)
    if p >= n:
        return -2
    pp[0] = p
    if _eq(b + s, l, b"start", 5): return 1
    if _eq(b + s, l, b"end", 3): return 2
    if _eq(b + s, l, b"nr_accesses", 11): return 3
    if _eq(b + s, l, b"age", 3): return 4
    if _eq(b + s, l, b"probe_hits", 10): return 5
    if _eq(b + s, l, b"sz_filter_passed", 16): return 6
    if _eq(b + s, l, b"samples", 7): return 7
    if _eq(b + s, l, b"percent", 7): return 8
    if _eq(b + s, l, b"usec", 4): return 9
    if _eq(b + s, l, b"aggr_intervals", 14): return 10
    return 0


cdef int _one_region(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n, uint64_t* o_s,
                     uint64_t* o_e, int64_t* o_acc, int64_t* o_age, uint64_t* o_pass) noexcept nogil:
    """Parse one region object at pp[0] (which is '{').  0 ok, J_MORE, J_UNUSUAL."""
    cdef Py_ssize_t p = pp[0]
    cdef int kid, k2, vk
    cdef uint64_t v
    cdef bint has_s = False, has_e = False, has_acc = False, has_age = False
    cdef int64_t acc = 0, age = -1
    cdef uint64_t passed = 0, s = 0, e = 0
    p = _skip_ws(b, p + 1, n)
    if p >= n:
        return J_MORE
    if b[p] == 125:
        return J_UNUSUAL  # {} -> let the reference raise
    while True:
        kid = _key(b, &p, n)
        if kid == -2:
            return J_MORE
        if kid <= 0:
            return J_UNUSUAL
        if kid == 1 or kid == 2 or kid == 6:
            vk = _scalar(b, &p, n, &v, True, True)
            if vk == V_EOF:
                return J_MORE
            if vk != V_UINT:
                return J_UNUSUAL
            if kid == 1:
                s = v; has_s = True
            elif kid == 2:
                e = v; has_e = True
            else:
                passed = v
        elif kid == 3 or kid == 4:
            if b[p] != 123:
                return J_UNUSUAL
            p = _skip_ws(b, p + 1, n)
            if p >= n:
                return J_MORE
            if b[p] != 125:
                while True:
                    k2 = _key(b, &p, n)
                    if k2 == -2:
                        return J_MORE
                    if kid == 3 and k2 == 7:
                        vk = _scalar(b, &p, n, &v, True)
                        if vk == V_UINT:
                            if v > 9223372036854775807ULL:
                                return J_UNUSUAL
                            acc = <int64_t>v
                        elif vk == V_NEG:
                            acc = -(<int64_t>(v - 1)) - 1 if v else 0
                        elif vk == V_NULL:
                            acc = 0
                        elif vk == V_EOF:
                            return J_MORE
                        else:
                            return J_UNUSUAL
                    elif kid == 4 and k2 == 10:
                        vk = _scalar(b, &p, n, &v, True)
                        if vk == V_UINT:
                            if v > 9223372036854775807ULL:
                                return J_UNUSUAL
                            age = <int64_t>v
                        elif vk == V_NULL:
                            age = -1
                        elif vk == V_EOF:
                            return J_MORE
                        else:
                            return J_UNUSUAL
                    elif (kid == 3 and k2 == 8) or (kid == 4 and k2 == 9):
                        # a stated percent / usec is kept by the reference converter
                        vk = _scalar(b, &p, n, &v, False)
                        if vk == V_EOF:
                            return J_MORE
                        if vk != V_NULL:
                            return J_UNUSUAL
                    else:
                        return J_UNUSUAL
                    p = _skip_ws(b, p, n)
                    if p >= n:
                        return J_MORE
                    if b[p] == 44:
                        p = _skip_ws(b, p + 1, n)
                        continue
                    if b[p] == 125:
                        break
                    return J_UNUSUAL
            p += 1
            if kid == 3:
                has_acc = True
            else:
                has_age = True
        elif kid == 5:
            if b[p] != 91:
                return J_UNUSUAL
            p = _skip_ws(b, p + 1, n)
            if p >= n:
                return J_MORE
            if b[p] != 93:
                return J_UNUSUAL  # non-empty probe_hits: reference path
            p += 1
        else:
            return J_UNUSUAL
        p = _skip_ws(b, p, n)
        if p >= n:
            return J_MORE
        if b[p] == 44:
            p = _skip_ws(b, p + 1, n)
            continue
        if b[p] == 125:
            p += 1
            break
        return J_UNUSUAL
    if not (has_s and has_e) or (has_acc and not has_age):
        return J_UNUSUAL
    if not has_acc:
        acc = 0
        age = -1
    o_s[0] = s
    o_e[0] = e
    o_acc[0] = acc
    o_age[0] = age
    o_pass[0] = passed
    pp[0] = p
    return 0



# ---- template fast path: damo's exact indent=4 layout, constant parts by memcmp

from libc.string cimport memcmp

DEF TMPL_MAXI = 64
DEF TMPL_NSEG = 8
DEF TMPL_SEGMAX = 256

cdef struct Tmpl:
    int indent
    Py_ssize_t seglen[TMPL_NSEG]
    char seg[TMPL_NSEG][TMPL_SEGMAX]

cdef void _tmpl_build(Tmpl* t, int I) noexcept nogil:
    cdef int k
    t.indent = I
    for k in range(TMPL_NSEG):
        t.seglen[k] = 0
    _tcat(t, 0, b"{\n", 2); _tsp(t, 0, I + 4); _tcat(t, 0, b"\"start\": \"", 10)
    _tcat(t, 1, b"\",\n", 3); _tsp(t, 1, I + 4); _tcat(t, 1, b"\"end\": \"", 8)
    _tcat(t, 2, b"\",\n", 3); _tsp(t, 2, I + 4); _tcat(t, 2, b"\"nr_accesses\": {\n", 17)
    _tsp(t, 2, I + 8); _tcat(t, 2, b"\"samples\": ", 11)
    _tcat(t, 3, b",\n", 2); _tsp(t, 3, I + 8); _tcat(t, 3, b"\"percent\": ", 11)
    _tcat(t, 4, b"\n", 1); _tsp(t, 4, I + 4); _tcat(t, 4, b"},\n", 3); _tsp(t, 4, I + 4)
    _tcat(t, 4, b"\"age\": {\n", 9); _tsp(t, 4, I + 8); _tcat(t, 4, b"\"usec\": ", 8)
    _tcat(t, 5, b",\n", 2); _tsp(t, 5, I + 8); _tcat(t, 5, b"\"aggr_intervals\": ", 18)
    _tcat(t, 6, b"\n", 1); _tsp(t, 6, I + 4); _tcat(t, 6, b"},\n", 3); _tsp(t, 6, I + 4)
    _tcat(t, 6, b"\"probe_hits\": [],\n", 18); _tsp(t, 6, I + 4)
    _tcat(t, 6, b"\"sz_filter_passed\": \"", 21)
    _tcat(t, 7, b"\"\n", 2); _tsp(t, 7, I); _tcat(t, 7, b"}", 1)

cdef inline void _tcat(Tmpl* t, int k, const char* s, Py_ssize_t l) noexcept nogil:
    memcpy(&t.seg[k][t.seglen[k]], s, l)
    t.seglen[k] += l

cdef inline void _tsp(Tmpl* t, int k, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        t.seg[k][t.seglen[k] + i] = 32
    t.seglen[k] += n

cdef inline int _tseg(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n, Tmpl* t, int k) noexcept nogil:
    cdef Py_ssize_t l = t.seglen[k]
    if n - pp[0] < l:
        # data ends: "more needed" only if what is there still matches
        if memcmp(b + pp[0], t.seg[k], n - pp[0]) != 0:
            return -1
        return 1
    if memcmp(b + pp[0], t.seg[k], l) != 0:
        return -1
    pp[0] += l
    return 0

cdef inline int _tnum_str(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n, uint64_t* out,
                          bint allow_b) noexcept nogil:
    """digits and commas up to the closing quote (not consumed); -1 mismatch, 1 eof"""
    cdef Py_ssize_t p = pp[0]
    cdef uint64_t v = 0, d
    cdef bint any_digit = False
    cdef uint8_t c
    while True:
        if p >= n:
            return 1
        c = b[p]
        if 48 <= c <= 57:
            d = c - 48
            if v > 1844674407370955161ULL or (v == 1844674407370955161ULL and d > 5):
                return -1
            v = v * 10 + d
            any_digit = True
        elif c == 44:
            pass
        elif c == 34:
            break
        elif allow_b and c == 32 and any_digit:
            if n - p < 3:
                return 1
            if b[p + 1] == 66 and b[p + 2] == 34:
                p += 2
                break
            return -1
        else:
            return -1
        p += 1
    if not any_digit:
        return -1
    pp[0] = p
    out[0] = v
    return 0

cdef inline int _tnull(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n) noexcept nogil:
    if n - pp[0] < 4:
        if memcmp(b + pp[0], b"null", n - pp[0]) != 0:
            return -1
        return 1
    if b[pp[0]] == 110 and b[pp[0] + 1] == 117 and b[pp[0] + 2] == 108 and b[pp[0] + 3] == 108:
        pp[0] += 4
        return 0
    return -1

cdef int _tmpl_region(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n, Tmpl* t, uint64_t* o_s,
                      uint64_t* o_e, int64_t* o_acc, int64_t* o_age, uint64_t* o_pass) noexcept nogil:
    """0 ok, 1 data ends, -1 not the template (use the generic parser)."""
    cdef Py_ssize_t p = pp[0]
    cdef int rc
    cdef uint64_t v, s, e, passed
    cdef int64_t acc, age
    cdef bint neg = False
    rc = _tseg(b, &p, n, t, 0)
    if rc: return rc
    rc = _tnum_str(b, &p, n, &s, True)
    if rc: return rc
    rc = _tseg(b, &p, n, t, 1)
    if rc: return rc
    rc = _tnum_str(b, &p, n, &e, True)
    if rc: return rc
    rc = _tseg(b, &p, n, t, 2)
    if rc: return rc
    # samples: JSON integer
    if p >= n: return 1
    if b[p] == 45:
        neg = True
        p += 1
    v = 0
    rc = 0
    while p < n and 48 <= b[p] <= 57:
        if v > 922337203685477579ULL:
            return -1
        v = v * 10 + (b[p] - 48)
        rc += 1
        p += 1
    if p >= n: return 1
    if rc == 0 or v > 9223372036854775807ULL:
        return -1
    acc = -<int64_t>v if neg else <int64_t>v
    rc = _tseg(b, &p, n, t, 3)
    if rc: return rc
    rc = _tnull(b, &p, n)
    if rc: return rc
    rc = _tseg(b, &p, n, t, 4)
    if rc: return rc
    rc = _tnull(b, &p, n)
    if rc: return rc
    rc = _tseg(b, &p, n, t, 5)
    if rc: return rc
    if p >= n: return 1
    if b[p] == 110:
        rc = _tnull(b, &p, n)
        if rc: return rc
        age = -1
    elif b[p] == 34:
        p += 1
        rc = _tnum_str(b, &p, n, &v, False)
        if rc: return rc
        if v > 9223372036854775807ULL:
            return -1
        age = <int64_t>v
        p += 1
    else:
        return -1
    rc = _tseg(b, &p, n, t, 6)
    if rc: return rc
    rc = _tnum_str(b, &p, n, &passed, True)
    if rc: return rc
    rc = _tseg(b, &p, n, t, 7)
    if rc: return rc
    o_s[0] = s
    o_e[0] = e
    o_acc[0] = acc
    o_age[0] = age
    o_pass[0] = passed
    pp[0] = p
    return 0


def json_regions_scan(buf, Py_ssize_t pos, Py_ssize_t count, out_start, out_end, out_acc,
                      out_age, out_passed, int mode):
    """Parse region objects of a damo JSON ``regions`` array.

    ``mode``: 1 = ``pos`` is just after the '[' (a region or ']' follows); 0 = a region
    follows (after a ','); 2 = a region just ended (',' or ']' follows).  Regions are
    written at rows ``count..`` of the out arrays.  Returns (status, pos, count, mode)
    with the J_* status codes; on J_MORE / J_FULL resume with the returned pos and mode.
    """
    cdef const uint8_t[::1] mv = buf
    cdef Py_ssize_t n = mv.shape[0]
    cdef const uint8_t* b = &mv[0] if n > 0 else NULL
    cdef uint64_t[::1] os_ = out_start, oe = out_end, opass = out_passed
    cdef int64_t[::1] oacc = out_acc, oage = out_age
    cdef Py_ssize_t cap = os_.shape[0]
    cdef Py_ssize_t p = pos, rstart, ind
    cdef int rc = -1, trc
    cdef Tmpl tm
    tm.indent = -1
    if oe.shape[0] < cap or opass.shape[0] < cap or oacc.shape[0] < cap or oage.shape[0] < cap:
        raise ValueError("output arrays of different lengths")
    if count < 0 or count > cap or pos < 0 or pos > n:
        raise ValueError("bad position or count")
    with nogil:
        while True:
            p = _skip_ws(b, p, n)
            if p >= n:
                rc = J_MORE
                break
            if mode == 2 or (mode == 1 and b[p] == 93):
                if b[p] == 44 and mode == 2:
                    p += 1
                    mode = 0
                    continue
                if b[p] == 93:
                    p += 1
                    rc = J_DONE
                    break
                rc = J_UNUSUAL
                break
            # a region
            if b[p] != 123:
                rc = J_UNUSUAL
                break
            if count >= cap:
                rc = J_FULL
                break
            rstart = p
            # indentation of this region: spaces back to the previous newline
            ind = 0
            while ind < TMPL_MAXI and rstart - ind - 1 >= 0 and b[rstart - ind - 1] == 32:
                ind += 1
            trc = -1
            if ind < TMPL_MAXI and rstart - ind - 1 >= 0 and b[rstart - ind - 1] == 10:
                if tm.indent != ind:
                    _tmpl_build(&tm, ind)
                trc = _tmpl_region(b, &p, n, &tm, &os_[count], &oe[count], &oacc[count],
                                   &oage[count], &opass[count])
                if trc == 1:
                    p = rstart
                    rc = J_MORE
                    break
            if trc != 0:
                p = rstart
                rc = _one_region(b, &p, n, &os_[count], &oe[count], &oacc[count], &oage[count],
                                 &opass[count])
                if rc != 0:
                    p = rstart
                    break
            count += 1
            mode = 2
    return rc, p, count, mode


# ======================================================================= JSON writer

cdef inline Py_ssize_t _put(uint8_t* o, Py_ssize_t q, const char* s, Py_ssize_t l) noexcept nogil:
    memcpy(o + q, s, l)
    return q + l

cdef inline Py_ssize_t _put_sp(uint8_t* o, Py_ssize_t q, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        o[q + i] = 32
    return q + n

cdef inline Py_ssize_t _put_u64(uint8_t* o, Py_ssize_t q, uint64_t v, bint commas) noexcept nogil:
    cdef char tmp[32]
    cdef int n = 0, i, k
    if v == 0:
        o[q] = 48
        return q + 1
    while v:
        tmp[n] = <char>(48 + v % 10)
        v //= 10
        n += 1
    # tmp holds digits reversed; emit with a comma every 3 digits from the right
    for i in range(n - 1, -1, -1):
        o[q] = <uint8_t>tmp[i]
        q += 1
        if commas and i and i % 3 == 0:
            o[q] = 44
            q += 1
    return q

cdef inline Py_ssize_t _put_i64(uint8_t* o, Py_ssize_t q, int64_t v, bint commas) noexcept nogil:
    if v < 0:
        o[q] = 45
        q += 1
        return _put_u64(o, q, <uint64_t>(-(v + 1)) + 1, commas)
    return _put_u64(o, q, <uint64_t>v, commas)


def json_regions_text(const uint64_t[::1] start, const uint64_t[::1] end,
                      const int64_t[::1] acc, const int64_t[::1] age,
                      const uint64_t[::1] passed, list sz_texts=None):
    """damo's json.dumps(indent=4) text of region objects (at the regions-list indent,
    joined by ',\\n') for regions with null percent/usec and no probe hits.

    ``sz_filter_passed`` is written as '%d B' (damo's format_sz for <= 1024 bytes);
    ``sz_texts`` (list of str, or None entries) overrides it per region.
    """
    cdef Py_ssize_t n = start.shape[0], i, q = 0
    if end.shape[0] != n or acc.shape[0] != n or age.shape[0] != n or passed.shape[0] != n:
        raise ValueError("columns of different lengths")
    if sz_texts is not None and len(sz_texts) != n:
        raise ValueError("sz_texts has the wrong length")
    cdef Py_ssize_t cap = n * 720 + 16
    cdef bytes sz
    out = np.empty(cap, np.uint8)
    cdef uint8_t[::1] ov = out
    cdef uint8_t* o = &ov[0]
    for i in range(n):
        if i:
            q = _put(o, q, b",\n", 2)
        q = _put_sp(o, q, 20)
        q = _put(o, q, b"{\n", 2)
        q = _put_sp(o, q, 24)
        q = _put(o, q, b"\"start\": \"", 10)
        q = _put_u64(o, q, start[i], True)
        q = _put(o, q, b"\",\n", 3)
        q = _put_sp(o, q, 24)
        q = _put(o, q, b"\"end\": \"", 8)
        q = _put_u64(o, q, end[i], True)
        q = _put(o, q, b"\",\n", 3)
        q = _put_sp(o, q, 24)
        q = _put(o, q, b"\"nr_accesses\": {\n", 17)
        q = _put_sp(o, q, 28)
        q = _put(o, q, b"\"samples\": ", 11)
        q = _put_i64(o, q, acc[i], False)
        q = _put(o, q, b",\n", 2)
        q = _put_sp(o, q, 28)
        q = _put(o, q, b"\"percent\": null\n", 16)
        q = _put_sp(o, q, 24)
        q = _put(o, q, b"},\n", 3)
        q = _put_sp(o, q, 24)
        q = _put(o, q, b"\"age\": {\n", 9)
        q = _put_sp(o, q, 28)
        q = _put(o, q, b"\"usec\": null,\n", 14)
        q = _put_sp(o, q, 28)
        q = _put(o, q, b"\"aggr_intervals\": ", 18)
        if age[i] == AGE_UNKNOWN:
            q = _put(o, q, b"null", 4)
        else:
            o[q] = 34
            q = _put_i64(o, q + 1, age[i], True)
            o[q] = 34
            q += 1
        o[q] = 10
        q = _put_sp(o, q + 1, 24)
        q = _put(o, q, b"},\n", 3)
        q = _put_sp(o, q, 24)
        q = _put(o, q, b"\"probe_hits\": [],\n", 18)
        q = _put_sp(o, q, 24)
        q = _put(o, q, b"\"sz_filter_passed\": \"", 21)
        if sz_texts is not None and sz_texts[i] is not None:
            sz = (<str>sz_texts[i]).encode("ascii")
            if len(sz) > 40:
                raise ValueError("sz text too long")
            q = _put(o, q, <const char*>sz, len(sz))
        else:
            q = _put_u64(o, q, passed[i], False)
            q = _put(o, q, b" B", 2)
        q = _put(o, q, b"\"\n", 2)
        q = _put_sp(o, q, 20)
        o[q] = 125
        q += 1
    return out[:q].tobytes()
