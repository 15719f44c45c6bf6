"""report wss: both engines against a direct re-implementation of SEMANTICS.md §3/§5."""
from __future__ import annotations

import random

import numpy as np
import pytest

from damo_pipe.analyze import wss
from damo_pipe.analyze._chunks import RecordSource
from damo_pipe.model import Record, RecordBuilder, RegionColumns


def rand_record(rng, nsnap, tid=0, overlapping=False):
    b = RecordBuilder(Record(target_id=tid))
    t = 1_000_000_000
    for _ in range(nsnap):
        n = rng.randrange(1, 8)
        pts = sorted(rng.sample(range(0, 500), 2 * n))
        pairs = [(pts[2 * i] * 4096, pts[2 * i + 1] * 4096) for i in range(n)]
        if overlapping and rng.random() < 0.5:
            s = rng.randrange(0, 400) * 4096
            pairs.append((s, s + rng.randrange(1, 50) * 4096))
        dur = rng.randrange(50_000_000, 150_000_000)
        b.add_snapshot(t, t + dur, RegionColumns(
            np.array([p[0] for p in pairs], np.uint64), np.array([p[1] for p in pairs], np.uint64),
            np.array([rng.randrange(0, 6) for _ in pairs], np.int64)))
        t += dur
    return b.build()


def ref_windows(rec, work_time, skip):
    """damo's adjust_records windows with the literal quadratic merge."""
    snaps = []
    for k in range(rec.nr_snapshots):
        lo, hi = rec.region_bounds(k)
        snaps.append((rec.snapshot_start(k), int(rec.snapshots.end_ns[k]),
                      [[int(rec.regions.start[r]), int(rec.regions.end[r]), int(rec.regions.nr_accesses[r])]
                       for r in range(lo, hi)]))
    snaps = snaps[skip:]
    out, group = [], []
    for s in snaps:
        group.append(s)
        if group[-1][1] - group[0][0] >= work_time * 1000:
            base = []

            def add(x, acc):
                for b in base:
                    if not (b[1] <= x[0] or x[1] <= b[0]):
                        acc[id(b)] = (b, max(acc.get(id(b), (b, 0))[1], x[2]))
                        if x[0] < b[0]:
                            add([x[0], b[0], x[2]], acc)
                        if b[1] < x[1]:
                            add([b[1], x[1], x[2]], acc)
                        return
                base.append(x)
            for g in group:
                acc = {}
                for r in g[2]:
                    add(list(r), acc)
                for b, v in acc.values():
                    b[2] += v
            out.append(base)
            group = []
    return out


def ref_wss(rec, acc_thres, sz_thres, work_time, skip):
    return [sum(r[1] - r[0] for r in w if r[2] >= acc_thres and r[1] - r[0] >= sz_thres)
            for w in ref_windows(rec, work_time, skip)]


@pytest.mark.parametrize("seed", range(10))
def test_wss_matches_reference(engine, seed):
    rng = random.Random(seed)
    rec = rand_record(rng, rng.randrange(1, 40), overlapping=seed % 3 == 0)
    acc, sz = rng.randrange(0, 4), rng.choice([1, 4096, 40960])
    work = rng.choice([1, 1, 250_000, 1_000_000])
    skip = rng.randrange(0, 5)
    got = wss.compute_wss([rec], acc, sz, work, skip, sortby="time", engine=engine)[0]
    assert got.wss_bytes.tolist() == ref_wss(rec, acc, sz, work, skip)
    src = RecordSource.from_records([rec])
    src.snapshots_per_chunk = 3
    got2 = wss.compute_wss(src, acc, sz, work, skip, sortby="time", engine=engine)[0]
    assert got2.wss_bytes.tolist() == got.wss_bytes.tolist()


def test_sorted_and_collapsed():
    rng = random.Random(3)
    a, b = rand_record(rng, 30, tid=0), rand_record(rng, 25, tid=1)
    per = wss.compute_wss([a, b], exclude_samples=0)
    la, lb = sorted(ref_wss(a, 1, 1, 1, 0)), sorted(ref_wss(b, 1, 1, 1, 0))
    assert per[0].wss_bytes.tolist() == la
    want = [x + (lb[i] if i < len(lb) else 0) for i, x in enumerate(la)]
    assert wss.collapse(per) == want


def test_block_text():
    text = wss.format_wss_block(0, [10, 20, 30, 40], [0, 50, 100], raw=True, nr_cols_bar=4)
    assert text.split("\n") == [
        "# target_id\t0", "# <percentile> <wss>", "# avr:\t25",
        "  0              10 |*   |", " 50              30 |*** |", "100              40 |****|"]
    assert wss.format_wss_block(1, [], [0]).endswith("# no snapshot")
    assert wss.format_wss_block(0, [2048, 1024], [0], all_wss=True).split("\n")[-2:] == [
        "0 2.000 KiB", "1 1024 B"]


def test_unknown_engine_is_an_engine_error():
    from damo_pipe.errors import EngineError
    b = RecordBuilder(Record(target_id=0))
    b.add_snapshot(0, 10 ** 9, RegionColumns(np.array([0], np.uint64), np.array([4096], np.uint64),
                                             np.array([1], np.int64), np.array([0], np.int64),
                                             np.zeros(1, np.uint64)))
    rec = b.build()
    with pytest.raises(EngineError):
        wss.compute_wss([rec], engine="fortran")
