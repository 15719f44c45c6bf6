"""The heatmap pixel grid (SEMANTICS.md §2.2, §2.3): accumulation of the records' regions
into T x A pixel heats, chunk by chunk.

Two engines compute the same numbers: the Cython kernel ``heatmap_accumulate`` (nogil,
optionally two row bands in two threads) and :func:`_accumulate_py`, the reference twin
written with Python numbers exactly as damo 3.4.3 computes them. A chunk whose values
leave the kernel's exact double range continues on the twin.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from damo_pipe._engine import select_engine
from damo_pipe._prefetch import prefetched, usable_cpus as _cpus
from damo_pipe.analyze.intervals import aggr_us_array, chunk_aggr_us
from damo_pipe.errors import ReportError, UsageError

#: the compiled twin of the pixel accumulation
KERNELS = "damo_pipe.analyze._report_kernels"

#: largest integer magnitude for which the Cython kernel's double arithmetic is exact
_EXACT = 2 ** 53


@dataclasses.dataclass
class HeatmapGrid:
    """One heatmap: T x A pixel heats (NaN = untouched) and the damo axis values."""

    heat: np.ndarray
    t_start: object            # int, or float (deduced first start / guided ranges)
    time_unit: object
    a_start: int
    addr_unit: int
    unit: str = "samples"      # 'hz' or 'samples'
    target_id: Optional[int] = None
    kdamond_idx: Optional[int] = None
    context_idx: Optional[int] = None
    scheme_idx: Optional[int] = None
    t_end: object = None       # requested time range end (for labels)
    a_end: Optional[int] = None

    @property
    def shape(self):
        return self.heat.shape

    def pixel_times(self):
        return [int(self.t_start + i * self.time_unit) for i in range(self.heat.shape[0])]

    def pixel_addrs(self):
        return [int(self.a_start + j * self.addr_unit) for j in range(self.heat.shape[1])]


def _new_grid(t_range, a_range, resol):
    T, A = int(resol[0]), int(resol[1])
    if T <= 0 or A <= 0:
        raise UsageError("--resol values must be positive")
    t_start, t_end = t_range
    a_start, a_end = a_range
    time_unit = (t_end - t_start) // T
    addr_unit = (a_end - a_start) // A
    if time_unit <= 0 or addr_unit <= 0:
        raise ReportError("time or address range [%s, %s) x [%s, %s) is smaller than the resolution"
                          " %dx%d" % (t_start, t_end, a_start, a_end, T, A))
    return T, A, t_start, time_unit, a_start, addr_unit


def _accumulate_py(heat, pts, grid_params, meta, chunk, last_end, df_passed):
    """Reference twin of ``heatmap_accumulate`` (damo's code with Python numbers)."""
    T, A, t_start, tu, a_start, au = grid_params
    a_map_end = a_start + A * au
    iv = meta.intervals
    aggr_ns = iv.aggr_us * 1000 if iv is not None else None
    st_col, en_col = chunk.regions.start, chunk.regions.end
    sm_col, age_col, pf_col = chunk.regions.nr_accesses, chunk.regions.age, chunk.regions.sz_filter_passed
    ptimes = [int(t_start + i * tu) for i in range(T)]
    paddrs = [int(a_start + j * au) for j in range(A)]
    for k in range(chunk.nr_snapshots):
        s_start = chunk.snapshot_start(k)
        s_end = int(chunk.snapshots.end_ns[k])
        aggr_us = chunk_aggr_us(iv, chunk, k) if iv is not None else None
        lo, hi = chunk.region_bounds(k)
        for r in range(lo, hi):
            r_start, r_end = int(st_col[r]), int(en_col[r])
            if r_end < a_start or a_map_end < r_start:
                continue
            if iv is not None:
                age = max(0, int(age_col[r]))   # unknown age (-1): no back-extension
                st = s_start - age * aggr_ns
            else:
                st = s_start
            if last_end is not None and st < last_end:
                st = last_end
            obs = st
            samples = int(sm_col[r])
            if iv is not None:
                v = samples / (aggr_us / 1000000)
            else:
                v = samples
            if df_passed:
                v = v * int(pf_col[r]) / (r_end - r_start)
            i0 = int((st - t_start) / tu)
            i1 = int((s_end - t_start) / tu)
            j0 = int((r_start - a_start) / au)
            j1 = int((r_end - a_start) / au)
            for i in range(max(i0, 0), min(i1, T - 1) + 1):
                ptime = ptimes[i]
                dt = min(s_end, ptime + tu) - max(obs, ptime)
                row = heat[i]
                for j in range(max(j0, 0), min(j1, A - 1) + 1):
                    paddr = paddrs[j]
                    da = min(r_end, paddr + au) - max(r_start, paddr)
                    h = v * dt * da
                    cur = row[j]
                    if cur is None:
                        cur = 0
                    row[j] = float(h + cur * pts) / pts
        last_end = s_end
    return last_end


def _times_exact(*values):
    for v in values:
        if isinstance(v, float):
            if not math.isfinite(v) or abs(v) >= _EXACT:
                return False
        elif abs(int(v)) >= _EXACT:
            return False
    return True


class _CythonAccumulator:
    """The pixel grid filled by the ``heatmap_accumulate`` kernel of module ``kernels``."""

    #: chunks smaller than this run in one thread (thread hand-off would cost more)
    PARALLEL_MIN_REGIONS = 1 << 16

    def __init__(self, grid_params, df_passed, parallel=None, kernels=None):
        self.K = select_engine("cython", KERNELS) if kernels is None else kernels
        self.parallel = (_cpus() > 1) if parallel is None else parallel
        self._executor = None
        T, A, t_start, tu, a_start, au = grid_params
        self.T, self.A = T, A
        self.t_start, self.tu, self.a_start, self.au = t_start, tu, a_start, au
        self.heat = np.full((T, A), np.nan)
        ptimes = [int(t_start + i * tu) for i in range(T)]
        self.ptime = np.array(ptimes, np.float64)
        self.ptime_next = np.array([p + tu for p in ptimes], np.float64)
        self.paddr = np.array([a_start + j * au for j in range(A)], np.uint64)
        self.pts = float(tu * au)
        self.a_map_end = a_start + A * au
        self.df_passed = df_passed

    def add(self, meta, chunk, last_end):
        K = self.K
        iv = meta.intervals
        snaps = chunk.snapshots
        starts = snaps.start_ns.astype(np.float64)
        start_float = np.zeros(len(starts), np.uint8)
        s0 = chunk.snapshot_start(0)
        if isinstance(s0, float):
            starts[0] = s0
            start_float[0] = 1
        if iv is not None:
            aggr_us = aggr_us_array(iv, chunk)
            aggr_ns = iv.aggr_us * 1000
        else:
            aggr_us = np.zeros(0)
            aggr_ns = 0
        ends = snaps.end_ns.astype(np.float64)
        args = (self.heat, self.ptime, self.ptime_next, self.paddr,
                starts, ends, start_float,
                snaps.region_offset, snaps.nr_regions,
                chunk.regions.start, chunk.regions.end, chunk.regions.nr_accesses,
                chunk.regions.age, chunk.regions.sz_filter_passed, aggr_us,
                iv is not None, float(aggr_ns), isinstance(aggr_ns, float),
                float(self.t_start), float(self.tu), isinstance(self.tu, float),
                self.a_start, self.au, self.a_map_end, self.pts, self.df_passed,
                last_end is not None, float(last_end) if last_end is not None else 0.0)
        split = self._band_split(ends, chunk.nr_regions)
        if split is None:
            has_last, last = K.heatmap_accumulate(*args)
        else:
            # two disjoint row bands, one in the helper thread: same pixels, same order
            upper = self._pool().submit(K.heatmap_accumulate, *args, split, self.T)
            has_last, last = K.heatmap_accumulate(*args, 0, split)
            upper.result()
        return int(last) if has_last else None

    def _band_split(self, ends, nr_regions):
        """Row splitting this chunk's rows in two halves of its snapshots, or None when
        one thread is enough (small chunk, one CPU, or the chunk covers one row)."""
        if nr_regions < self.PARALLEL_MIN_REGIONS or not self.parallel or len(ends) < 2:
            return None
        mid = float(ends[len(ends) // 2])
        row = int((mid - float(self.t_start)) / float(self.tu))
        return row if 0 < row < self.T else None

    def _pool(self):
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="heatmap-band")
        return self._executor

    def close(self):
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None


def _cython_usable(grid_params, chunk, meta):
    T, A, t_start, tu, a_start, au = grid_params
    if not _times_exact(t_start, tu, t_start + (T + 1) * tu):
        return False
    if a_start + (A + 1) * au >= 2 ** 63:
        return False
    snaps = chunk.snapshots
    if chunk.nr_snapshots and (int(snaps.end_ns.max()) >= _EXACT or int(snaps.start_ns.min()) <= -_EXACT):
        return False
    if meta.intervals is not None:
        aggr_ns = meta.intervals.aggr_us * 1000
        if chunk.nr_regions and abs(int(chunk.regions.age.max()) * aggr_ns) >= _EXACT:
            return False
    if chunk.nr_regions and int(chunk.regions.end.max()) >= 2 ** 63:
        return False
    return True


def _checked(pieces, grid_params, meta):
    """(piece, whether the Cython kernel computes its chunk exactly) for each ChunkPiece."""
    try:
        for piece in pieces:
            yield piece, _cython_usable(grid_params, piece.chunk, meta)
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def _needed_snapshots(ends, t_start, tu, map_end):
    """[lo, hi) of the snapshots that can touch the map (time-ordered records only).

    A snapshot ending at or before ``t_start - tu`` maps to rows < 0; once the previous
    snapshot ends at or after the map end, the clamp keeps every later one out.
    The end of snapshot lo-1 is passed as damo's ``last`` and the record's final end
    is carried to the next record, so the result equals a full scan.
    """
    n = len(ends)
    if n < 2 or not bool(np.all(np.diff(ends) >= 0)):
        return 0, n
    # one row of margin on both sides against float rounding of the row index
    lo = int(np.searchsorted(ends, t_start - 2 * tu, side="right"))
    lo = max(0, min(lo, n))
    hi = int(np.searchsorted(ends, map_end + tu, side="right")) + 1
    return lo, max(lo, min(hi, n))


#: archive chunks read ahead of the pixel kernel
_PREFETCH_DEPTH = 2


def accumulate_heatmap(src, indices, t_range, a_range, resol, df_passed=False,
                       engine="cython", unit="samples", key=None):
    """Build one HeatmapGrid from the records ``indices`` of ``src`` (in order)."""
    params = _new_grid(t_range, a_range, resol)
    T, A, t_start, tu, a_start, au = params
    pts = tu * au
    map_end = t_start + T * tu
    heat_py = None
    acc = None
    columns = ("start", "end", "nr_accesses", "age") + (("sz_filter_passed",) if df_passed else ())
    K = select_engine(engine, KERNELS)
    if K is not None:
        # two row bands in two threads pay off when a core is free: records in memory,
        # or more than two CPUs (on two, streaming an archive keeps the second core busy
        # decompressing, and the split only adds CPU: measured 0.41 -> 0.44 s, same wall)
        streamed = any(src.is_streamed(i) for i in indices)
        acc = _CythonAccumulator(params, df_passed, parallel=_cpus() > (2 if streamed else 1),
                                 kernels=K)
    last_end = None
    kernel_owner = acc   # holds the band thread; closed even when we switch engines
    try:
        for i in indices:
            meta = src.metas[i]
            # the end times only (a day-long archive's other snapshot columns stay on disk)
            ends = src.snapshot_column(i, "end_ns")
            n = len(ends)
            if n == 0:
                continue
            lo, hi = _needed_snapshots(ends, t_start, tu, map_end)
            if lo > 0:
                last_end = int(ends[lo - 1])
            if src.is_streamed(i):
                # read + decompress the next chunks (and check their value ranges) while
                # the kernel works on this one; the chunk in use, the _PREFETCH_DEPTH queued
                # and the one being read each need their own buffer set
                chunks = prefetched(_checked(src.iter_piece_range(
                    i, lo, hi, columns=columns, reuse_buffers=_PREFETCH_DEPTH + 2), params, meta),
                    depth=_PREFETCH_DEPTH)
            else:
                chunks = _checked(src.iter_piece_range(i, lo, hi, columns=columns), params, meta)
            # a huge snapshot comes in pieces: each piece of it starts from damo's `last`
            # of that snapshot (the end of the one before it), not from the piece before
            before_snapshot = last_end
            try:
                for piece, usable in chunks:
                    chunk = piece.chunk
                    if piece.continues:
                        last_end = before_snapshot
                    else:
                        before_snapshot = last_end
                    if acc is not None and not usable:
                        # values beyond exact double range: continue with the exact reference engine
                        heat_py = [[None if math.isnan(x) else x for x in row] for row in acc.heat.tolist()]
                        acc = None
                    if acc is not None:
                        last_end = acc.add(meta, chunk, last_end)
                    else:
                        if heat_py is None:
                            heat_py = [[None] * A for _ in range(T)]
                        last_end = _accumulate_py(heat_py, pts, params, meta, chunk, last_end, df_passed)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            # damo's `last` is the record's final snapshot even when the tail was not read
            last_end = int(ends[n - 1])
    finally:
        if kernel_owner is not None:
            kernel_owner.close()
    if acc is not None:
        heat = acc.heat
    else:
        heat = np.array([[math.nan if x is None else x for x in row] for row in heat_py],
                        np.float64).reshape(T, A)
    kd = ctx = sc = tid = None
    if key is not None:
        kd, ctx, sc, tid = key
    return HeatmapGrid(heat=heat, t_start=t_start, time_unit=tu, a_start=a_start, addr_unit=au,
                       unit=unit, target_id=tid, kdamond_idx=kd, context_idx=ctx, scheme_idx=sc,
                       t_end=t_range[1], a_end=a_range[1])
