# Included by _trace_kernels.pyx: the DAMON event lines that are not snapshot regions
# (formats/trace_events.py parses them; TraceState keeps their rows).

cdef enum:
    U32_MAX_ = 4294967295


cdef inline bint _u32_named(const uint8_t* p, Py_ssize_t n, const char* name,
                            Py_ssize_t nl, uint64_t* out) noexcept nogil:
    """Whether the n bytes at p are ``<name><decimal below 2**32>`` (name: nl bytes,
    with its '='); the value in out."""
    if n <= nl or not _bytes_eq(p, nl, name, nl):
        return False
    if _parse_u64(p + nl, n - nl, out) != PARSE_OK:
        return False
    return out[0] <= U32_MAX_


def _before_apply_rows(st, _Rows rr):
    """(lines relative to ``rr``, adder) of the damos_before_apply lines ``rr`` kept by
    row (_Rows._before_apply): ``adder(lo, hi)`` adds the side rows of entries lo..hi-1
    (the row's fields plus ctx_idx and scheme_idx) to ``st.side``, as the twin's
    TraceState.side_line adds them one by one."""
    cdef Py_ssize_t n = rr.nba, i
    a = np.empty((n, 3), np.int64)
    cdef int64_t[:, ::1] av = a
    for i in range(n):
        av[i, 0] = rr.ba[3 * i]
        av[i, 1] = rr.ba[3 * i + 1]
        av[i, 2] = rr.ba[3 * i + 2]
    idx = a[:, 0]

    def add(lo, hi):
        if hi > lo:
            k = idx[lo:hi]
            st.side.extend("trace_damos_before_apply", [
                rr.end_a[k], a[lo:hi, 1], a[lo:hi, 2], rr.tid_a[k], rr.nr_a[k], rr.s_a[k],
                rr.e_a[k], rr.acc_a[k], rr.age_a[k]])
            st.side_lines += hi - lo
    return rr.lines_a[idx], add


def _side_lines(st, _Rows rr, buf, Py_ssize_t line0, path, below):
    """Hand the other DAMON event lines of ``rr`` (those before line ``below`` unless
    None) to ``st.side_line``, and add the side rows of the damos_before_apply lines
    kept by row, in line order; returns (lines counted damaged, first of them or -1),
    which the caller merges into its own counts (st's are left as they were)."""
    d0, f0 = st.damaged_lines, st.first_damage
    st.first_damage = None
    ba_lines, add = _before_apply_rows(st, rr)
    nba = len(ba_lines)
    cdef Py_ssize_t done = 0, k
    try:
        for line, lo, hi in rr.side_lines():
            if below is not None and line0 + line >= below:
                break
            if done < nba:
                k = int(np.searchsorted(ba_lines, line))
                add(done, k)
                done = max(done, k)
            st.side_line(line0 + line, buf[lo:hi], path)
        if below is not None:
            nba = int(np.searchsorted(ba_lines, below - line0))
        add(done, nba)
        nd, fd = st.damaged_lines - d0, st.first_damage
    finally:
        st.damaged_lines, st.first_damage = d0, f0
    return nd, (-1 if fd is None else fd)
