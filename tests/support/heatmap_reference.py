"""An independent heatmap (SEMANTICS.md §2, plain Python objects) and random records to feed it."""
from __future__ import annotations

import math

import numpy as np

from damo_pipe.model import Intervals, IntervalsGoal, Record, RecordBuilder, RegionColumns


class _R:
    def __init__(self, start, end, samples, age, passed):
        self.start, self.end, self.samples, self.age, self.passed = start, end, samples, age, passed


class _S:
    def __init__(self, start, end, regions):
        self.start, self.end, self.regions = start, end, regions


def _objects(rec):
    out = []
    for k in range(rec.nr_snapshots):
        lo, hi = rec.region_bounds(k)
        regs = [_R(int(rec.regions.start[r]), int(rec.regions.end[r]), int(rec.regions.nr_accesses[r]),
                   int(rec.regions.age[r]), int(rec.regions.sz_filter_passed[r])) for r in range(lo, hi)]
        out.append(_S(rec.snapshot_start(k), int(rec.snapshots.end_ns[k]), regs))
    return out


def ref_heatmap(records, t_range, a_range, T, A, df_passed=False):
    """T x A heat pixels of RECORDS over T_RANGE x A_RANGE (NaN: no region there)."""
    t_start, t_end = t_range
    a_start, a_end = a_range
    tu = (t_end - t_start) // T
    au = (a_end - a_start) // A
    pix = [[[int(t_start + i * tu), int(a_start + j * au), None] for j in range(A)] for i in range(T)]
    last = None
    for rec in records:
        iv = rec.intervals
        for s in _objects(rec):
            for r in s.regions:
                if r.end < a_start or a_start + A * au < r.start:
                    continue
                obs = s.start
                if iv is not None:
                    obs = s.start - r.age * (iv.aggr_us * 1000)
                if last is not None and obs < last.end:
                    obs = last.end
                for i in range(int((obs - t_start) / tu), int((s.end - t_start) / tu) + 1):
                    if not 0 <= i < T:
                        continue
                    for j in range(int((r.start - a_start) / au), int((r.end - a_start) / au) + 1):
                        if not 0 <= j < A:
                            continue
                        p = pix[i][j]
                        dt = min(s.end, p[0] + tu) - max(obs, p[0])
                        da = min(r.end, p[1] + au) - max(r.start, p[1])
                        v = r.samples / (iv.aggr_us / 1000000) if iv is not None else r.samples
                        if df_passed:
                            v = v * r.passed / (r.end - r.start)
                        h = v * dt * da
                        if p[2] is None:
                            p[2] = 0
                        pts = tu * au
                        p[2] = float(h + p[2] * pts) / pts
            last = s
    return np.array([[math.nan if p[2] is None else p[2] for p in row] for row in pix])


def rand_record(rng, nsnap, with_intervals, tid=0, float_first=False, t0=1_000_000_000):
    b = RecordBuilder(Record(target_id=tid, kdamond_idx=0, context_idx=0,
                             intervals=Intervals(5000, 100000, 1000000, IntervalsGoal())
                             if with_intervals else None))
    t = t0
    for _ in range(nsnap):
        n = rng.randrange(1, 6)
        pts = sorted(rng.sample(range(0, 400), 2 * n))
        pairs = [(pts[2 * i] * 4096, pts[2 * i + 1] * 4096) for i in range(n)]
        dur = rng.choice([100_000_000, 100_000_000, 99_999_123])
        b.add_snapshot(t, t + dur, RegionColumns(
            np.array([p[0] for p in pairs], np.uint64), np.array([p[1] for p in pairs], np.uint64),
            np.array([rng.randrange(0, 21) for _ in pairs], np.int64),
            np.array([rng.randrange(0, 8) for _ in pairs], np.int64),
            np.array([rng.randrange(0, p[1] - p[0]) for p in pairs], np.uint64)))
        t += dur
    rec = b.build()
    if float_first:
        rec.first_start_ns = rec.snapshots.start_ns[0] + 0.40625
    return rec
