"""Snapshots read in pieces (page-granularity records): the reports that read an archive's
huge snapshots piece by piece (heatmap pixels and guides, wss) give the numbers of whole
snapshots.

References: the heatmap pixels against the independent re-implementation
(tests/support/heatmap_reference.py); guides and wss against the same reports on the
records in memory (read whole, never in pieces), on both engines.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from damo_pipe.analyze import heatmap as hm
from damo_pipe.analyze._chunks import RecordSource
from damo_pipe.analyze.wss import compute_wss
from damo_pipe.archive import ArchiveWriter
from damo_pipe.model import Intervals, IntervalsGoal, Record, RecordBuilder, RegionColumns
from tests.support.heatmap_reference import ref_heatmap

PAGE = 4096


def page_record(rng, nsnap, tid=0, max_regions=40, overlap=False, zero_addr=False,
                float_first=False, dur=100_000_000):
    """Snapshots of up to ``max_regions`` regions: contiguous runs split by gaps that
    move from snapshot to snapshot (so that the guide's gaps narrow), some snapshots
    without any gap; ``overlap``: a few regions out of order; ``zero_addr``: regions at
    address 0 (damo's ``if not lowest`` quirk)."""
    b = RecordBuilder(Record(target_id=tid, kdamond_idx=0, context_idx=0,
                             intervals=Intervals(5000, 100000, 1000000, IntervalsGoal())))
    t = 1_000_000_000
    for k in range(nsnap):
        n = rng.randrange(1, max_regions + 1)
        starts, ends = [], []
        addr = 0 if zero_addr and rng.random() < 0.5 else rng.randrange(1, 64) * PAGE
        gapless = rng.random() < 0.25
        for _ in range(n):
            size = rng.randrange(1, 9) * PAGE
            starts.append(addr)
            ends.append(addr + size)
            addr += size
            if not gapless and rng.random() < 0.2:
                addr += rng.randrange(1, 17) * PAGE
        if overlap and n > 3 and rng.random() < 0.5:
            i = rng.randrange(1, n)
            starts[i] -= PAGE * rng.randrange(1, 3)
        d = rng.choice([dur, dur, dur - dur // 8 - 1])
        b.add_snapshot(t, t + d, RegionColumns(
            np.array(starts, np.uint64), np.array(ends, np.uint64),
            np.array([rng.choice([0, 0, rng.randrange(1, 21)]) for _ in range(n)], np.int64),
            np.array([rng.randrange(0, 8) for _ in range(n)], np.int64)))
        t += d
    rec = b.build()
    if float_first:
        rec.first_start_ns = rec.snapshots.start_ns[0] + 0.40625
    return rec


def write_archive(path, records):
    with ArchiveWriter(str(path)) as w:
        for rec in records:
            idx = w.add_record(rec.meta())
            w.append(idx, rec)
            if rec.first_start_ns is not None:
                w.set_first_start(idx, rec.first_start_ns)
    return str(path)


def pieces_source(path, regions_per_piece):
    src = RecordSource.open([path])
    src.regions_per_piece = regions_per_piece
    return src


@pytest.mark.parametrize("per", [1, 3, 7])
def test_pieces_cover_each_snapshot_in_order(tmp_path, per):
    rec = page_record(random.Random(per), 9)
    path = write_archive(tmp_path / "a.h5", [rec])
    with pieces_source(path, per) as src:
        items = list(src.iter_piece_range(0, 0, rec.nr_snapshots))
    k = 0
    regions = []
    for p in items:
        assert p.first_index == k
        if p.continues or p.goes_on:
            assert p.chunk.nr_snapshots == 1 and p.chunk.nr_regions <= per
        regions.append(p.chunk.regions.start)
        if not p.goes_on:
            k += p.chunk.nr_snapshots
        if p.continues:
            assert prev.goes_on     # noqa: F821 - set by the previous item
        prev = p                    # noqa: F841
    assert k == rec.nr_snapshots
    assert np.array_equal(np.concatenate(regions), rec.regions.start)
    big = [i for i in range(rec.nr_snapshots) if rec.snapshots.nr_regions[i] > per]
    assert big and sum(p.continues for p in items) == sum(
        -(-int(rec.snapshots.nr_regions[i]) // per) - 1 for i in big)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("per", [1, 4])
def test_heatmap_pixels_of_pieces(tmp_path, engine, seed, per):
    rng = random.Random(seed)
    recs = [page_record(rng, 7, float_first=seed % 2 == 0), page_record(rng, 5)]
    path = write_archive(tmp_path / "a.h5", recs)
    t_range = [int(recs[0].snapshots.start_ns[0]), int(recs[1].snapshots.end_ns[-1]) + 50_000_000]
    a_range = [0, 200 * PAGE]
    T, A = 23, 19
    want = ref_heatmap(recs, t_range, a_range, T, A)
    with pieces_source(path, per) as src:
        got = hm.accumulate_heatmap(src, [0, 1], t_range, a_range, (T, A), False, engine)
    assert np.allclose(got.heat, want, equal_nan=True, rtol=1e-12, atol=0)
    with pieces_source(path, 1 << 18) as src:
        whole = hm.accumulate_heatmap(src, [0, 1], t_range, a_range, (T, A), False, engine)
    assert np.array_equal(got.heat, whole.heat, equal_nan=True)


def _guide_values(gs):
    return [(g.key, g.start_time, g.end_time, g.lowest_addr, g.highest_addr, g.gaps, g.heats)
            for g in gs]


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("per", [1, 3])
@pytest.mark.parametrize("with_heats", [False, True])
def test_guides_of_pieces(tmp_path, engine, seed, per, with_heats):
    rng = random.Random(100 + seed)
    recs = [page_record(rng, 8, zero_addr=seed % 3 == 0, overlap=seed % 4 == 1,
                        float_first=seed % 2 == 1),
            page_record(rng, 4, tid=1), page_record(rng, 3)]
    path = write_archive(tmp_path / "a.h5", recs)
    want = hm.compute_guides(recs, engine=engine, with_heats=with_heats)
    with pieces_source(path, per) as src:
        got = hm.compute_guides(src, engine=engine, with_heats=with_heats)
    assert _guide_values(got) == _guide_values(want)
    assert any(g.gaps for g in want) or seed % 3 == 0


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("exclude, work_time", [(0, 1), (3, 1), (0, 150_000), (2, 250_000)])
def test_wss_of_pieces(tmp_path, seed, exclude, work_time):
    rng = random.Random(200 + seed)
    recs = [page_record(rng, 12, overlap=seed % 2 == 1, float_first=seed % 3 == 0,
                        dur=rng.choice([100_000_000, 400]) if work_time == 1 else 100_000_000)]
    path = write_archive(tmp_path / "a.h5", recs)
    kw = dict(acc_thres=2, sz_thres=PAGE, work_time_us=work_time, exclude_samples=exclude,
              sortby="time", engine="cython")
    want = compute_wss(recs, **kw)[0]
    with pieces_source(path, 3) as src:
        got = compute_wss(src, **kw)[0]
    assert np.array_equal(got.times_ns, want.times_ns)
    assert np.array_equal(got.wss_bytes, want.wss_bytes)
    assert len(want.wss_bytes) > 0


def test_probe_hits_of_pieces_and_chunks_in_any_order(tmp_path):
    """A chunk's probe hits start where the counts of the rows before it say, whether
    the chunks are read in order (counted on from the last read) or not."""
    from damo_pipe.archive import ArchiveReader
    rng = np.random.default_rng(5)
    b = RecordBuilder(Record(target_id=0))
    t = 1_000
    for k in range(6):
        n = int(rng.integers(1, 30))
        start = np.arange(n, dtype=np.uint64) * np.uint64(PAGE) + np.uint64(PAGE)
        counts = rng.integers(0, 4, n)
        po = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        ph = rng.integers(0, 99, int(po[-1])).astype(np.int64)
        b.add_snapshot(t, t + 100, RegionColumns(start, start + np.uint64(PAGE),
                                                 np.zeros(n, np.int64), np.zeros(n, np.int64),
                                                 None, po, ph))
        t += 100
    rec = b.build()
    path = write_archive(tmp_path / "p.h5", [rec])

    def hits(chunk):
        return [chunk.regions.probe_hits_of(i) for i in range(chunk.nr_regions)]
    want = hits(rec)
    with ArchiveReader(path) as r:
        got = []
        for p in r.iter_pieces(0, regions_per_chunk=4):
            got += hits(p.chunk)
        assert got == want
        for k in (5, 2, 4, 0, 3, 1):      # out of order: each from the right row
            lo, hi = rec.region_bounds(k)
            assert hits(next(r.iter_chunks(0, index_range=(k, k + 1)))) == want[lo:hi]
