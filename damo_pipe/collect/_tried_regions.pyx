# cython: language_level=3
"""Read DAMON's ``tried_regions/<i>/{start,end,nr_accesses,age[,sz_filter_passed]}`` files
into numpy columns without a Python object per file (openat + read + parse, nogil).

Pure-Python twin: ``damo_pipe.collect.sysfs.read_tried_regions_py``.
"""
cimport cython
from libc.stdint cimport uint64_t, int64_t
from libc.stdio cimport snprintf
from libc.errno cimport errno

from damo_pipe._kernels_common cimport CH_0, CH_LF, CH_SPACE, CH_TAB, _is_digit

import numpy as np

cdef enum:
    PATH_MAX_LEN = 64       # "<i>/<name>" below a region directory
    VALUE_MAX_LEN = 63      # bytes read from one value file

cdef extern from "fcntl.h" nogil:
    int openat(int dirfd, const char *pathname, int flags)
    int O_RDONLY
    int O_DIRECTORY
    int O_CLOEXEC

cdef extern from "unistd.h" nogil:
    ssize_t read(int fd, void *buf, size_t count)
    int close(int fd)

cdef extern from "fcntl.h" nogil:
    int c_open "open"(const char *pathname, int flags)


cdef int _read_u64(int dfd, long i, const char *name, uint64_t *out) noexcept nogil:
    """0 on success, -errno on I/O error, 1 on a parse error."""
    cdef char path[PATH_MAX_LEN]
    cdef char buf[VALUE_MAX_LEN + 1]
    cdef int fd
    cdef ssize_t n
    cdef ssize_t k = 0
    cdef uint64_t v = 0
    cdef int digits = 0
    snprintf(path, PATH_MAX_LEN, b"%ld/%s", i, name)
    fd = openat(dfd, path, O_RDONLY | O_CLOEXEC)
    if fd < 0:
        return -errno
    n = read(fd, buf, VALUE_MAX_LEN)
    if n < 0:
        n = -errno
        close(fd)
        return <int>n
    close(fd)
    while k < n and (buf[k] == CH_SPACE or buf[k] == CH_TAB):
        k += 1
    while k < n and _is_digit(<unsigned char>buf[k]):
        v = v * 10 + <uint64_t>(buf[k] - CH_0)
        digits += 1
        k += 1
    if digits == 0 or digits > 20:
        return 1
    while k < n and (buf[k] == CH_LF or buf[k] == CH_SPACE):
        k += 1
    if k != n:
        return 1
    out[0] = v
    return 0


@cython.boundscheck(False)  # i < n: every column is checked to have n rows below
@cython.wraparound(False)
def read_tried_regions(bytes dirpath, long n, bint with_filter_passed=False):
    """(start, end, nr_accesses, age, sz_filter_passed) columns of regions 0..n-1."""
    if n < 0:
        raise ValueError("negative region count")
    start_a = np.empty(n, np.uint64)
    end_a = np.empty(n, np.uint64)
    nr_a = np.empty(n, np.int64)
    age_a = np.empty(n, np.int64)
    passed_a = np.zeros(n, np.uint64)
    cdef uint64_t[::1] start = start_a
    cdef uint64_t[::1] end = end_a
    cdef int64_t[::1] nr = nr_a
    cdef int64_t[::1] age = age_a
    cdef uint64_t[::1] passed = passed_a
    if start.shape[0] != n or end.shape[0] != n or nr.shape[0] != n or age.shape[0] != n \
            or passed.shape[0] != n:
        raise ValueError("column allocation mismatch")
    cdef const char *cpath = dirpath
    cdef int dfd
    cdef long i
    cdef int rc = 0
    cdef long bad_i = -1
    cdef int bad_field = -1
    dfd = c_open(cpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd < 0:
        raise OSError(errno, "cannot open directory %s" % dirpath.decode(errors="replace"))
    cdef const char *names[5]
    names[:] = [b"start", b"end", b"nr_accesses", b"age", b"sz_filter_passed"]
    cdef int nr_fields = 5 if with_filter_passed else 4
    cdef int f
    cdef uint64_t vals[5]
    with nogil:
        for i in range(n):
            for f in range(nr_fields):
                rc = _read_u64(dfd, i, names[f], &vals[f])
                if rc != 0:
                    bad_i = i
                    bad_field = f
                    break
            if rc != 0:
                break
            start[i] = vals[0]
            end[i] = vals[1]
            nr[i] = <int64_t>vals[2]
            age[i] = <int64_t>vals[3]
            if with_filter_passed:
                passed[i] = vals[4]
        close(dfd)
    if rc != 0:
        field = ("start", "end", "nr_accesses", "age", "sz_filter_passed")[bad_field]
        if rc < 0:
            raise OSError(-rc, "cannot read %d/%s" % (bad_i, field))
        raise ValueError("%d/%s: not a decimal number" % (bad_i, field))
    return start_a, end_a, nr_a, age_a, passed_a
