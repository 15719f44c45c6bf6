# cython: language_level=3, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -O3 -ffp-contract=off
"""Cython kernels of the damo reports (heatmap, guides, wss, adjust).

Each kernel walks the columnar arrays of one chunk of snapshots without the GIL and
reproduces damo 3.4.3's arithmetic operation by operation (SEMANTICS.md §2-§5), so the
results are bit-identical to damo's Python code. The pure-Python reference twins live
in the modules that call these kernels (heatmap.py, wss.py, adjust.py).

Every def function checks the lengths of its arrays before its nogil loops run, which
then index them without bounds checks (``@cython.boundscheck(False)``; the comment on
each decorator names the check).
"""
cimport cython
from libc.math cimport isnan
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t, uint8_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memmove
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport (PyByteArray_AS_STRING, PyByteArray_FromStringAndSize,
                                PyByteArray_Resize)

from damo_pipe._kernels_common cimport (
    CH_0, CH_DOT, CH_LF, CH_LOWER_E, CH_MINUS, CH_PLUS, dp_int128, dp_uint128)

import numpy as np

include "_ryu.pxi"

cdef double BIG_INDEX = 4.0e18


cdef inline int64_t _trunc_index(double q) noexcept nogil:
    """int() of a float index, clamped far outside any grid."""
    if q >= BIG_INDEX:
        return <int64_t>BIG_INDEX
    if q <= -BIG_INDEX:
        return -<int64_t>BIG_INDEX
    return <int64_t>q


cdef inline int64_t _col(uint64_t a, uint64_t a_start, double addr_unit) noexcept nogil:
    # damo: int((a - a_start) / addr_unit), exact int subtraction, true division
    if a >= a_start:
        return _trunc_index(<double>(a - a_start) / addr_unit)
    return _trunc_index(-(<double>(a_start - a) / addr_unit))


# ---------------------------------------------------------------------------
# heatmap pixel accumulation (SEMANTICS.md §2.3, damo 3.4.3 variant)
# ---------------------------------------------------------------------------
@cython.boundscheck(False)  # lengths, region ranges and the row band are checked below
def heatmap_accumulate(double[:, ::1] heat,
                       const double[::1] ptime, const double[::1] ptime_next,
                       const uint64_t[::1] paddr,
                       const double[::1] snap_start, const double[::1] snap_end,
                       const uint8_t[::1] snap_start_float,
                       const int64_t[::1] region_offset, const int64_t[::1] nr_regions,
                       const uint64_t[::1] rstart, const uint64_t[::1] rend,
                       const int64_t[::1] samples, const int64_t[::1] age,
                       const uint64_t[::1] passed,
                       const double[::1] snap_aggr_us,
                       bint has_intervals, double aggr_ns, bint aggr_float,
                       double t_start, double time_unit, bint tu_float,
                       uint64_t a_start, uint64_t addr_unit, uint64_t a_map_end,
                       double pts, bint df_passed,
                       bint has_last, double last_end,
                       Py_ssize_t row_lo=0, Py_ssize_t row_hi=-1):
    """Add the heats of one chunk of snapshots to ``heat`` (T x A, NaN = untouched).

    ``ptime[i]`` = pixel row i's time, ``ptime_next[i]`` = ptime[i] + time_unit,
    ``paddr[j]`` = column j's address. Times are doubles holding damo's values
    exactly (integers below 2**53 or the float first start). Returns the new
    ``(has_last, last_end)`` carried to the next chunk/record.

    ``row_lo``/``row_hi``: only update rows [row_lo, row_hi) (default: all). Calls on
    disjoint bands may run in parallel threads: each pixel still receives its updates
    in snapshot/region order, so the result is the same as one call. A snapshot is
    skipped whole when it ends before the band or, with ``last``, when the previous
    snapshot's end (which bounds every region's start from below) is past the band.
    """
    cdef Py_ssize_t T = heat.shape[0], A = heat.shape[1]
    cdef Py_ssize_t S = snap_start.shape[0], R = rstart.shape[0]
    cdef Py_ssize_t k, r, r_lo, r_hi
    cdef int64_t i, j, i_lo, i_hi, j_lo, j_hi
    cdef double s_start, s_end, st, obs, x, y, dt, v = 0, hd, addr_unit_d = <double>addr_unit
    cdef bint obs_float, dt_float
    cdef uint64_t a0, a1, lo_a, hi_a
    cdef int64_t da, a_age
    cdef dp_int128 h128
    cdef double cur
    # memos of pure functions (same operands -> same double, so results are unchanged):
    # the row of the previous st (clamped regions all share st = last_end) and the
    # column of the previous region's end (contiguous regions: next start == that end)
    cdef double memo_st = 0, aggr_s = 1
    cdef int64_t memo_ilo = 0, memo_col = 0, s_ihi
    cdef bint memo_st_ok = False, memo_col_ok = False
    cdef uint64_t memo_addr = 0
    if ptime.shape[0] != T or ptime_next.shape[0] != T or paddr.shape[0] != A:
        raise ValueError("pixel axis arrays do not match the grid")
    if (snap_end.shape[0] != S or snap_start_float.shape[0] != S or region_offset.shape[0] != S
            or nr_regions.shape[0] != S):
        raise ValueError("snapshot columns differ in length")
    if rend.shape[0] != R or samples.shape[0] != R or age.shape[0] != R or passed.shape[0] != R:
        raise ValueError("region columns differ in length")
    if has_intervals and snap_aggr_us.shape[0] != S:
        raise ValueError("snap_aggr_us has the wrong length")
    for k in range(S):
        if region_offset[k] < 0 or nr_regions[k] < 0 or region_offset[k] + nr_regions[k] > R:
            raise ValueError("snapshot %d references regions outside the chunk" % k)
    if pts == 0:
        raise ZeroDivisionError("pixel area is zero")
    if row_hi < 0 or row_hi > T:
        row_hi = T
    if row_lo < 0:
        row_lo = 0

    with nogil:
        for k in range(S):
            s_start = snap_start[k]
            s_end = snap_end[k]
            r_lo = region_offset[k]
            r_hi = r_lo + nr_regions[k]
            s_ihi = _trunc_index((s_end - t_start) / time_unit)
            if s_ihi < row_lo or (has_last and
                                  _trunc_index((last_end - t_start) / time_unit) >= row_hi):
                has_last = True
                last_end = s_end
                continue
            if has_intervals:
                aggr_s = snap_aggr_us[k] / 1000000.0
            for r in range(r_lo, r_hi):
                a0 = rstart[r]
                a1 = rend[r]
                if a1 < a_start or a_map_end < a0:
                    continue
                obs_float = snap_start_float[k] != 0
                if has_intervals:
                    a_age = age[r]
                    if a_age < 0:
                        a_age = 0   # unknown age: no back-extension (damo crashes)
                    st = s_start - <double>a_age * aggr_ns
                    obs_float = obs_float or aggr_float
                else:
                    st = s_start
                if has_last and st < last_end:
                    st = last_end
                    obs_float = False
                obs = st
                if not (memo_st_ok and st == memo_st):
                    memo_st = st
                    memo_ilo = _trunc_index((st - t_start) / time_unit)
                    memo_st_ok = True
                i_lo = memo_ilo
                i_hi = s_ihi
                if i_lo < row_lo:
                    i_lo = row_lo
                if i_hi > row_hi - 1:
                    i_hi = row_hi - 1
                if i_lo > i_hi:
                    continue
                if memo_col_ok and a0 == memo_addr:
                    j_lo = memo_col
                else:
                    j_lo = _col(a0, a_start, addr_unit_d)
                j_hi = _col(a1, a_start, addr_unit_d)
                memo_addr = a1
                memo_col = j_hi
                memo_col_ok = True
                if j_lo < 0:
                    j_lo = 0
                if j_hi > A - 1:
                    j_hi = A - 1
                if j_lo > j_hi:
                    continue
                if has_intervals:
                    v = <double>samples[r] / aggr_s
                    if df_passed:
                        v = v * <double>passed[r] / <double>(a1 - a0)
                elif df_passed:
                    v = <double>(<dp_int128>samples[r] * <dp_int128>passed[r]) / <double>(a1 - a0)
                for i in range(i_lo, i_hi + 1):
                    # dt = min(S.end, P.time + tu) - max(obs, P.time), Python min/max picks
                    x = ptime_next[i]
                    dt_float = False
                    if x < s_end:
                        dt_float = tu_float
                    else:
                        x = s_end
                    y = ptime[i]
                    if not (y > obs):
                        y = obs
                        dt_float = dt_float or obs_float
                    dt = x - y
                    for j in range(j_lo, j_hi + 1):
                        lo_a = paddr[j]
                        hi_a = lo_a + addr_unit
                        if a1 < hi_a:
                            hi_a = a1
                        if lo_a < a0:
                            lo_a = a0
                        da = <int64_t>hi_a - <int64_t>lo_a
                        if has_intervals or df_passed:
                            hd = v * dt * <double>da
                        elif dt_float:
                            hd = <double>samples[r] * dt * <double>da
                        else:
                            h128 = <dp_int128>samples[r] * <dp_int128>(<int64_t>dt) * <dp_int128>da
                            hd = <double>h128
                        cur = heat[i, j]
                        if isnan(cur):
                            heat[i, j] = (hd + 0.0) / pts
                        else:
                            heat[i, j] = (hd + cur * pts) / pts
            has_last = True
            last_end = s_end
    return has_last, last_end


@cython.boundscheck(False)  # i < T, j < A: the heat grid's own shape
def format_raw_text(const double[:, ::1] heat, list tcol, list acol):
    """``--output raw`` text: line (i, j) is ``tcol[i] + acol[j] + repr(heat[i, j])``
    (``NaN`` for NaN), lines joined by ``\\n`` with no trailing one. ``tcol``/``acol``
    are bytes prefixes (with their tab). Floats are formatted by the Ryu formatter of
    _ryu.pxi, which prints exactly what ``repr`` prints (shortest round-trip, ``.0``
    added), without the GIL."""
    cdef Py_ssize_t T = heat.shape[0], A = heat.shape[1]
    cdef Py_ssize_t i, j, pos = 0, cap, tmax = 0, amax = 0
    cdef bytearray out
    cdef bytes b
    cdef char *buf
    cdef const char **tp
    cdef const char **ap
    cdef Py_ssize_t *tl
    cdef Py_ssize_t *al
    cdef double x
    if len(tcol) != T or len(acol) != A:
        raise ValueError("axis label lists do not match the grid")
    for b in tcol:
        tmax = max(tmax, PyBytes_GET_SIZE(b))
    for b in acol:
        amax = max(amax, PyBytes_GET_SIZE(b))
    # repr of a double is at most 24 characters; one newline per line
    cap = T * A * (tmax + amax + 32) + 1
    # the text is written straight into the bytearray returned (shrunk at the end, no copy)
    out = PyByteArray_FromStringAndSize(NULL, cap)
    buf = PyByteArray_AS_STRING(out)
    tp = <const char **>malloc((T + 1) * sizeof(char *))
    ap = <const char **>malloc((A + 1) * sizeof(char *))
    tl = <Py_ssize_t *>malloc((T + 1) * sizeof(Py_ssize_t))
    al = <Py_ssize_t *>malloc((A + 1) * sizeof(Py_ssize_t))
    try:
        if tp == NULL or ap == NULL or tl == NULL or al == NULL:
            raise MemoryError()
        # the label lists keep their bytes alive while the nogil loop reads them
        for i in range(T):
            b = tcol[i]
            tp[i] = PyBytes_AS_STRING(b)
            tl[i] = PyBytes_GET_SIZE(b)
        for j in range(A):
            b = acol[j]
            ap[j] = PyBytes_AS_STRING(b)
            al[j] = PyBytes_GET_SIZE(b)
        with nogil:
            for i in range(T):
                for j in range(A):
                    if i or j:
                        buf[pos] = 10
                        pos += 1
                    memcpy(buf + pos, tp[i], tl[i])
                    pos += tl[i]
                    memcpy(buf + pos, ap[j], al[j])
                    pos += al[j]
                    x = heat[i, j]
                    if isnan(x):
                        memcpy(buf + pos, b"NaN", 3)
                        pos += 3
                    else:
                        pos += _write_float_repr(x, buf + pos)
    finally:
        free(tp)
        free(ap)
        free(tl)
        free(al)
    PyByteArray_Resize(out, pos)
    return out


# ---------------------------------------------------------------------------
# guides (SEMANTICS.md §2.4)
# ---------------------------------------------------------------------------
@cython.boundscheck(False)  # lengths, region ranges and gap buffer checked below; nh <= maxn
def guide_scan(const uint64_t[::1] rstart, const uint64_t[::1] rend,
               const int64_t[::1] region_offset, const int64_t[::1] nr_regions,
               uint64_t[:, ::1] gaps, Py_ssize_t nr_gaps,
               uint64_t lowest, uint64_t highest, Py_ssize_t first_snapshot=0):
    """Fold the address bounds and narrow the gaps over snapshots ``first_snapshot..``.

    ``lowest``/``highest`` use 0 for damo's unset value (``if not lowest``).
    Returns ``(lowest, highest, k)``: ``k`` is the index of the first snapshot that
    must *initialise* the gaps (``nr_gaps == 0`` and it has gaps), whose bounds are
    already folded, or -1 when the whole chunk was consumed.
    """
    cdef Py_ssize_t S = region_offset.shape[0], R = rstart.shape[0]
    cdef Py_ssize_t k, r, g, h, lo, hi, nh, mid, init_at = -1, maxn = 1
    cdef uint64_t last_addr, s, e, gs, ge, hs, he
    cdef bint sorted_h
    cdef uint64_t[:, ::1] hbuf
    if first_snapshot < 0:
        raise ValueError("negative first snapshot")
    if nr_regions.shape[0] != S or rend.shape[0] != R:
        raise ValueError("columns differ in length")
    if gaps.shape[0] < nr_gaps or (gaps.shape[0] and gaps.shape[1] != 2):
        raise ValueError("gap buffer too small")
    for k in range(S):
        if region_offset[k] < 0 or nr_regions[k] < 0 or region_offset[k] + nr_regions[k] > R:
            raise ValueError("snapshot %d references regions outside the chunk" % k)
        if nr_regions[k] > maxn:
            maxn = nr_regions[k]
    hbuf = np.empty((maxn, 2), np.uint64)
    with nogil:
        for k in range(first_snapshot, S):
            lo = region_offset[k]
            hi = lo + nr_regions[k]
            last_addr = 0
            nh = 0
            for r in range(lo, hi):
                s = rstart[r]
                e = rend[r]
                if lowest == 0 or s < lowest:
                    lowest = s
                if highest == 0 or e > highest:
                    highest = e
                if last_addr == 0:
                    last_addr = e
                    continue
                if last_addr != s:
                    hbuf[nh, 0] = last_addr
                    hbuf[nh, 1] = s
                    nh += 1
                last_addr = e
            if nr_gaps == 0:
                if nh:
                    init_at = k
                    break
                continue
            if nh == 0:
                continue
            sorted_h = True
            for h in range(1, nh):
                if hbuf[h, 0] < hbuf[h - 1, 0] or hbuf[h, 1] < hbuf[h - 1, 1]:
                    sorted_h = False
                    break
            for g in range(nr_gaps):
                gs = gaps[g, 0]
                ge = gaps[g, 1]
                lo = 0
                if sorted_h:
                    # sorted snapshot gaps: start at the first h with h.end >= g.start and
                    # stop at the first h starting after (the narrowed) g.end
                    hi = nh
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if hbuf[mid, 1] < gs:
                            lo = mid + 1
                        else:
                            hi = mid
                for h in range(lo, nh):
                    hs = hbuf[h, 0]
                    he = hbuf[h, 1]
                    if sorted_h and hs > ge:
                        break
                    if ge >= hs and he >= gs:
                        if hs > gs:
                            gs = hs
                        if he < ge:
                            ge = he
                gaps[g, 0] = gs
                gaps[g, 1] = ge
    return lowest, highest, init_at


@cython.boundscheck(False)  # the lengths are checked below
def guide_heats(const uint64_t[::1] rstart, const uint64_t[::1] rend,
                const int64_t[::1] samples,
                const uint64_t[::1] cstart, const uint64_t[::1] cend, bint c_sorted,
                int64_t[::1] heat_hi, uint64_t[::1] heat_lo, uint8_t[::1] touched):
    """Add Σ (R.end-R.start)*R.samples of regions touching each contiguous region.

    Sums are 128-bit, kept as (hi, lo) words; ``touched`` marks heats that are no
    longer None. ``c_sorted``: contiguous regions ascending by start and by end.
    """
    cdef Py_ssize_t R = rstart.shape[0], C = cstart.shape[0]
    cdef Py_ssize_t r, c, lo, hi, mid
    cdef uint64_t s, e
    cdef dp_int128 add, cur
    if rend.shape[0] != R or samples.shape[0] != R:
        raise ValueError("region columns differ in length")
    if cend.shape[0] != C or heat_hi.shape[0] != C or heat_lo.shape[0] != C or touched.shape[0] != C:
        raise ValueError("contiguous-region arrays differ in length")
    with nogil:
        for r in range(R):
            if samples[r] == 0:
                continue
            s = rstart[r]
            e = rend[r]
            add = <dp_int128>(e - s) * <dp_int128>samples[r]
            if c_sorted:
                lo = 0
                hi = C
                while lo < hi:
                    mid = (lo + hi) // 2
                    if cend[mid] < s:
                        lo = mid + 1
                    else:
                        hi = mid
                c = lo
                while c < C and cstart[c] <= e:
                    if not (e < cstart[c] or cend[c] < s):
                        cur = ((<dp_int128>heat_hi[c]) << 64) + <dp_int128>heat_lo[c]
                        cur = cur + add
                        heat_hi[c] = <int64_t>(cur >> 64)
                        heat_lo[c] = <uint64_t>cur
                        touched[c] = 1
                    c += 1
            else:
                for c in range(C):
                    if not (e < cstart[c] or cend[c] < s):
                        cur = ((<dp_int128>heat_hi[c]) << 64) + <dp_int128>heat_lo[c]
                        cur = cur + add
                        heat_hi[c] = <int64_t>(cur >> 64)
                        heat_lo[c] = <uint64_t>cur
                        touched[c] = 1


# ---------------------------------------------------------------------------
# adjust: damo's aggregate_snapshots region merge (SEMANTICS.md §5), O(R log R)
# ---------------------------------------------------------------------------
cdef class RegionMerger:
    """Incremental twin of damo's ``aggregate_snapshots`` for one window.

    damo keeps a list ``base`` of disjoint regions in discovery order and, for each
    region x of each snapshot, scans ``base`` linearly for the first overlapping
    region b, credits ``acc[b] = max(acc[b], x.samples)`` and recursively adds the
    parts of x left and right of b. Here ``base`` additionally has an address-sorted
    index, so the overlapping base regions of a part are found by bisection and the
    pivot (the first overlapping region in discovery order) is the one with the
    smallest discovery index in that sorted range. New pieces are appended in the same
    order as damo's left-first recursion, with the same nested ``sz_filter_passed``
    scaling ``int(passed / size * new_size)``.
    """
    cdef uint64_t *b_start
    cdef uint64_t *b_end
    cdef int64_t *b_samples
    cdef int64_t *b_age
    cdef uint64_t *b_passed
    cdef int64_t *b_acc
    cdef Py_ssize_t n, cap
    cdef Py_ssize_t *sorted_idx     # discovery indices sorted by start
    cdef int64_t *stack_buf
    cdef Py_ssize_t stack_cap

    def __cinit__(self):
        self.n = 0
        self.cap = 0
        self.b_start = NULL
        self.b_end = NULL
        self.b_samples = NULL
        self.b_age = NULL
        self.b_passed = NULL
        self.b_acc = NULL
        self.sorted_idx = NULL
        self.stack_buf = NULL
        self.stack_cap = 0

    def __dealloc__(self):
        free(self.b_start); free(self.b_end); free(self.b_samples); free(self.b_age)
        free(self.b_passed); free(self.b_acc); free(self.sorted_idx); free(self.stack_buf)

    cdef int _grow(self, Py_ssize_t need) except -1 nogil:
        cdef Py_ssize_t cap = self.cap
        if need <= cap:
            return 0
        if cap < 16:
            cap = 16
        while cap < need:
            cap *= 2
        self.b_start = <uint64_t*>realloc(self.b_start, cap * sizeof(uint64_t))
        self.b_end = <uint64_t*>realloc(self.b_end, cap * sizeof(uint64_t))
        self.b_samples = <int64_t*>realloc(self.b_samples, cap * sizeof(int64_t))
        self.b_age = <int64_t*>realloc(self.b_age, cap * sizeof(int64_t))
        self.b_passed = <uint64_t*>realloc(self.b_passed, cap * sizeof(uint64_t))
        self.b_acc = <int64_t*>realloc(self.b_acc, cap * sizeof(int64_t))
        self.sorted_idx = <Py_ssize_t*>realloc(self.sorted_idx, cap * sizeof(Py_ssize_t))
        if (self.b_start == NULL or self.b_end == NULL or self.b_samples == NULL or self.b_age == NULL
                or self.b_passed == NULL or self.b_acc == NULL or self.sorted_idx == NULL):
            with gil:
                raise MemoryError()
        self.cap = cap
        return 0

    cdef int _push_part(self, Py_ssize_t *top, uint64_t lo, uint64_t hi, uint64_t passed,
                        uint64_t whole) except -1 nogil:
        """Push the uncovered part [lo, hi) of a region of size ``whole`` whose
        ``passed`` bytes scale as damo's ``int(passed / size * new_size)``."""
        cdef int64_t part_passed = 0
        if passed != 0:
            part_passed = <int64_t>(<uint64_t>((<double>passed / <double>whole)
                                               * <double>(hi - lo)))
        return self._push(top, <int64_t>lo, <int64_t>hi, part_passed, -1, -1)

    cdef int _push(self, Py_ssize_t *top, int64_t a, int64_t b, int64_t c, int64_t d,
                   int64_t e) except -1 nogil:
        cdef Py_ssize_t need = (top[0] + 1) * 5
        cdef Py_ssize_t cap = self.stack_cap
        if need > cap:
            if cap < 80:
                cap = 80
            while cap < need:
                cap *= 2
            self.stack_buf = <int64_t*>realloc(self.stack_buf, cap * sizeof(int64_t))
            if self.stack_buf == NULL:
                with gil:
                    raise MemoryError()
            self.stack_cap = cap
        cdef int64_t *p = self.stack_buf + top[0] * 5
        p[0] = a; p[1] = b; p[2] = c; p[3] = d; p[4] = e
        top[0] += 1
        return 0

    cdef Py_ssize_t _first_end_after(self, uint64_t x) noexcept nogil:
        """First sorted position whose region end > x (ends ascend: base is disjoint)."""
        cdef Py_ssize_t lo = 0, hi = self.n, mid
        while lo < hi:
            mid = (lo + hi) // 2
            if self.b_end[self.sorted_idx[mid]] <= x:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef int _append(self, uint64_t s, uint64_t e, int64_t samples, int64_t age,
                     uint64_t passed) except -1 nogil:
        cdef Py_ssize_t pos, i = self.n
        self._grow(self.n + 1)
        self.b_start[i] = s
        self.b_end[i] = e
        self.b_samples[i] = samples
        self.b_age[i] = age
        self.b_passed[i] = passed
        self.b_acc[i] = 0
        # sorted insert (by start; zero-length pieces cannot occur)
        pos = self._first_end_after(s)
        while pos < self.n and self.b_start[self.sorted_idx[pos]] < s:
            pos += 1
        if pos < self.n:
            memmove(&self.sorted_idx[pos + 1], &self.sorted_idx[pos],
                    (self.n - pos) * sizeof(Py_ssize_t))
        self.sorted_idx[pos] = i
        self.n += 1
        return 0

    cdef int _add(self, uint64_t xs, uint64_t xe, int64_t samples, int64_t age,
                  uint64_t passed) except -1 nogil:
        cdef Py_ssize_t top = 0, lo, hi, p
        cdef int64_t *fr
        cdef uint64_t ps, pe, pp, bs, be
        cdef Py_ssize_t best
        # frame: start, end, passed, lo, hi; the sorted range is recomputed for every
        # part because pieces appended meanwhile shift sorted positions
        self._push(&top, <int64_t>xs, <int64_t>xe, <int64_t>passed, -1, -1)
        while top > 0:
            top -= 1
            fr = self.stack_buf + top * 5
            ps = <uint64_t>fr[0]
            pe = <uint64_t>fr[1]
            pp = <uint64_t>fr[2]
            lo = fr[3]
            hi = fr[4]
            if lo < 0:
                lo = self._first_end_after(ps)
                hi = lo
                while hi < self.n and self.b_start[self.sorted_idx[hi]] < pe:
                    hi += 1
            # keep only base regions that overlap [ps, pe) half-open
            while lo < hi and not (self.b_end[self.sorted_idx[lo]] > ps and self.b_start[self.sorted_idx[lo]] < pe):
                lo += 1
            while hi > lo and not (self.b_end[self.sorted_idx[hi - 1]] > ps and self.b_start[self.sorted_idx[hi - 1]] < pe):
                hi -= 1
            if lo >= hi:
                self._append(ps, pe, samples, age, pp)
                continue
            best = self.sorted_idx[lo]
            for p in range(lo + 1, hi):
                if self.sorted_idx[p] < best:
                    best = self.sorted_idx[p]
            if self.b_acc[best] < samples:
                self.b_acc[best] = samples
            bs = self.b_start[best]
            be = self.b_end[best]
            # right part first on the stack so that the left part is processed first
            if be < pe:
                self._push_part(&top, be, pe, pp, pe - ps)
            if ps < bs:
                self._push_part(&top, ps, bs, pp, pe - ps)
        return 0

    @cython.boundscheck(False)  # lo..hi and the column lengths are checked below
    def add_snapshot(self, const uint64_t[::1] start, const uint64_t[::1] end,
                     const int64_t[::1] samples, const int64_t[::1] age,
                     const uint64_t[::1] passed, Py_ssize_t lo, Py_ssize_t hi):
        """Merge regions ``lo:hi`` of the columns (one snapshot) into the base."""
        cdef Py_ssize_t r, i
        if lo < 0 or hi > start.shape[0] or lo > hi:
            raise ValueError("region range outside the columns")
        if (end.shape[0] != start.shape[0] or samples.shape[0] != start.shape[0]
                or age.shape[0] != start.shape[0] or passed.shape[0] != start.shape[0]):
            raise ValueError("region columns differ in length")
        with nogil:
            for r in range(lo, hi):
                self._add(start[r], end[r], samples[r], age[r], passed[r])
            for i in range(self.n):
                self.b_samples[i] += self.b_acc[i]
                self.b_acc[i] = 0

    @cython.boundscheck(False)  # i < n: the arrays are allocated with n rows
    def result(self):
        """(start, end, samples, age, passed) arrays of the base, in discovery order."""
        cdef Py_ssize_t i, n = self.n
        s = np.empty(n, np.uint64)
        e = np.empty(n, np.uint64)
        sm = np.empty(n, np.int64)
        ag = np.empty(n, np.int64)
        ps = np.empty(n, np.uint64)
        cdef uint64_t[::1] sv = s, ev = e, pv = ps
        cdef int64_t[::1] smv = sm, agv = ag
        for i in range(n):
            sv[i] = self.b_start[i]
            ev[i] = self.b_end[i]
            smv[i] = self.b_samples[i]
            agv[i] = self.b_age[i]
            pv[i] = self.b_passed[i]
        return s, e, sm, ag, ps

    def __len__(self):
        return self.n


@cython.boundscheck(False)  # lengths and region ranges are checked below
def window_wss(const int64_t[::1] region_offset, const int64_t[::1] nr_regions,
               const uint64_t[::1] start, const uint64_t[::1] end,
               const int64_t[::1] samples, int64_t acc_thres, uint64_t sz_thres,
               uint64_t[::1] out):
    """Per snapshot: Σ size of regions with samples >= acc_thres and size >= sz_thres."""
    cdef Py_ssize_t S = region_offset.shape[0], R = start.shape[0], k, r
    cdef uint64_t total, sz
    if nr_regions.shape[0] != S or out.shape[0] != S:
        raise ValueError("snapshot arrays differ in length")
    if end.shape[0] != R or samples.shape[0] != R:
        raise ValueError("region columns differ in length")
    for k in range(S):
        if region_offset[k] < 0 or nr_regions[k] < 0 or region_offset[k] + nr_regions[k] > R:
            raise ValueError("snapshot %d references regions outside the chunk" % k)
    with nogil:
        for k in range(S):
            total = 0
            for r in range(region_offset[k], region_offset[k] + nr_regions[k]):
                if samples[r] < acc_thres:
                    continue
                sz = end[r] - start[r]
                if sz < sz_thres:
                    continue
                total += sz
            out[k] = total


@cython.boundscheck(False)  # lengths checked below; n_in <= R <= len(in_gap_idx)
def heats_scan(const uint64_t[::1] start, const uint64_t[::1] end, const int64_t[::1] samples,
               const uint64_t[::1] ga, const uint64_t[::1] gb,
               int64_t[::1] below_s_hi, uint64_t[::1] below_s_lo,
               int64_t[::1] below_e_hi, uint64_t[::1] below_e_lo, int64_t[::1] in_gap_idx):
    """One pass of the one-pass guide heats (see heatmap._OnePassHeats).

    Over regions with samples != 0 (w = size * samples, 128-bit sums): per gap i adds
    Σ w with start < ga[i] and Σ w with end < ga[i]; writes the indices of the regions
    whose start or end lies in some [ga[i], gb[i]] into ``in_gap_idx`` (length >= R).
    Returns (total_hi, total_lo, max_start, nr_in_gap, bad) where ``bad`` flags an
    address 0 or start > end (the caller falls back to the exact pass).
    """
    cdef Py_ssize_t R = start.shape[0], G = ga.shape[0], r, i, n_in = 0
    cdef dp_int128 w, total = 0, cur
    cdef uint64_t s, e, max_start = 0
    cdef bint bad = False, inside
    if end.shape[0] != R or samples.shape[0] != R or in_gap_idx.shape[0] < R:
        raise ValueError("region columns differ in length")
    if (gb.shape[0] != G or below_s_hi.shape[0] != G or below_s_lo.shape[0] != G
            or below_e_hi.shape[0] != G or below_e_lo.shape[0] != G):
        raise ValueError("gap arrays differ in length")
    with nogil:
        for r in range(R):
            s = start[r]
            e = end[r]
            if s == 0 or e < s:
                bad = True
                break
            if samples[r] == 0:
                continue
            w = <dp_int128>(e - s) * <dp_int128>samples[r]
            total = total + w
            if s > max_start:
                max_start = s
            inside = False
            for i in range(G):
                if s < ga[i]:
                    cur = ((<dp_int128>below_s_hi[i]) << 64) + <dp_int128>below_s_lo[i] + w
                    below_s_hi[i] = <int64_t>(cur >> 64)
                    below_s_lo[i] = <uint64_t>cur
                elif s <= gb[i]:
                    inside = True
                if e < ga[i]:
                    cur = ((<dp_int128>below_e_hi[i]) << 64) + <dp_int128>below_e_lo[i] + w
                    below_e_hi[i] = <int64_t>(cur >> 64)
                    below_e_lo[i] = <uint64_t>cur
                elif e <= gb[i]:
                    inside = True
            if inside:
                in_gap_idx[n_in] = r
                n_in += 1
    return <int64_t>(total >> 64), <uint64_t>total, max_start, n_in, bad
