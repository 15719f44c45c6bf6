# cython: language_level=3, wraparound=False, cdivision=True
"""Cython kernel of the legacy binary record reader (the ``cython`` engine of binary.py).

Pure-Python twin: ``damo_pipe.formats.binary.py_binary_scan`` (same contract, same
errors).  Pass 1 validates every length against the bytes left before anything is
allocated from a count read in the file; pass 2 copies the validated blocks.
"""
cimport cython
from libc.stdint cimport int64_t, uint32_t, uint64_t, uint8_t

from damo_pipe._kernels_common cimport _ld_i32, _ld_i64, _ld_u32, _ld_u64, _sec_nsec_to_ns

import numpy as np

from damo_pipe.errors import RecordFormatError

cdef enum:
    BLOCK_HEADER = 16       # int64 sec, int64 nsec
    REGION_SIZE = 20        # uint64 start, uint64 end, uint32 nr_accesses

# pass-1 failures; _ERRORS turns them into messages
cdef enum BinaryError:
    BIN_OK = 0
    BIN_NSEC
    BIN_TIME_RANGE
    BIN_TRUNC_BLOCK
    BIN_TRUNC_TARGET
    BIN_TRUNC_REGIONS
    BIN_REGION_ORDER

_ERRORS = {
    BIN_NSEC: "bad snapshot time (nanoseconds field %(nsec)d not in [0, 10**9))",
    BIN_TIME_RANGE: "snapshot time out of range",
    BIN_TRUNC_BLOCK: "truncated block header (nr_targets)",
    BIN_TRUNC_TARGET: "truncated target header",
    BIN_TRUNC_REGIONS: "truncated region list (%(nr)d regions announced, %(left)d bytes left)",
    BIN_REGION_ORDER: "region end %(end)d below its start %(start)d",
}


@cython.boundscheck(False)   # pos >= 0 is checked below; pass 2 indexes arrays sized by pass 1
def binary_scan(buf, Py_ssize_t pos, int version, Py_ssize_t max_regions, path=None):
    """Parse whole blocks of a legacy binary record from ``pos`` (see binary.py).

    Returns (next_pos, tids list, ends list, nrs list, block offsets list,
    start uint64[], end uint64[], nr_accesses int64[]).
    """
    cdef const uint8_t[::1] mv = buf
    cdef Py_ssize_t n = mv.shape[0]
    cdef const uint8_t* b = &mv[0] if n > 0 else NULL
    cdef Py_ssize_t p, q, tid_sz = 4 if version == 1 else 8
    cdef Py_ssize_t total = 0, nsnap = 0, i
    cdef uint32_t nr_targets, nr, t
    cdef int64_t end_ns = 0, nsec = 0
    cdef int err = BIN_OK
    cdef Py_ssize_t err_off = 0
    cdef Py_ssize_t end_pos
    if pos < 0:
        raise ValueError("negative position")
    # pass 1: validate and count (no allocation sized from file counts)
    p = pos
    with nogil:
        while n - p >= BLOCK_HEADER and (total < max_regions or nsnap == 0):
            nsec = _ld_i64(b + p + 8)
            if nsec < 0 or nsec >= 1000000000:
                err = BIN_NSEC; err_off = p + 8; break
            if _sec_nsec_to_ns(_ld_i64(b + p), nsec, &end_ns) != 0:
                err = BIN_TIME_RANGE; err_off = p; break
            q = p + BLOCK_HEADER
            if n - q < 4:
                err = BIN_TRUNC_BLOCK; err_off = q; break
            nr_targets = _ld_u32(b + q)
            q += 4
            t = 0
            while t < nr_targets:
                if n - q < tid_sz + 4:
                    err = BIN_TRUNC_TARGET; err_off = q; break
                nr = _ld_u32(b + q + tid_sz)
                q += tid_sz + 4
                if (n - q) // REGION_SIZE < <Py_ssize_t>nr:
                    err = BIN_TRUNC_REGIONS; err_off = q; break
                q += <Py_ssize_t>nr * REGION_SIZE
                total += nr
                nsnap += 1
                t += 1
            if err != BIN_OK:
                break
            p = q
    # a pass-1 error is raised after pass 2 has checked the regions before it (errors
    # come in file order, like the Python twin's)
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
    cdef int err2 = BIN_OK
    cdef Py_ssize_t err2_off = 0
    # pass 2: the same walk over [pos, end_pos), whose lengths pass 1 has validated;
    # si < nsnap and ri < total by construction
    p = pos
    with nogil:
        while p < end_pos:
            _sec_nsec_to_ns(_ld_i64(b + p), _ld_i64(b + p + 8), &end_ns)
            q = p + BLOCK_HEADER
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
                    if e_v[ri] < s_v[ri] and err2 == BIN_OK:
                        err2 = BIN_REGION_ORDER; err2_off = q
                    q += REGION_SIZE
                    ri += 1
                si += 1
            p = q
            if err2 != BIN_OK:
                break
        if err2 == BIN_OK and (err == BIN_TRUNC_TARGET or err == BIN_TRUNC_REGIONS):
            # the targets of the failing block that pass 1 validated before the error
            # (the twin reads their regions before it meets the error)
            q = end_pos + BLOCK_HEADER + 4
            while q < err_off:
                nr = _ld_u32(b + q + tid_sz)
                q += tid_sz + 4
                if q >= err_off:
                    break
                for i in range(nr):
                    if _ld_u64(b + q + 8) < _ld_u64(b + q):
                        err2 = BIN_REGION_ORDER; err2_off = q
                        break
                    q += REGION_SIZE
                if err2 != BIN_OK:
                    break
    if err2 != BIN_OK:
        raise RecordFormatError(_ERRORS[err2] % {"start": _ld_u64(b + err2_off),
                                                 "end": _ld_u64(b + err2_off + 8)},
                                path=path, offset=err2_off)
    if err != BIN_OK:
        # BIN_TRUNC_REGIONS: the count is the 4 bytes before err_off (validated in pass 1)
        nr = _ld_u32(b + err_off - 4) if err == BIN_TRUNC_REGIONS else 0
        raise RecordFormatError(_ERRORS[err] % {"nr": nr, "left": n - err_off, "nsec": nsec},
                                path=path, offset=err_off)
    return (end_pos, tids_a.tolist(), ends_a.tolist(), nrs_a.tolist(), offs_a.tolist(),
            s_a, e_a, a_a)
