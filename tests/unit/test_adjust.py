"""adjust's region merge: the O(R log R) kernel against damo's literal quadratic rule."""
from __future__ import annotations

import random

import numpy as np
import pytest

from damo_pipe.analyze.adjust import adjust_records, merge_snapshots
from damo_pipe.model import Intervals, IntervalsGoal, Record, RecordBuilder, RegionColumns


def literal(snapshots):
    """SEMANTICS.md §5, written out independently (lists, linear scans, recursion)."""
    base = []

    def add(x, acc):
        for b in base:
            if not (b[1] <= x[0] or x[1] <= b[0]):
                acc[id(b)] = (b, max(acc.get(id(b), (b, 0))[1], x[2]))
                for s, e in ([(x[0], b[0])] if x[0] < b[0] else []) + ([(b[1], x[1])] if b[1] < x[1] else []):
                    add([s, e, x[2], x[3], int(x[4] / (x[1] - x[0]) * (e - s))], acc)
                return
        base.append(x)
    for regs in snapshots:
        acc = {}
        for r in regs:
            add(list(r), acc)
        for b, v in acc.values():
            b[2] += v
    return [tuple(b) for b in base]


def rand_snapshot(rng, n, shuffled):
    pts = sorted(rng.sample(range(0, 3000), 2 * n))
    regs = [(pts[2 * i], pts[2 * i + 1] if rng.random() < 0.7 or i + 1 == n else pts[2 * i + 2])
            for i in range(n)]
    if shuffled:
        rng.shuffle(regs)
    if rng.random() < 0.2:
        s = rng.randrange(0, 3000)
        regs.append((s, s + rng.randrange(0, 400)))     # overlapping or empty region
    return [(s, e, rng.randrange(-1, 20), rng.randrange(0, 9),
             rng.choice([0, rng.randrange(0, max(1, e - s) + 1)])) for s, e in regs]


def cols(regs):
    return RegionColumns(*[np.array([r[i] for r in regs], dt) for i, dt in
                           enumerate((np.uint64, np.uint64, np.int64, np.int64, np.uint64))])


@pytest.mark.parametrize("seed", range(40))
def test_merge_matches_literal(engine, seed):
    rng = random.Random(seed)
    snaps = [rand_snapshot(rng, rng.randrange(1, 15), rng.random() < 0.3)
             for _ in range(rng.randrange(1, 6))]
    got = merge_snapshots([cols(s) for s in snaps], engine)
    want = literal(snaps)
    assert list(zip(got.start.tolist(), got.end.tolist(), got.nr_accesses.tolist(),
                    got.age.tolist(), got.sz_filter_passed.tolist())) == want


def test_discovery_order_not_address_order():
    a = [(100, 200, 1, 0, 0)]
    b = [(0, 300, 5, 1, 0)]
    got = merge_snapshots([cols(a), cols(b)])
    assert got.start.tolist() == [100, 0, 200]
    assert got.nr_accesses.tolist() == [6, 5, 5]


def _record(n, dur=100_000_000):
    iv = Intervals(5000, 100000, 1000000, IntervalsGoal())
    b = RecordBuilder(Record(target_id=0, intervals=iv))
    for k in range(n):
        b.add_snapshot(k * dur, (k + 1) * dur, cols([(0, 4096, k % 3, k, 0), (4096, 8192, 1, 0, 0)]))
    return b.build()


def test_windows_skip_and_trailing_drop():
    rec = _record(25)
    out, = adjust_records([rec], 300_000, skip=3)
    # 22 snapshots -> 7 windows of 3, the trailing 1 dropped
    assert out.nr_snapshots == 7
    assert out.intervals.aggr_us == 300_000
    assert int(out.snapshots.start_ns[0]) == 3 * 100_000_000
    assert int(out.snapshots.end_ns[0]) == 6 * 100_000_000
    # base = snapshot 3's regions; samples = own + max of the next two snapshots
    assert out.regions.nr_accesses[:2].tolist() == [0 + 1 + 2, 3]
    assert out.regions.age[:2].tolist() == [3, 0]        # ages are not aggregated


def test_unknown_engine_is_an_engine_error():
    from damo_pipe.errors import EngineError
    with pytest.raises(EngineError):
        merge_snapshots([cols([(0, 4096, 1, 0, 0)])], "fortran")
    with pytest.raises(EngineError):
        adjust_records([_record(3)], 1_000_000, engine="fortran")
