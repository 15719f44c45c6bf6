# cython: language_level=3, wraparound=False, cdivision=True
"""Cython kernels of damo's JSON record format: the region reader and the region writer.

* :func:`json_regions_scan` parses the region objects of one ``regions`` array for the
  streaming reader (``damo_pipe.formats.json_fast``); a region it does not handle is
  reported as ``JsonScan.J_UNUSUAL`` and converted by the reference code
  (``damo_json.regions_from_dicts``), its pure-Python twin.
* :func:`json_regions_text` writes region objects as damo's ``json.dumps(indent=4)``
  does (``damo_pipe.formats.writers``; its twin is the ``json`` module).

Every cursor step is checked against the end of the buffer before a byte is read.
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint8_t
from libc.string cimport memcmp, memcpy

from damo_pipe._kernels_common cimport (
    AGE_UNKNOWN, CH_0, CH_BACKSLASH, CH_COLON, CH_COMMA, CH_CR, CH_LBRACE, CH_LBRACKET, CH_LF,
    CH_LOWER_E, CH_LOWER_N, CH_MINUS, CH_PLUS, CH_QUOTE, CH_RBRACE, CH_RBRACKET, CH_SPACE,
    CH_TAB, CH_DOT, CH_UPPER_B, CH_UPPER_E, _bytes_eq, _is_digit, _neg_u64, _push_digit)

import numpy as np


# status of json_regions_scan (visible to Python as JsonScan.J_*)
cpdef enum JsonScan:
    J_DONE = 0       # the regions array ended (pos is after ']')
    J_MORE = 1       # data ends inside a region (pos = start of that region)
    J_UNUSUAL = 2    # a region the fast path does not handle (pos = its '{')
    J_FULL = 3       # output arrays full (pos = start of the next region)

cdef enum:
    REGION_OK = 0    # _one_region: one region parsed

# value kinds returned by _scalar
cdef enum ValueKind:
    V_EOF = -2       # data ended
    V_BAD = -1       # not handled by the fast path
    V_NULL = 0
    V_UINT = 1       # unsigned integer (JSON number or digit/comma string)
    V_NEG = 2        # negative JSON integer
    V_OTHER = 3      # any other scalar that was skipped (string / number / bool)

# key ids returned by _key
cdef enum Key:
    KEY_EOF = -2
    KEY_BAD = -1
    KEY_UNKNOWN = 0
    KEY_START
    KEY_END
    KEY_NR_ACCESSES
    KEY_AGE
    KEY_PROBE_HITS
    KEY_SZ_FILTER_PASSED
    KEY_SAMPLES
    KEY_PERCENT
    KEY_USEC
    KEY_AGGR_INTERVALS


# ======================================================================= generic reader

cdef inline Py_ssize_t _skip_ws(const uint8_t* b, Py_ssize_t p, Py_ssize_t n) noexcept nogil:
    """Skip JSON whitespace; runs of spaces (indentation) 8 bytes at a time."""
    cdef uint64_t w
    cdef uint8_t c
    while p < n:
        c = b[p]
        if c == CH_SPACE:
            while n - p >= 8:
                memcpy(&w, b + p, 8)
                if w != 0x2020202020202020ULL:
                    break
                p += 8
            while p < n and b[p] == CH_SPACE:
                p += 1
            continue
        if c == CH_LF or c == CH_CR or c == CH_TAB:
            p += 1
            continue
        break
    return p


cdef inline int _scalar(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n, uint64_t* out,
                        bint want, bint allow_b=False) noexcept nogil:
    """Parse a scalar at pp[0]; advance pp.  Strings of digits and commas and JSON
    integers give V_UINT; 'N B' strings give V_UINT too (sz_filter_passed).  With
    ``want`` a value that is not a number is V_BAD, else V_OTHER."""
    cdef Py_ssize_t p = pp[0]
    cdef uint64_t v = 0
    cdef bint any_digit = False, neg = False, other = False
    cdef uint8_t c
    if p >= n:
        return V_EOF
    c = b[p]
    if c == CH_LOWER_N:  # null
        if n - p < 4:
            return V_EOF
        if b[p + 1] == c'u' and b[p + 2] == c'l' and b[p + 3] == c'l':
            pp[0] = p + 4
            return V_NULL
        return V_BAD
    if c == CH_QUOTE:  # string
        p += 1
        while True:
            if p >= n:
                return V_EOF
            c = b[p]
            if c == CH_QUOTE:
                break
            if c == CH_BACKSLASH or c < CH_SPACE:
                return V_BAD
            if _is_digit(c):
                if not _push_digit(&v, c - CH_0):
                    other = True
                any_digit = True
            elif c == CH_COMMA:
                pass
            elif (allow_b and c == CH_SPACE and n - p > 2 and b[p + 1] == CH_UPPER_B
                  and b[p + 2] == CH_QUOTE and any_digit):
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
    if c == CH_MINUS or _is_digit(c):  # number
        if c == CH_MINUS:
            neg = True
            p += 1
        while p < n and _is_digit(b[p]):
            if not _push_digit(&v, b[p] - CH_0):
                other = True
            any_digit = True
            p += 1
        if p >= n:
            return V_EOF
        c = b[p]
        if c == CH_DOT or c == CH_LOWER_E or c == CH_UPPER_E:  # fraction / exponent
            other = True
            while p < n and (_is_digit(b[p]) or b[p] == CH_DOT or b[p] == CH_LOWER_E
                             or b[p] == CH_UPPER_E or b[p] == CH_PLUS or b[p] == CH_MINUS):
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
    return V_BAD    # true / false / objects / arrays


cdef inline int _key(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n) noexcept nogil:
    """Read '"key"' ws ':' ws at pp[0]; return its Key (KEY_EOF / KEY_BAD on failure)."""
    cdef Py_ssize_t p = pp[0], s, l
    if p >= n:
        return KEY_EOF
    if b[p] != CH_QUOTE:
        return KEY_BAD
    s = p + 1
    p = s
    while p < n and b[p] != CH_QUOTE:
        if b[p] == CH_BACKSLASH:
            return KEY_BAD
        p += 1
    if p >= n:
        return KEY_EOF
    l = p - s
    p = _skip_ws(b, p + 1, n)
    if p >= n:
        return KEY_EOF
    if b[p] != CH_COLON:
        return KEY_BAD
    p = _skip_ws(b, p + 1, n)
    if p >= n:
        return KEY_EOF
    pp[0] = p
    if _bytes_eq(b + s, l, b"start", 5): return KEY_START
    if _bytes_eq(b + s, l, b"end", 3): return KEY_END
    if _bytes_eq(b + s, l, b"nr_accesses", 11): return KEY_NR_ACCESSES
    if _bytes_eq(b + s, l, b"age", 3): return KEY_AGE
    if _bytes_eq(b + s, l, b"probe_hits", 10): return KEY_PROBE_HITS
    if _bytes_eq(b + s, l, b"sz_filter_passed", 16): return KEY_SZ_FILTER_PASSED
    if _bytes_eq(b + s, l, b"samples", 7): return KEY_SAMPLES
    if _bytes_eq(b + s, l, b"percent", 7): return KEY_PERCENT
    if _bytes_eq(b + s, l, b"usec", 4): return KEY_USEC
    if _bytes_eq(b + s, l, b"aggr_intervals", 14): return KEY_AGGR_INTERVALS
    return KEY_UNKNOWN


cdef int _one_region(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n, uint64_t* o_s,
                     uint64_t* o_e, int64_t* o_acc, int64_t* o_age, uint64_t* o_pass) noexcept nogil:
    """Parse one region object at pp[0] (which is '{').  REGION_OK, J_MORE or J_UNUSUAL."""
    cdef Py_ssize_t p = pp[0], q
    cdef int kid, k2, vk
    cdef uint64_t v = 0
    cdef bint has_s = False, has_e = False, has_acc = False, has_age = False
    cdef unsigned int seen = 0, seen2     # keys met so far (bit per Key), per object
    cdef int64_t acc = 0, age = AGE_UNKNOWN
    cdef uint64_t passed = 0, s = 0, e = 0
    p = _skip_ws(b, p + 1, n)
    if p >= n:
        return J_MORE
    if b[p] == CH_RBRACE:
        return J_UNUSUAL  # {} -> let the reference raise
    while True:
        kid = _key(b, &p, n)       # on success p < n
        if kid == KEY_EOF:
            return J_MORE
        if kid <= KEY_UNKNOWN:
            return J_UNUSUAL
        if seen & (1u << kid):
            return J_UNUSUAL   # a repeated key: the reference decides (the last one wins)
        seen |= 1u << kid
        if kid == KEY_START or kid == KEY_END or kid == KEY_SZ_FILTER_PASSED:
            # the usual "<digits and commas>[ B]" string first; anything else (or the
            # data ending inside it) goes to _scalar, which decides exactly as before
            q = p + 1
            if b[p] == CH_QUOTE and _tnum_str(b, &q, n, &v, True) == T_OK:
                p = q + 1
                vk = V_UINT
            else:
                vk = _scalar(b, &p, n, &v, True, True)
            if vk == V_EOF:
                return J_MORE
            if vk != V_UINT:
                return J_UNUSUAL
            if kid == KEY_START:
                s = v; has_s = True
            elif kid == KEY_END:
                e = v; has_e = True
            else:
                passed = v
        elif kid == KEY_NR_ACCESSES or kid == KEY_AGE:
            if b[p] != CH_LBRACE:
                return J_UNUSUAL
            p = _skip_ws(b, p + 1, n)
            if p >= n:
                return J_MORE
            if b[p] != CH_RBRACE:
                seen2 = 0
                while True:
                    k2 = _key(b, &p, n)
                    if k2 == KEY_EOF:
                        return J_MORE
                    if k2 > KEY_UNKNOWN:
                        if seen2 & (1u << k2):
                            return J_UNUSUAL
                        seen2 |= 1u << k2
                    if kid == KEY_NR_ACCESSES and k2 == KEY_SAMPLES:
                        vk = _scalar(b, &p, n, &v, True)
                        if vk == V_UINT:
                            if v > 9223372036854775807ULL:
                                return J_UNUSUAL
                            acc = <int64_t>v
                        elif vk == V_NEG:
                            acc = _neg_u64(v)
                        elif vk == V_NULL:
                            acc = 0
                        elif vk == V_EOF:
                            return J_MORE
                        else:
                            return J_UNUSUAL
                    elif kid == KEY_AGE and k2 == KEY_AGGR_INTERVALS:
                        vk = _scalar(b, &p, n, &v, True)
                        if vk == V_UINT:
                            if v > 9223372036854775807ULL:
                                return J_UNUSUAL
                            age = <int64_t>v
                        elif vk == V_NULL:
                            age = AGE_UNKNOWN
                        elif vk == V_EOF:
                            return J_MORE
                        else:
                            return J_UNUSUAL
                    elif ((kid == KEY_NR_ACCESSES and k2 == KEY_PERCENT)
                          or (kid == KEY_AGE and k2 == KEY_USEC)):
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
                    if b[p] == CH_COMMA:
                        p = _skip_ws(b, p + 1, n)
                        continue
                    if b[p] == CH_RBRACE:
                        break
                    return J_UNUSUAL
            p += 1     # the '}' just seen
            if kid == KEY_NR_ACCESSES:
                has_acc = True
            else:
                has_age = True
        elif kid == KEY_PROBE_HITS:
            if b[p] != CH_LBRACKET:
                return J_UNUSUAL
            p = _skip_ws(b, p + 1, n)
            if p >= n:
                return J_MORE
            if b[p] != CH_RBRACKET:
                return J_UNUSUAL  # non-empty probe_hits: reference path
            p += 1
        else:
            return J_UNUSUAL
        p = _skip_ws(b, p, n)
        if p >= n:
            return J_MORE
        if b[p] == CH_COMMA:
            p = _skip_ws(b, p + 1, n)
            continue
        if b[p] == CH_RBRACE:
            p += 1
            break
        return J_UNUSUAL
    if not (has_s and has_e) or (has_acc and not has_age):
        return J_UNUSUAL
    if not has_acc:
        acc = 0
        age = AGE_UNKNOWN
    o_s[0] = s
    o_e[0] = e
    o_acc[0] = acc
    o_age[0] = age
    o_pass[0] = passed
    pp[0] = p
    return REGION_OK


# ======================================================================= template reader
# damo's exact indent=4 layout: the constant parts between the values are compared
# with memcmp against a template built for the region's indentation.

cdef enum:
    TMPL_MAXI = 64          # deepest indentation the template handles
    TMPL_NSEG = 8           # constant segments of a region object
    TMPL_SEGMAX = 256       # bytes per segment (the longest: 3 * (63 + 4) + 43 = 244)

# results of the template matchers
cdef enum:
    T_MISMATCH = -1         # not the template (use the generic parser)
    T_OK = 0
    T_EOF = 1               # data ends while what is there still matches

cdef struct Tmpl:
    int indent
    Py_ssize_t seglen[TMPL_NSEG]
    char seg[TMPL_NSEG][TMPL_SEGMAX]

cdef inline void _tcat(Tmpl* t, int k, const char* s, Py_ssize_t l) noexcept nogil:
    memcpy(&t.seg[k][t.seglen[k]], s, l)
    t.seglen[k] += l

cdef inline void _tsp(Tmpl* t, int k, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        t.seg[k][t.seglen[k] + i] = CH_SPACE
    t.seglen[k] += n

cdef void _tmpl_build(Tmpl* t, int I) noexcept nogil:
    """The segments of a region object at indentation I (< TMPL_MAXI)."""
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

cdef inline int _tseg(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n, Tmpl* t, int k) noexcept nogil:
    """Match segment k at pp[0]."""
    cdef Py_ssize_t l = t.seglen[k]
    if n - pp[0] < l:
        if memcmp(b + pp[0], t.seg[k], n - pp[0]) != 0:
            return T_MISMATCH
        return T_EOF
    if memcmp(b + pp[0], t.seg[k], l) != 0:
        return T_MISMATCH
    pp[0] += l
    return T_OK

cdef inline int _tnum_str(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n, uint64_t* out,
                          bint allow_b) noexcept nogil:
    """Digits and commas (and ' B' with allow_b) up to the closing quote (not consumed)."""
    cdef Py_ssize_t p = pp[0]
    cdef uint64_t v = 0
    cdef bint any_digit = False
    cdef uint8_t c
    while True:
        if p >= n:
            return T_EOF
        c = b[p]
        if _is_digit(c):
            if not _push_digit(&v, c - CH_0):
                return T_MISMATCH
            any_digit = True
        elif c == CH_COMMA:
            pass
        elif c == CH_QUOTE:
            break
        elif allow_b and c == CH_SPACE and any_digit:
            if n - p < 3:
                return T_EOF
            if b[p + 1] == CH_UPPER_B and b[p + 2] == CH_QUOTE:
                p += 2
                break
            return T_MISMATCH
        else:
            return T_MISMATCH
        p += 1
    if not any_digit:
        return T_MISMATCH
    pp[0] = p
    out[0] = v
    return T_OK

cdef inline int _tnull(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n) noexcept nogil:
    """Match 'null' at pp[0]."""
    if n - pp[0] < 4:
        if memcmp(b + pp[0], b"null", n - pp[0]) != 0:
            return T_MISMATCH
        return T_EOF
    if _bytes_eq(b + pp[0], 4, b"null", 4):
        pp[0] += 4
        return T_OK
    return T_MISMATCH

cdef int _tmpl_region(const uint8_t* b, Py_ssize_t* pp, Py_ssize_t n, Tmpl* t, uint64_t* o_s,
                      uint64_t* o_e, int64_t* o_acc, int64_t* o_age, uint64_t* o_pass) noexcept nogil:
    """One region in the template layout at pp[0]: T_OK, T_EOF or T_MISMATCH."""
    cdef Py_ssize_t p = pp[0]
    cdef int rc, nd
    cdef uint64_t v = 0, s = 0, e = 0, passed = 0
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
    # samples: a JSON integer, kept below 2**63 by stopping early (then: generic parser)
    if p >= n: return T_EOF
    if b[p] == CH_MINUS:
        neg = True
        p += 1
    nd = 0
    while p < n and _is_digit(b[p]):
        if v > 922337203685477579ULL:
            return T_MISMATCH
        v = v * 10 + (b[p] - CH_0)
        nd += 1
        p += 1
    if p >= n: return T_EOF
    if nd == 0 or v > 9223372036854775807ULL:
        return T_MISMATCH
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
    if p >= n: return T_EOF
    if b[p] == CH_LOWER_N:
        rc = _tnull(b, &p, n)
        if rc: return rc
        age = AGE_UNKNOWN
    elif b[p] == CH_QUOTE:
        p += 1
        rc = _tnum_str(b, &p, n, &v, False)
        if rc: return rc
        if v > 9223372036854775807ULL:
            return T_MISMATCH
        age = <int64_t>v
        p += 1     # the closing quote _tnum_str stopped at
    else:
        return T_MISMATCH
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
    return T_OK


@cython.boundscheck(False)  # rows written are < cap: see the length/count checks below
def json_regions_scan(buf, Py_ssize_t pos, Py_ssize_t count, out_start, out_end, out_acc,
                      out_age, out_passed, int mode):
    """Parse region objects of a damo JSON ``regions`` array.

    ``mode``: 1 = ``pos`` is just after the '[' (a region or ']' follows); 0 = a region
    follows (after a ','); 2 = a region just ended (',' or ']' follows).  Regions are
    written at rows ``count..`` of the out arrays.  Returns (status, pos, count, mode)
    with a JsonScan status; on J_MORE / J_FULL resume with the returned pos and mode.
    """
    cdef const uint8_t[::1] mv = buf
    cdef Py_ssize_t n = mv.shape[0]
    cdef const uint8_t* b = &mv[0] if n > 0 else NULL
    cdef uint64_t[::1] os_ = out_start, oe = out_end, opass = out_passed
    cdef int64_t[::1] oacc = out_acc, oage = out_age
    cdef Py_ssize_t cap = os_.shape[0]
    cdef Py_ssize_t p = pos, rstart, ind
    cdef int rc = J_UNUSUAL, trc
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
            if mode == 2 or (mode == 1 and b[p] == CH_RBRACKET):
                if b[p] == CH_COMMA and mode == 2:
                    p += 1
                    mode = 0
                    continue
                if b[p] == CH_RBRACKET:
                    p += 1
                    rc = J_DONE
                    break
                rc = J_UNUSUAL
                break
            # a region
            if b[p] != CH_LBRACE:
                rc = J_UNUSUAL
                break
            if count >= cap:
                rc = J_FULL
                break
            rstart = p
            # indentation of this region: spaces back to the previous newline
            ind = 0
            while ind < TMPL_MAXI and rstart - ind - 1 >= 0 and b[rstart - ind - 1] == CH_SPACE:
                ind += 1
            trc = T_MISMATCH
            if ind < TMPL_MAXI and rstart - ind - 1 >= 0 and b[rstart - ind - 1] == CH_LF:
                if tm.indent != ind:
                    _tmpl_build(&tm, ind)
                trc = _tmpl_region(b, &p, n, &tm, &os_[count], &oe[count], &oacc[count],
                                   &oage[count], &opass[count])
                if trc == T_EOF:
                    p = rstart
                    rc = J_MORE
                    break
            if trc != T_OK:
                p = rstart
                rc = _one_region(b, &p, n, &os_[count], &oe[count], &oacc[count], &oage[count],
                                 &opass[count])
                if rc != REGION_OK:
                    p = rstart
                    break
            count += 1
            mode = 2
    return rc, p, count, mode


# ======================================================================= writer

cdef enum:
    # bytes of one region's text at most: 648 with 20-digit values, a 40-byte
    # sz text and the ",\n" separator (json_regions_text checks it per region)
    REGION_TEXT_MAX = 720
    SZ_TEXT_MAX = 40


cdef inline Py_ssize_t _put(uint8_t* o, Py_ssize_t q, const char* s, Py_ssize_t l) noexcept nogil:
    memcpy(o + q, s, l)
    return q + l

cdef inline Py_ssize_t _put_sp(uint8_t* o, Py_ssize_t q, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        o[q + i] = CH_SPACE
    return q + n

cdef inline Py_ssize_t _put_u64(uint8_t* o, Py_ssize_t q, uint64_t v, bint commas) noexcept nogil:
    """Decimal v (with a ',' every 3 digits when ``commas``) at o + q; the new q."""
    cdef char tmp[20]
    cdef int n = 0, i
    if v == 0:
        o[q] = CH_0
        return q + 1
    while v:
        tmp[n] = <char>(CH_0 + v % 10)
        v //= 10
        n += 1
    # tmp holds digits reversed; emit with a comma every 3 digits from the right
    for i in range(n - 1, -1, -1):
        o[q] = <uint8_t>tmp[i]
        q += 1
        if commas and i and i % 3 == 0:
            o[q] = CH_COMMA
            q += 1
    return q

cdef inline Py_ssize_t _put_i64(uint8_t* o, Py_ssize_t q, int64_t v, bint commas) noexcept nogil:
    if v < 0:
        o[q] = CH_MINUS
        q += 1
        return _put_u64(o, q, <uint64_t>(-(v + 1)) + 1, commas)
    return _put_u64(o, q, <uint64_t>v, commas)


@cython.boundscheck(False)  # the columns' lengths are checked below; i < n
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
    cdef Py_ssize_t cap = n * REGION_TEXT_MAX + 16
    cdef bytes sz
    out = np.empty(cap, np.uint8)
    cdef uint8_t[::1] ov = out
    cdef uint8_t* o = &ov[0]
    for i in range(n):
        if cap - q < REGION_TEXT_MAX:
            raise RuntimeError("internal: region text buffer too small")
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
            o[q] = CH_QUOTE
            q = _put_i64(o, q + 1, age[i], True)
            o[q] = CH_QUOTE
            q += 1
        o[q] = CH_LF
        q = _put_sp(o, q + 1, 24)
        q = _put(o, q, b"},\n", 3)
        q = _put_sp(o, q, 24)
        q = _put(o, q, b"\"probe_hits\": [],\n", 18)
        q = _put_sp(o, q, 24)
        q = _put(o, q, b"\"sz_filter_passed\": \"", 21)
        if sz_texts is not None and sz_texts[i] is not None:
            sz = (<str>sz_texts[i]).encode("ascii")
            if len(sz) > SZ_TEXT_MAX:
                raise ValueError("sz text too long")
            q = _put(o, q, <const char*>sz, len(sz))
        else:
            q = _put_u64(o, q, passed[i], False)
            q = _put(o, q, b" B", 2)
        q = _put(o, q, b"\"\n", 2)
        q = _put_sp(o, q, 20)
        o[q] = CH_RBRACE
        q += 1
    return out[:q].tobytes()
