# cython: language_level=3
"""Inline helpers shared by the Cython kernels, defined once and cimported.

There is no module behind this file: everything here is a C type, a constant or an
inline function, so a kernel that cimports it carries its own copy and imports
nothing at run time.

* ``dp_int128`` / ``dp_uint128``: the C compiler's 128-bit integers (exact sums and
  products where damo's Python integers exceed 64 bits);
* ``CH_*``: the ASCII codes the byte scanners compare against;
* ``_ld_*``: little-endian packed field readers (unaligned loads through memcpy);
* ``_push_digit``, ``_parse_u64``, ``_parse_i64``: overflow-checked decimal parsers;
* ``_sec_nsec_to_ns``, ``_ts_ok``, ``_ts_to_double``: timestamp helpers.

Every helper that reads through a pointer is given the number of readable bytes and
never reads past it; callers check a cursor against the buffer end before calling.
"""
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t, uint8_t
from libc.string cimport memcpy

cdef extern from *:
    """
    typedef __int128 dp_int128;
    typedef unsigned __int128 dp_uint128;
    /* 10**0 .. 10**22: every one is exact in a double */
    static const double dp_pow10[23] __attribute__((unused)) = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
        1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    """
    # Cython only needs an integer type of the same signedness; C compiles __int128
    ctypedef long long dp_int128
    ctypedef unsigned long long dp_uint128
    const double dp_pow10[23]

# record model: the age of a region whose age is not known (model.AGE_UNKNOWN)
cdef enum:
    AGE_UNKNOWN = -1

# ASCII codes
cdef enum:
    CH_TAB = 9          # '\t'
    CH_LF = 10          # '\n'
    CH_CR = 13          # '\r'
    CH_SPACE = 32       # ' '
    CH_QUOTE = 34       # '"'
    CH_PLUS = 43        # '+'
    CH_COMMA = 44       # ','
    CH_MINUS = 45       # '-'
    CH_DOT = 46         # '.'
    CH_0 = 48           # '0'
    CH_9 = 57           # '9'
    CH_COLON = 58       # ':'
    CH_EQUALS = 61      # '='
    CH_UPPER_B = 66     # 'B'
    CH_UPPER_E = 69     # 'E'
    CH_LBRACKET = 91    # '['
    CH_BACKSLASH = 92   # '\\'
    CH_RBRACKET = 93    # ']'
    CH_LOWER_E = 101    # 'e'
    CH_LOWER_N = 110    # 'n'
    CH_LBRACE = 123     # '{'
    CH_RBRACE = 125     # '}'

# results of _parse_u64 / _parse_i64
cdef enum:
    PARSE_OK = 0
    PARSE_BAD = -1          # empty, or not a digit
    PARSE_OVERFLOW = -2     # out of the type's range


# ------------------------------------------------------------ packed field readers

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


# ------------------------------------------------------------ decimal parsers

cdef inline bint _is_digit(uint8_t c) noexcept nogil:
    return CH_0 <= c <= CH_9

cdef inline bint _push_digit(uint64_t* v, uint64_t d) noexcept nogil:
    """v = v * 10 + d (d in 0..9) unless that exceeds 2**64 - 1: then False, v unchanged."""
    # 1844674407370955161 = (2**64 - 1) // 10; the last digit of 2**64 - 1 is 5
    if v[0] > 1844674407370955161ULL or (v[0] == 1844674407370955161ULL and d > 5):
        return False
    v[0] = v[0] * 10 + d
    return True

cdef inline int64_t _neg_u64(uint64_t v) noexcept nogil:
    """-v as int64 for 0 <= v <= 2**63 (no signed overflow at -2**63)."""
    return -(<int64_t>(v - 1)) - 1 if v else 0

cdef inline int _parse_u64(const uint8_t* s, Py_ssize_t n, uint64_t* out) noexcept nogil:
    """The n bytes at s as an unsigned decimal: digits only; PARSE_OK / _BAD / _OVERFLOW."""
    cdef uint64_t v = 0, d
    cdef Py_ssize_t i
    if n <= 0:
        return PARSE_BAD
    for i in range(n):
        d = s[i] - CH_0
        if d > 9:
            return PARSE_BAD
        if not _push_digit(&v, d):
            return PARSE_OVERFLOW
    out[0] = v
    return PARSE_OK

cdef inline int _parse_i64(const uint8_t* s, Py_ssize_t n, int64_t* out) noexcept nogil:
    """The n bytes at s as ``-?[0-9]+`` in int64 range; PARSE_OK / _BAD / _OVERFLOW."""
    cdef bint neg = False
    cdef uint64_t v = 0
    cdef int rc
    if n > 0 and s[0] == CH_MINUS:
        neg = True
        s += 1
        n -= 1
    rc = _parse_u64(s, n, &v)
    if rc != PARSE_OK:
        return rc
    if neg:
        if v > 9223372036854775808ULL:
            return PARSE_OVERFLOW
        out[0] = _neg_u64(v)
    else:
        if v > 9223372036854775807ULL:
            return PARSE_OVERFLOW
        out[0] = <int64_t>v
    return PARSE_OK

cdef inline bint _bytes_eq(const uint8_t* s, Py_ssize_t n, const char* lit,
                           Py_ssize_t ln) noexcept nogil:
    """The n bytes at s equal the ln bytes of lit."""
    cdef Py_ssize_t i
    if n != ln:
        return False
    for i in range(n):
        if s[i] != <uint8_t>lit[i]:
            return False
    return True


# ------------------------------------------------------------ timestamps

cdef inline int _sec_nsec_to_ns(int64_t sec, int64_t nsec, int64_t* out) noexcept nogil:
    """sec * 10**9 + nsec (exact, 128-bit) into out; -1 when it leaves int64."""
    cdef dp_int128 v = <dp_int128>sec * 1000000000 + <dp_int128>nsec
    if v > <dp_int128>9223372036854775807LL or v < -<dp_int128>9223372036854775807LL - 1:
        return -1
    out[0] = <int64_t>v
    return 0

cdef inline bint _ts_ok(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """The n bytes at s match ``[0-9]+(\\.[0-9]*)?|\\.[0-9]+`` (a trace timestamp)."""
    cdef Py_ssize_t i, nd = 0, ndot = 0
    if n <= 0:
        return False
    for i in range(n):
        if _is_digit(s[i]):
            nd += 1
        elif s[i] == CH_DOT:
            ndot += 1
            if ndot > 1:
                return False
        else:
            return False
    return nd > 0

cdef inline bint _ts_to_double(const uint8_t* s, Py_ssize_t n, double* out) noexcept nogil:
    """float() of a _ts_ok timestamp with <= 15 significant digits, correctly rounded
    (an exact integer mantissa divided by an exact power of ten: one IEEE rounding, as
    strtod).  False when it does not apply (the caller uses strtod)."""
    cdef uint64_t m = 0
    cdef int nd = 0, frac = 0
    cdef bint dot = False
    cdef Py_ssize_t i
    cdef uint8_t c
    for i in range(n):
        c = s[i]
        if c == CH_DOT:
            dot = True
            continue
        if m == 0 and c == CH_0:
            if dot:
                frac += 1
            continue
        nd += 1
        if nd > 15:
            return False
        m = m * 10 + (c - CH_0)
        if dot:
            frac += 1
    if frac > 22:
        return False
    out[0] = (<double>m) / dp_pow10[frac]
    return True
