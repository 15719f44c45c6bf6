# cython: language_level=3, wraparound=False, cdivision=True
"""Cython kernels of ``report access`` (pure-Python twins: ``access_kernels_py``).

Every kernel reproduces damo's Python arithmetic exactly for the value ranges the
caller (``access.Metrics``) admits: integer inputs below 2^53 (so int→double
conversions are exact), exact integer sums in 64/128-bit integers, and IEEE double
operations in the same order as damo's Python expressions. Outside those ranges the
caller uses the pure-Python twin instead.

Every def function checks the lengths of its arrays before its loops, which then index
them without bounds checks (the comment on each ``@cython.boundscheck(False)`` names
the check).
"""
cimport cython
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_New
from libc.stdint cimport int64_t, uint64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from libc.math cimport fmod, floor, copysign
from libc.stdio cimport snprintf

from damo_pipe._kernels_common cimport CH_COMMA, CH_SPACE, dp_int128, dp_uint128

from damo_pipe.analyze.access_kernels_py import join_rows as _join_rows_py

cdef extern from "Python.h":
    bint PyUnicode_CheckExact(object o)
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    const Py_ssize_t PY_SSIZE_T_MAX


@cython.boundscheck(False)  # the lengths are checked below
def temperatures_i64(const int64_t[::1] sizes, const int64_t[::1] percents,
                     const int64_t[::1] usecs, int64_t ws, int64_t wa, int64_t wg,
                     int64_t[::1] out):
    """t = size*ws + percent*wa + usec*wg, negated unless percent > 0 (caller bounds |t| < 2^62)."""
    cdef Py_ssize_t n = sizes.shape[0], i
    cdef int64_t t
    if percents.shape[0] != n or usecs.shape[0] != n or out.shape[0] != n:
        raise ValueError("column lengths differ")
    with nogil:
        for i in range(n):
            t = sizes[i] * ws + percents[i] * wa + usecs[i] * wg
            out[i] = t if percents[i] > 0 else -t


@cython.boundscheck(False)  # the lengths are checked below
def idle_times_i64(const int64_t[::1] percents, const int64_t[::1] usecs, int64_t aggr,
                   int64_t[::1] out):
    """0 if percent > 0 else usec + A (integer A)."""
    cdef Py_ssize_t n = percents.shape[0], i
    if usecs.shape[0] != n or out.shape[0] != n:
        raise ValueError("column lengths differ")
    with nogil:
        for i in range(n):
            out[i] = 0 if percents[i] > 0 else usecs[i] + aggr


@cython.boundscheck(False)  # the lengths are checked below
def idle_times_f64(const int64_t[::1] percents, const int64_t[::1] usecs, double aggr,
                   double[::1] out):
    """0 if percent > 0 else usec + A (float A; usec < 2^53 so the conversion is exact)."""
    cdef Py_ssize_t n = percents.shape[0], i
    if usecs.shape[0] != n or out.shape[0] != n:
        raise ValueError("column lengths differ")
    with nogil:
        for i in range(n):
            out[i] = 0.0 if percents[i] > 0 else <double>usecs[i] + aggr
    # note: damo's value for an accessed region is the int 0, printed identically


@cython.boundscheck(False)  # the lengths are checked below
def weighted_sum_u128(const uint64_t[::1] weights, const int64_t[::1] samples):
    """Exact Σ weight*samples (samples >= 0) as (high 64 bits, low 64 bits)."""
    cdef Py_ssize_t n = weights.shape[0], i
    cdef dp_uint128 acc = 0
    if samples.shape[0] != n:
        raise ValueError("column lengths differ")
    with nogil:
        for i in range(n):
            acc += <dp_uint128>weights[i] * <dp_uint128>(<uint64_t>samples[i])
    return int(<uint64_t>(acc >> 64)), int(<uint64_t>acc)


@cython.boundscheck(False)  # order values and output sizes checked below; m <= nt + 1
def percentile_walk(const int64_t[::1] order, const uint64_t[::1] weights, uint64_t total,
                    const double[::1] targets, int64_t[::1] out_t, int64_t[::1] out_i):
    """§9.3 walk over regions in ``order``; writes (target index, region index) pairs.

    Requires weight*100 < 2^53 and total < 2^53 so that ``w*100/total`` rounds as in Python.
    A target index of the first pending 100 is reported for the trailing 100 rule.
    Returns the number of pairs.
    """
    cdef Py_ssize_t n = order.shape[0], nt = targets.shape[0], i, j = 0, m = 0, k
    cdef double acc = 0.0
    cdef int64_t last = -1, r
    if total == 0:
        raise ZeroDivisionError("division by zero")
    if out_t.shape[0] < nt + 1 or out_i.shape[0] < nt + 1:
        raise ValueError("output too small")
    for i in range(n):
        if order[i] < 0 or order[i] >= weights.shape[0]:
            raise IndexError("order out of range")
    with nogil:
        for i in range(n):
            r = order[i]
            acc += <double>(weights[r] * 100) / <double>total
            last = r
            while j < nt and acc >= targets[j]:
                out_t[m] = j
                out_i[m] = r
                m += 1
                j += 1
            if acc >= 100.0:
                break
        if last >= 0:
            for k in range(j, nt):
                if targets[k] == 100.0:
                    out_t[m] = k
                    out_i[m] = last
                    m += 1
                    break
    return m


@cython.boundscheck(False)  # the lengths are checked below
def histogram_rows(const double[::1] values, const uint64_t[::1] weights,
                   const double[::1] starts, const double[::1] ends, uint64_t[::1] out):
    """Σ weight of the values in [start, end) per range (values exact doubles, Σ < 2^64)."""
    cdef Py_ssize_t n = values.shape[0], nr = starts.shape[0], i, j
    cdef double v
    if weights.shape[0] != n or ends.shape[0] != nr or out.shape[0] != nr:
        raise ValueError("column lengths differ")
    with nogil:
        for j in range(nr):
            out[j] = 0
        for i in range(n):
            v = values[i]
            for j in range(nr):
                if starts[j] <= v and v < ends[j]:
                    out[j] += weights[i]


cdef inline double _py_floordiv(double vx, double wx) noexcept nogil:
    """Python's float ``vx // wx`` (Objects/floatobject.c: _float_div_mod)."""
    cdef double mod = fmod(vx, wx), div, floordiv
    div = (vx - mod) / wx
    if mod != 0.0:
        if (wx < 0) != (mod < 0):
            mod += wx
            div -= 1.0
    if div != 0.0:
        floordiv = floor(div)
        if div - floordiv > 0.5:
            floordiv += 1.0
    else:
        floordiv = copysign(0.0, vx / wx)
    return floordiv


cdef inline dp_int128 _weighted_heat(dp_int128 sz, int64_t pc, int64_t usec, int64_t ws,
                                   int64_t wa, int64_t wg) noexcept nogil:
    """temperature(region of size ``sz``, full weights) * sz, exact in 128 bits."""
    cdef dp_int128 t = sz * ws + <dp_int128>(pc * wa) + <dp_int128>(usec * wg)
    if not pc > 0:
        t = -t
    return t * sz


@cython.boundscheck(False)  # lengths checked below; m < cap before every pixel
def heatmap_pixels(const uint64_t[::1] starts, const uint64_t[::1] ends,
                   const int64_t[::1] percents, const int64_t[::1] usecs,
                   int64_t ws, int64_t wa, int64_t wg, int width, int static,
                   double[::1] px_start, double[::1] px_end, double[::1] px_temp,
                   uint8_t[::1] px_void):
    """§9.5 pixels of one snapshot. Returns (nr_pixels, u); nr_pixels = -1 if the output
    arrays are too small (call again with larger ones), -2 if a gap jump does not advance
    (damo would never terminate).

    The caller guarantees addresses < 2^53, |temperature terms| < 2^53 and
    |t * size| sums < 2^126, so integer heats are exact in 128 bits and every int→double
    conversion rounds as Python's does.
    """
    cdef Py_ssize_t n = starts.shape[0], cap = px_start.shape[0], i, cur = 0, m = 0
    cdef double u, p, q, sz_d, t_d, heat_d, temp, newp, prev_p
    cdef dp_int128 heat_i, t_i, span_i = 0
    cdef bint p_int, heat_float, void, sorted_ends = True, found
    cdef int64_t pc
    cdef uint64_t rs, re, last_end
    if n == 0:
        raise ValueError("no region")
    if ends.shape[0] != n or percents.shape[0] != n or usecs.shape[0] != n:
        raise ValueError("column lengths differ")
    if px_end.shape[0] < cap or px_temp.shape[0] < cap or px_void.shape[0] < cap:
        raise ValueError("output arrays differ in length")
    if width <= 0:
        raise ValueError("heatmap width must be positive")
    for i in range(n):
        if starts[i] > ends[i]:
            sorted_ends = False
        if i and ends[i] < ends[i - 1]:
            sorted_ends = False
    if static:
        span_i = <dp_int128>ends[n - 1] - <dp_int128>starts[0]
    else:
        for i in range(n):
            span_i += <dp_int128>ends[i] - <dp_int128>starts[i]
    u = <double>span_i / <double>width
    if not (u > 0):
        raise ValueError("heatmap column size is not positive")
    last_end = ends[n - 1]
    with nogil:
        p = <double>starts[0]
        p_int = True
        prev_p = p
        while p < <double>last_end:
            if m >= cap:
                m = -1
                break
            q = p + u
            heat_i = 0
            heat_d = 0.0
            heat_float = False
            void = True
            if not sorted_ends or p < prev_p:
                cur = 0
            while cur < n and sorted_ends and <double>ends[cur] <= p:
                cur += 1
            prev_p = p
            i = cur
            while i < n:
                rs = starts[i]
                re = ends[i]
                if <double>re <= p:
                    i += 1
                    continue
                if q <= <double>rs:
                    break
                void = False
                pc = percents[i]
                if p <= <double>rs and <double>re <= q:
                    t_i = _weighted_heat(<dp_int128>re - <dp_int128>rs, pc, usecs[i], ws, wa, wg)
                    if heat_float:
                        heat_d += <double>t_i
                    else:
                        heat_i += t_i
                    i += 1
                    continue
                if <double>rs <= p and q <= <double>re:
                    sz_d = q - p
                elif <double>rs < p:
                    if p_int:
                        t_i = _weighted_heat(<dp_int128>re - <dp_int128>(<uint64_t>p), pc, usecs[i],
                                             ws, wa, wg)
                        if heat_float:
                            heat_d += <double>t_i
                        else:
                            heat_i += t_i
                        i += 1
                        continue
                    sz_d = <double>re - p
                else:
                    sz_d = q - <double>rs
                t_d = sz_d * <double>ws
                t_d = t_d + <double>(pc * wa)
                t_d = t_d + <double>(usecs[i] * wg)
                if not pc > 0:
                    t_d = -t_d
                if heat_float:
                    heat_d += t_d * sz_d
                else:
                    heat_d = <double>heat_i + t_d * sz_d
                    heat_float = True
                i += 1
            if void:
                found = False
                i = cur if sorted_ends else 0
                while i < n:
                    if <double>starts[i] > q:
                        found = True
                        break
                    i += 1
                if not found:
                    break
                newp = _py_floordiv(<double>starts[i], u) * u
                if not newp > p:
                    m = -2      # damo would loop forever here
                    break
                px_start[m] = p
                px_end[m] = newp
                px_temp[m] = 0.0
                px_void[m] = 1
                m += 1
                p = newp
                p_int = False
            else:
                if heat_float:
                    temp = heat_d / (q - p)
                else:
                    temp = <double>heat_i / (q - p)
                px_start[m] = p
                px_end[m] = q
                px_temp[m] = temp
                px_void[m] = 0
                m += 1
                p = q
                p_int = False
    return m, u


# ---------------------------------------------------------------------------------------
# text columns of the region listing (twins: numfmt.format_sz / format_nr per value)

cdef double _EIB = 1152921504606846976.0
cdef double _PIB = 1125899906842624.0
cdef double _TIB = 1099511627776.0
cdef double _GIB = 1073741824.0
cdef double _MIB = 1048576.0
cdef double _KIB = 1024.0


cdef inline int _put_u64(char *buf, int cap, int k, uint64_t v) noexcept nogil:
    """Write ``'%llu' % v`` at ``buf[k:]``; the new length, or -1 if it would pass ``cap``."""
    cdef char tmp[24]
    cdef int nd = 0
    while True:
        tmp[nd] = <char>(48 + v % 10)
        nd += 1
        v //= 10
        if v == 0 or nd >= 24:
            break
    if nd > cap - k:
        return -1
    while nd > 0:
        nd -= 1
        buf[k] = tmp[nd]
        k += 1
    return k


cdef inline int _fmt_scaled(char *buf, int cap, uint64_t m, int shift,
                            const char *unit) noexcept nogil:
    """``'%.3f <unit>' % (m / 2**shift)`` into ``buf`` (``cap`` bytes, ``unit`` 3 chars,
    0 < shift < 64); the length, or -1 if it would not fit. m / 2**shift is exact in a
    double, and printf / Python print its exact value rounded half to even: here
    m*1000 / 2**shift rounded the same way, in 128-bit integers."""
    cdef dp_uint128 p = <dp_uint128>m * 1000
    cdef dp_uint128 rem = p & (((<dp_uint128>1) << shift) - 1)
    cdef dp_uint128 half = (<dp_uint128>1) << (shift - 1)
    cdef uint64_t q = <uint64_t>(p >> shift)       # m < 2^64: q < 2^74 / 2^shift
    cdef uint64_t frac
    cdef int k
    if rem > half or (rem == half and (q & 1)):
        q += 1
    frac = q % 1000
    k = _put_u64(buf, cap, 0, q // 1000)
    if k < 0 or cap - k < 8:
        return -1
    buf[k] = 46          # "."
    buf[k + 1] = <char>(48 + frac // 100)
    buf[k + 2] = <char>(48 + (frac // 10) % 10)
    buf[k + 3] = <char>(48 + frac % 10)
    buf[k + 4] = CH_SPACE
    buf[k + 5] = unit[0]
    buf[k + 6] = unit[1]
    buf[k + 7] = unit[2]
    return k + 8


cdef inline str _ascii_padded(const char *buf, int k, int width):
    """``buf[:k]`` (ASCII) as a str, padded with spaces to ``width`` characters."""
    cdef Py_ssize_t total = width if width > k else k
    cdef str s = PyUnicode_New(total, 127)
    cdef char *d
    if total == 0:
        return s
    d = <char *>PyUnicode_DATA(s)
    memcpy(d, buf, k)
    memset(d + k, CH_SPACE, total - k)
    return s


@cython.boundscheck(False)  # each order value is checked against len(values)
def format_sz_column(const uint64_t[::1] values, const int64_t[::1] order, int width=0):
    """``[format_sz(values[i]).ljust(width) for i in order]`` (non-raw), values below 2^63.

    The value is rounded to a double as Python's ``float()`` does; above 1 KiB its
    ``'%.3f'`` text in the unit is computed exactly in integers (_fmt_scaled), which is
    what the correctly rounded ``'%.3f'`` of Python prints; the caller keeps 2^64-1
    (``max``) and other specials on the Python path.
    """
    cdef Py_ssize_t n = order.shape[0], i, nv = values.shape[0]
    cdef int64_t r
    cdef char buf[64]
    cdef int k
    cdef double f
    cdef uint64_t m
    out = [None] * n
    for i in range(n):
        r = order[i]
        if r < 0 or r >= nv:
            raise IndexError("order out of range")
        if values[r] >= (<uint64_t>1) << 63:
            raise ValueError("value not below 2^63")
        f = <double>values[r]
        m = <uint64_t>f                 # f < 2^63 + 1: an integer that fits
        if f > _EIB:
            k = _fmt_scaled(buf, 64, m, 60, "EiB")
        elif f > _PIB:
            k = _fmt_scaled(buf, 64, m, 50, "PiB")
        elif f > _TIB:
            k = _fmt_scaled(buf, 64, m, 40, "TiB")
        elif f > _GIB:
            k = _fmt_scaled(buf, 64, m, 30, "GiB")
        elif f > _MIB:
            k = _fmt_scaled(buf, 64, m, 20, "MiB")
        elif f > _KIB:
            k = _fmt_scaled(buf, 64, m, 10, "KiB")
        else:
            k = _put_u64(buf, 64 - 2, 0, m)
            if k >= 0:
                buf[k] = CH_SPACE
                buf[k + 1] = 66      # "B"
                k += 2
        if k < 0 or k >= 64:
            raise ValueError("formatting failed")
        out[i] = _ascii_padded(buf, k, width)
    return out


def format_nr_range(Py_ssize_t n, int width=0):
    """``[format_nr(i).ljust(width) for i in range(n)]`` (non-raw: ``,`` separators)."""
    cdef char digits[32]
    cdef char buf[48]
    cdef Py_ssize_t i
    cdef int nd, j, k, lead
    out = [None] * n
    for i in range(n):
        nd = snprintf(digits, 32, "%lld", <long long>i)
        if nd <= 0 or nd >= 32:
            raise ValueError("formatting failed")
        k = 0
        lead = nd % 3
        if lead == 0:
            lead = 3
        for j in range(nd):
            if j and (j - lead) % 3 == 0:
                buf[k] = CH_COMMA
                k += 1
            buf[k] = digits[j]
            k += 1
        out[i] = _ascii_padded(buf, k, width)
    return out


# ---------------------------------------------------------------------------------------
# the region listing's rows joined into one block (twin: access_kernels_py.join_rows)

cdef inline bint _ascii_cell(object c):
    """An exact str stored as compact ASCII (one byte per character at PyUnicode_DATA)."""
    return PyUnicode_CheckExact(c) and PyUnicode_IS_COMPACT_ASCII(c)


@cython.boundscheck(False)  # tuple lengths == n checked below; cells at i*nlist+jl < n*nlist
def join_rows(columns, Py_ssize_t n):
    """``access_kernels_py.join_rows``: the ``n`` rows of str / list-of-str columns joined
    with ``"\\n"`` into one str, copied with memcpy when every cell is an ASCII str (the
    twin's result otherwise, its errors included)."""
    cdef Py_ssize_t ncol, nlist = 0, i, j, jl, L, total = 0, cur = 0
    cdef const char **lit_ptr = NULL
    cdef Py_ssize_t *lit_len = NULL
    cdef Py_ssize_t *col_list = NULL      # column j: its list index, or -1 for a literal
    cdef const char **cell_ptr = NULL
    cdef Py_ssize_t *cell_len = NULL
    cdef char *dst
    cdef bint bad = False
    if n < 0:
        raise ValueError("negative row count")
    cols = list(columns)
    ncol = len(cols)
    held = []                 # tuples of the list columns: own a reference to every cell
    for c in cols:
        if isinstance(c, str):
            if not _ascii_cell(c):
                return _join_rows_py(cols, n)
            continue
        t = tuple(c)
        if len(t) != n:
            raise ValueError("column length differs from the row count")
        held.append(t)
    nlist = len(held)
    if n == 0:
        return ""
    if nlist and n > PY_SSIZE_T_MAX // nlist // <Py_ssize_t>sizeof(Py_ssize_t):
        raise MemoryError()
    lit_ptr = <const char **>malloc((ncol + 1) * sizeof(char *))
    lit_len = <Py_ssize_t *>malloc((ncol + 1) * sizeof(Py_ssize_t))
    col_list = <Py_ssize_t *>malloc((ncol + 1) * sizeof(Py_ssize_t))
    cell_ptr = <const char **>malloc((n * nlist + 1) * sizeof(char *))
    cell_len = <Py_ssize_t *>malloc((n * nlist + 1) * sizeof(Py_ssize_t))
    try:
        if lit_ptr == NULL or lit_len == NULL or col_list == NULL or cell_ptr == NULL \
                or cell_len == NULL:
            raise MemoryError()
        # pass 1 (GIL held): pointers and lengths of every cell, all-ASCII check, total
        jl = 0
        for j in range(ncol):
            c = cols[j]
            if isinstance(c, str):
                col_list[j] = -1
                lit_ptr[j] = <const char *>PyUnicode_DATA(c)
                lit_len[j] = PyUnicode_GET_LENGTH(c)
                L = lit_len[j]
                if L and L > (PY_SSIZE_T_MAX - total) // n:
                    raise MemoryError()
                total += L * n
                continue
            col_list[j] = jl
            t = held[jl]
            for i in range(n):
                x = (<tuple>t)[i]
                if not _ascii_cell(x):
                    return _join_rows_py(cols, n)
                L = PyUnicode_GET_LENGTH(x)
                if L > PY_SSIZE_T_MAX - total:
                    raise MemoryError()
                total += L
                cell_ptr[i * nlist + jl] = <const char *>PyUnicode_DATA(x)
                cell_len[i * nlist + jl] = L
            jl += 1
        if n - 1 > PY_SSIZE_T_MAX - total:
            raise MemoryError()
        total += n - 1            # the newlines between rows
        out = PyUnicode_New(total, 127)
        if total == 0:
            return out
        dst = <char *>PyUnicode_DATA(out)
        # pass 2 (no GIL): the tuples in ``held`` and ``cols`` keep every cell alive
        with nogil:
            for i in range(n):
                if i:
                    if cur >= total:
                        bad = True
                        break
                    dst[cur] = 10     # "\n"
                    cur += 1
                for j in range(ncol):
                    jl = col_list[j]
                    if jl < 0:
                        L = lit_len[j]
                        if L > total - cur:
                            bad = True
                            break
                        memcpy(dst + cur, lit_ptr[j], L)
                    else:
                        L = cell_len[i * nlist + jl]
                        if L > total - cur:
                            bad = True
                            break
                        memcpy(dst + cur, cell_ptr[i * nlist + jl], L)
                    cur += L
                if bad:
                    break
        if bad or cur != total:
            raise RuntimeError("join_rows: cell lengths changed while copying")
        return out
    finally:
        free(lit_ptr)
        free(lit_len)
        free(col_list)
        free(cell_ptr)
        free(cell_len)
