# Included by _trace_kernels.pyx (after its _CLASS table and CH_* / FAST_* constants):
# the tokenizer's fast path for runs of damon_aggregated lines (_Rows._tok).


cdef inline Py_ssize_t _digits(const uint8_t* q, uint64_t* out) noexcept nogil:
    """The run of decimal digits at q: its length; its value (mod 2**64) in out.  The
    caller guarantees a non-digit byte ahead (the line's newline)."""
    cdef uint64_t v = 0, d
    cdef Py_ssize_t k = 0
    while True:
        d = <uint64_t>q[k] - CH_0
        if d > 9:
            break
        v = v * 10 + d
        k += 1
    out[0] = v
    return k


cdef extern from *:
    """
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    #define DP_SWAR_DIGITS 1
    #else
    #define DP_SWAR_DIGITS 0
    #endif
    """
    const bint DP_SWAR_DIGITS


cdef inline Py_ssize_t _long_digits(const uint8_t* q, Py_ssize_t rem,
                                    uint64_t* out) noexcept nogil:
    """_digits for long runs (addresses): eight digits at a time (SWAR: one unaligned
    load, a check that all eight are digits, three multiplications) while at least
    eight bytes remain (rem: readable bytes at q), then one at a time."""
    cdef uint64_t v = 0, d, x
    cdef Py_ssize_t k = 0
    if DP_SWAR_DIGITS:
        while k + 8 <= rem:
            memcpy(&x, q + k, 8)
            if ((x & 0xF0F0F0F0F0F0F0F0ULL)
                    | (((x + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) \
                    != 0x3333333333333333ULL:
                break
            x -= 0x3030303030303030ULL
            x = x * 10 + (x >> 8)
            x = (((x & 0x000000FF000000FFULL) * 0x000F424000000064ULL)
                 + (((x >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >> 32
            v = v * 100000000ULL + x
            k += 8
    while True:
        d = <uint64_t>q[k] - CH_0
        if d > 9:
            break
        v = v * 10 + d
        k += 1
    out[0] = v
    return k


cdef inline Py_ssize_t _fast_tail(const uint8_t* q, Py_ssize_t rem, uint64_t* rs,
                                  uint64_t* re_, int64_t* acc, int64_t* age,
                                  uint8_t* hasage) noexcept nogil:
    """Fast path of a damon_aggregated line after its prefix: ``<start>-<end>:`` then
    ``<nr_accesses>`` and optionally ``<age>`` (or ``None``), separated by whitespace.
    Returns the offset of the line's newline (the sentinel that bounds every read; rem:
    the readable bytes at q, for the eight-byte loads), or -1 when the tail is anything
    else (the general path then parses the line and reports its errors)."""
    cdef Py_ssize_t j, k
    cdef uint64_t v
    cdef bint neg
    k = _long_digits(q, rem, rs)
    if k == 0 or k > FAST_U64_DIGITS or q[k] != CH_MINUS:
        return -1
    j = k + 1
    k = _long_digits(q + j, rem - j, re_)
    if k == 0 or k > FAST_U64_DIGITS or q[j + k] != CH_COLON:
        return -1
    j += k + 1
    if _CLASS[q[j]] != C_SPACE:
        return -1
    while _CLASS[q[j]] == C_SPACE:
        j += 1
    neg = q[j] == CH_MINUS
    j += neg
    k = _digits(q + j, &v)
    if k == 0 or k > FAST_I64_DIGITS:
        return -1
    j += k
    acc[0] = -<int64_t>v if neg else <int64_t>v
    if _CLASS[q[j]] == C_TOKEN:
        return -1
    while _CLASS[q[j]] == C_SPACE:
        j += 1
    if _CLASS[q[j]] == C_EOL:
        hasage[0] = 0
        age[0] = AGE_UNKNOWN
        return j
    if q[j] == 78 and q[j + 1] == 111 and q[j + 2] == 110 and q[j + 3] == 101:  # "None"
        age[0] = AGE_UNKNOWN
        j += 4
    else:
        neg = q[j] == CH_MINUS
        j += neg
        k = _digits(q + j, &v)
        if k == 0 or k > FAST_I64_DIGITS:
            return -1
        j += k
        age[0] = -<int64_t>v if neg else <int64_t>v
    if _CLASS[q[j]] == C_TOKEN:
        return -1
    while _CLASS[q[j]] == C_SPACE:
        j += 1
    if _CLASS[q[j]] != C_EOL:
        return -1
    hasage[0] = 1
    return j



cdef inline Py_ssize_t _fast_line(const uint8_t* q, Py_ssize_t rem, const uint8_t* post_p,
                                  Py_ssize_t post, const uint8_t** lt, Py_ssize_t* ltl,
                                  int64_t* end_ns, uint64_t* rs, uint64_t* re_, int64_t* acc,
                                  int64_t* age, uint8_t* hasage) noexcept nogil:
    """Fast path of a damon_aggregated line from its timestamp token on (q; rem bytes
    to the end of the buffer, whose last is a newline): the timestamp (parsed unless it
    equals the last one, ``lt``), the ``post`` bytes that must follow it, the tail
    (_fast_tail).  Returns the offset of the line's newline from q, or -1 (the
    general path then parses the line)."""
    cdef Py_ssize_t tl = 0, k
    cdef double d
    while _CLASS[q[tl]] == C_TOKEN:        # stops at the line's newline at the latest
        tl += 1
    if tl < 2 or q[tl - 1] != CH_COLON or tl + post >= rem:
        return -1
    if tl != ltl[0] or memcmp(q, lt[0], tl) != 0:
        if not _ts_ok(q, tl - 1) or not _ts_to_double(q, tl - 1, &d):
            return -1
        d = d * 1e9
        if not (d < 9223372036854775808.0):
            return -1
        end_ns[0] = <int64_t>d
        lt[0] = q
        ltl[0] = tl
    if memcmp(q + tl, post_p, post) != 0:
        return -1
    k = _fast_tail(q + tl + post, rem - tl - post, rs, re_, acc, age, hasage)
    if k < 0:
        return -1
    return tl + post + k
