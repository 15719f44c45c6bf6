# Shortest round-trip formatting of doubles, as Python's float.__repr__ prints them.
#
# The digits come from the Ryu algorithm (Ulf Adams, "Ryu: fast float-to-string
# conversion", PLDI 2018): the shortest decimal in the rounding interval of the double,
# the one nearest to it on ties, which is what CPython's dtoa mode 0 returns. The
# layout follows CPython's format_float_short for the 'r' code with
# Py_DTSF_ADD_DOT_0: fixed notation when -4 < decpt <= 16, else d.ddde+XX.
# Included by _report_kernels.pyx (which cimports dp_uint128 and the CH_* codes from
# _kernels_common.pxd); tested against repr() on millions of doubles
# (tests/unit/test_float_repr.py).

cdef enum:
    RYU_POW5_INV_BITCOUNT = 125
    RYU_POW5_BITCOUNT = 125
    RYU_POW5_INV_TABLE = 342
    RYU_POW5_TABLE = 326

cdef uint64_t _ryu_pow5_inv[RYU_POW5_INV_TABLE][2]
cdef uint64_t _ryu_pow5[RYU_POW5_TABLE][2]
cdef const char *_DIGIT_PAIRS = (b"00010203040506070809101112131415161718192021222324"
                                 b"25262728293031323334353637383940414243444546474849"
                                 b"50515253545556575859606162636465666768697071727374"
                                 b"75767778798081828384858687888990919293949596979899")


cdef int _ryu_fill_tables() except -1:
    """5**i and 2**k / 5**i to 125 significant bits (exact integer arithmetic, once)."""
    mask = (1 << 64) - 1
    for i in range(RYU_POW5_INV_TABLE):
        p = 5 ** int(i)
        j = p.bit_length() - 1 + RYU_POW5_INV_BITCOUNT
        inv = (1 << j) // p + 1
        _ryu_pow5_inv[i][0] = inv & mask
        _ryu_pow5_inv[i][1] = inv >> 64
    for i in range(RYU_POW5_TABLE):
        p = 5 ** int(i)
        j = p.bit_length() - RYU_POW5_BITCOUNT
        v = p >> j if j >= 0 else p << -j
        _ryu_pow5[i][0] = v & mask
        _ryu_pow5[i][1] = v >> 64
    return 0


_ryu_fill_tables()


cdef inline int32_t _pow5bits(int32_t e) noexcept nogil:
    return <int32_t>(((<uint32_t>e) * 1217359) >> 19) + 1


cdef inline uint32_t _log10pow2(int32_t e) noexcept nogil:
    return ((<uint32_t>e) * 78913) >> 18


cdef inline uint32_t _log10pow5(int32_t e) noexcept nogil:
    return ((<uint32_t>e) * 732923) >> 20


cdef inline uint32_t _pow5factor(uint64_t v) noexcept nogil:
    cdef uint32_t n = 0
    while v % 5 == 0:
        v //= 5
        n += 1
    return n


cdef inline uint64_t _mulshift64(uint64_t m, const uint64_t *mul, int32_t j) noexcept nogil:
    cdef dp_uint128 b0 = <dp_uint128>m * mul[0]
    cdef dp_uint128 b2 = <dp_uint128>m * mul[1]
    return <uint64_t>(((b0 >> 64) + b2) >> (j - 64))


cdef int _ryu_digits(uint64_t ieee_m, uint32_t ieee_e, uint64_t *digits,
                     int32_t *exponent) noexcept nogil:
    """Shortest digits (``digits`` x 10**``exponent``) of a finite, non-zero double."""
    cdef int32_t e2, q, k, i, j
    cdef int32_t e10, removed = 0
    cdef uint64_t m2, mv, vr, vp, vm, output
    cdef uint64_t vp10, vm10, vr10
    cdef uint32_t mm_shift, vr_mod, vm_mod
    cdef bint accept_bounds, vm_tz = False, vr_tz = False, round_up = False
    cdef int last_removed = 0
    if ieee_e == 0:
        e2 = 1 - 1023 - 52 - 2
        m2 = ieee_m
    else:
        e2 = <int32_t>ieee_e - 1023 - 52 - 2
        m2 = ((<uint64_t>1) << 52) | ieee_m
    accept_bounds = (m2 & 1) == 0
    mv = 4 * m2
    mm_shift = 1 if (ieee_m != 0 or ieee_e <= 1) else 0
    if e2 >= 0:
        q = <int32_t>_log10pow2(e2) - (1 if e2 > 3 else 0)
        e10 = q
        k = RYU_POW5_INV_BITCOUNT + _pow5bits(q) - 1
        i = -e2 + q + k
        vr = _mulshift64(4 * m2, _ryu_pow5_inv[q], i)
        vp = _mulshift64(4 * m2 + 2, _ryu_pow5_inv[q], i)
        vm = _mulshift64(4 * m2 - 1 - mm_shift, _ryu_pow5_inv[q], i)
        if q <= 21:
            if mv % 5 == 0:
                vr_tz = _pow5factor(mv) >= <uint32_t>q
            elif accept_bounds:
                vm_tz = _pow5factor(mv - 1 - mm_shift) >= <uint32_t>q
            else:
                vp -= 1 if _pow5factor(mv + 2) >= <uint32_t>q else 0
    else:
        q = <int32_t>_log10pow5(-e2) - (1 if -e2 > 1 else 0)
        e10 = q + e2
        i = -e2 - q
        k = _pow5bits(i) - RYU_POW5_BITCOUNT
        j = q - k
        vr = _mulshift64(4 * m2, _ryu_pow5[i], j)
        vp = _mulshift64(4 * m2 + 2, _ryu_pow5[i], j)
        vm = _mulshift64(4 * m2 - 1 - mm_shift, _ryu_pow5[i], j)
        if q <= 1:
            vr_tz = True
            if accept_bounds:
                vm_tz = mm_shift == 1
            else:
                vp -= 1
        elif q < 63:
            vr_tz = (mv & (((<uint64_t>1) << q) - 1)) == 0
    if vm_tz or vr_tz:
        while True:
            vp10 = vp // 10
            vm10 = vm // 10
            if vp10 <= vm10:
                break
            vm_mod = <uint32_t>(vm - 10 * vm10)
            vr10 = vr // 10
            vr_mod = <uint32_t>(vr - 10 * vr10)
            vm_tz = vm_tz and vm_mod == 0
            vr_tz = vr_tz and last_removed == 0
            last_removed = vr_mod
            vr = vr10
            vp = vp10
            vm = vm10
            removed += 1
        if vm_tz:
            while True:
                vm10 = vm // 10
                vm_mod = <uint32_t>(vm - 10 * vm10)
                if vm_mod != 0:
                    break
                vp10 = vp // 10
                vr10 = vr // 10
                vr_mod = <uint32_t>(vr - 10 * vr10)
                vr_tz = vr_tz and last_removed == 0
                last_removed = vr_mod
                vr = vr10
                vp = vp10
                vm = vm10
                removed += 1
        if vr_tz and last_removed == 5 and vr % 2 == 0:
            last_removed = 4   # round half to even
        output = vr + (1 if ((vr == vm and (not accept_bounds or not vm_tz))
                             or last_removed >= 5) else 0)
    else:
        while True:
            vp10 = vp // 10
            vm10 = vm // 10
            if vp10 <= vm10:
                break
            vr10 = vr // 10
            vr_mod = <uint32_t>(vr - 10 * vr10)
            round_up = vr_mod >= 5
            vr = vr10
            vp = vp10
            vm = vm10
            removed += 1
        output = vr + (1 if (vr == vm or round_up) else 0)
    digits[0] = output
    exponent[0] = e10 + removed
    return 0


cdef inline int _decimal_length(uint64_t v) noexcept nogil:
    cdef int n = 1
    while v >= 10:
        v //= 10
        n += 1
    return n


cdef Py_ssize_t _write_float_repr(double x, char *out) noexcept nogil:
    """Write repr(x) (at most 25 bytes; NaN as ``nan``) to ``out``; return its length."""
    cdef uint64_t bits
    memcpy(&bits, &x, 8)
    cdef uint64_t ieee_m = bits & (((<uint64_t>1) << 52) - 1)
    cdef uint32_t ieee_e = <uint32_t>((bits >> 52) & 0x7FF)
    cdef bint neg = (bits >> 63) != 0
    cdef Py_ssize_t pos = 0, k
    cdef uint64_t digits, d
    cdef int32_t exp10, decpt, e
    cdef int nd
    cdef char buf[24]
    if neg:
        out[0] = CH_MINUS
        pos = 1
    if ieee_e == 0x7FF:
        if ieee_m != 0:
            memcpy(out, b"nan", 3)
            return 3
        memcpy(out + pos, b"inf", 3)
        return pos + 3
    if ieee_e == 0 and ieee_m == 0:
        memcpy(out + pos, b"0.0", 3)
        return pos + 3
    _ryu_digits(ieee_m, ieee_e, &digits, &exp10)
    nd = _decimal_length(digits)
    # digits as text, two at a time from the end
    d = digits
    k = nd
    while d >= 100:
        k -= 2
        memcpy(buf + k, _DIGIT_PAIRS + 2 * (d % 100), 2)
        d //= 100
    if d >= 10:
        k -= 2
        memcpy(buf + k, _DIGIT_PAIRS + 2 * d, 2)
    else:
        buf[k - 1] = <char>(CH_0 + d)
    decpt = nd + exp10          # value = 0.DIGITS x 10**decpt
    if -4 < decpt <= 16:
        if decpt <= 0:
            out[pos] = CH_0
            out[pos + 1] = CH_DOT
            pos += 2
            for k in range(-decpt):
                out[pos] = CH_0
                pos += 1
            memcpy(out + pos, buf, nd)
            pos += nd
        elif decpt >= nd:
            memcpy(out + pos, buf, nd)
            pos += nd
            for k in range(decpt - nd):
                out[pos] = CH_0
                pos += 1
            out[pos] = CH_DOT
            out[pos + 1] = CH_0
            pos += 2
        else:
            memcpy(out + pos, buf, decpt)
            pos += decpt
            out[pos] = CH_DOT
            pos += 1
            memcpy(out + pos, buf + decpt, nd - decpt)
            pos += nd - decpt
        return pos
    out[pos] = buf[0]
    pos += 1
    if nd > 1:
        out[pos] = CH_DOT
        pos += 1
        memcpy(out + pos, buf + 1, nd - 1)
        pos += nd - 1
    e = decpt - 1
    out[pos] = CH_LOWER_E
    if e < 0:
        out[pos + 1] = CH_MINUS
        e = -e
    else:
        out[pos + 1] = CH_PLUS
    pos += 2
    if e >= 100:
        out[pos] = <char>(CH_0 + e // 100)
        pos += 1
        e %= 100
    memcpy(out + pos, _DIGIT_PAIRS + 2 * e, 2)
    return pos + 2


def float_repr(double x):
    """repr(x) through the Ryu formatter (bytes); for tests against Python's repr."""
    cdef char out[32]
    cdef Py_ssize_t n = _write_float_repr(x, out)
    return PyBytes_FromStringAndSize(out, n)


@cython.boundscheck(False)  # i < n = len(xs); buf holds 26 bytes per value
def float_repr_many(const double[::1] xs):
    """The reprs of ``xs`` joined by newlines (bytes); for bulk tests against repr."""
    cdef Py_ssize_t n = xs.shape[0], i, pos = 0
    cdef char *buf = <char *>malloc(n * 26 + 1)
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            for i in range(n):
                pos += _write_float_repr(xs[i], buf + pos)
                buf[pos] = CH_LF
                pos += 1
        return PyBytes_FromStringAndSize(buf, pos)
    finally:
        free(buf)
