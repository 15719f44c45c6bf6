"""Heatmap pixels and guides: both engines against an independent re-implementation.

The reference (tests/support/heatmap_reference.py) is written from SEMANTICS.md §2 with
plain Python objects (one object per snapshot and region, as damo holds them) and shares
no code with damo_pipe.analyze.heatmap.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from damo_pipe.analyze import heatmap as hm
from damo_pipe.analyze._chunks import RecordSource
from damo_pipe.model import Intervals, IntervalsGoal, RecordBuilder, Record, RegionColumns
from tests.support.heatmap_reference import rand_record, ref_heatmap


def _same(a, b):
    return np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("seed", range(12))
def test_pixels_match_reference(engine, seed):
    rng = random.Random(seed)
    with_iv = seed % 2 == 0
    recs = [rand_record(rng, rng.randrange(2, 12), with_iv, float_first=(seed % 3 == 1))]
    T, A = rng.randrange(1, 20), rng.randrange(1, 30)
    rec = recs[0]
    t_range = [rec.snapshot_start(0) + rng.randrange(-300_000_000, 300_000_000),
               int(rec.snapshots.end_ns[-1]) + rng.randrange(-200_000_000, 200_000_000)]
    a_range = [rng.randrange(0, 200) * 4096, rng.randrange(201, 450) * 4096 + rng.randrange(0, 4096)]
    df = seed % 4 == 3
    want = ref_heatmap(recs, t_range, a_range, T, A, df_passed=df)
    src = RecordSource.from_records(recs)
    got = hm.accumulate_heatmap(src, [0], t_range, a_range, (T, A), df, engine)
    assert _same(got.heat, want)


def test_negative_heat_when_range_starts_inside_snapshot(engine):
    """Q1 (kept in 3.4.3): a snapshot ending < 1 row before t_start adds dt < 0 to row 0."""
    rng = random.Random(5)
    rec = rand_record(rng, 6, False)
    s1 = int(rec.snapshots.end_ns[1])
    t_range = [s1 + 5_000_000, int(rec.snapshots.end_ns[-1])]
    got = hm.accumulate_heatmap(RecordSource.from_records([rec]), [0], t_range,
                                [0, 400 * 4096], (40, 10), False, engine)
    want = ref_heatmap([rec], t_range, [0, 400 * 4096], 40, 10)
    assert _same(got.heat, want)
    assert np.nanmin(got.heat) < 0


def test_chunking_does_not_change_pixels(engine):
    rng = random.Random(9)
    recs = [rand_record(rng, 40, True, tid=0), rand_record(rng, 30, True, tid=0)]
    src1 = RecordSource.from_records(recs)
    src2 = RecordSource.from_records(recs)
    src2.snapshots_per_chunk = 3
    t_range = [recs[0].snapshot_start(0), int(recs[1].snapshots.end_ns[-1])]
    a = hm.accumulate_heatmap(src1, [0, 1], t_range, [0, 400 * 4096], (17, 13), False, engine)
    b = hm.accumulate_heatmap(src2, [0, 1], t_range, [0, 400 * 4096], (17, 13), False, engine)
    assert _same(a.heat, b.heat)
    assert _same(a.heat, ref_heatmap(recs, t_range, [0, 400 * 4096], 17, 13))


# ---------------------------------------------------------------- guides
def _rec_from(snaps, tid=0, intervals=None):
    b = RecordBuilder(Record(target_id=tid, intervals=intervals))
    for (t0, t1, regs) in snaps:
        b.add_snapshot(t0, t1, RegionColumns(np.array([r[0] for r in regs], np.uint64),
                                             np.array([r[1] for r in regs], np.uint64),
                                             np.array([r[2] for r in regs], np.int64),
                                             np.array([r[3] if len(r) > 3 else 0 for r in regs], np.int64)))
    return b.build()


def test_guide_gaps_narrow_and_lowest_zero_quirk(engine):
    rec = _rec_from([
        (0, 10, [(0, 100, 1), (200, 300, 0), (500, 600, 2)]),     # gaps [100,200] [300,500]
        (10, 20, [(50, 150, 1), (180, 320, 1), (450, 700, 1)]),  # narrows to [150,180] [320,450]
    ])
    g, = hm.compute_guides([rec], engine=engine, with_heats=True)
    assert g.gaps == [[150, 180], [320, 450]]
    # lowest 0 counts as unset: the next region's start (200) overwrites it, then min -> 50
    assert g.lowest_addr == 50
    assert g.highest_addr == 700
    assert g.regions() == [[50, 150], [180, 320], [450, 700]]
    assert g.start_time == 0 and g.end_time == 20
    # heats: whole region size x samples of regions touching (closed) each contiguous region
    assert g.heats == [100 * 1 + 100 * 1, 140 * 1, 100 * 2 + 250 * 1]
    assert g.format().splitlines()[-1] == "region\t 2: [450, 700) (250)"


def test_guides_sorted_by_total_space(engine):
    a = _rec_from([(0, 10, [(0x1000, 0x2000, 1)])], tid=1)
    b = _rec_from([(0, 10, [(0x1000, 0x9000, 1)])], tid=2)
    gs = hm.compute_guides([a, b], engine=engine)
    assert [g.target_id for g in gs] == [2, 1]


def test_guide_start_time_extends_by_max_age():
    iv = Intervals(5000, 100000, 1000000, IntervalsGoal())
    rec = _rec_from([(10_000_000_000, 10_100_000_000, [(4096, 8192, 3, 7), (8192, 12288, 0, 2)])],
                    intervals=iv)
    g, = hm.compute_guides([rec])
    assert g.start_time == 10_000_000_000 - 7 * 100_000_000


def test_mixed_intervals_refused():
    from damo_pipe.errors import ReportError
    iv = Intervals(5000, 100000, 1000000, IntervalsGoal())
    a = _rec_from([(0, 10, [(0, 4096, 1)])], intervals=iv)
    b = _rec_from([(0, 10, [(0, 4096, 1)])])
    with pytest.raises(ReportError, match="Some records have intervals while some not"):
        hm.compute_heatmaps([a, b])


def test_text_to_ns_matches_damo_types():
    from damo_pipe.formats.numbers import damo_text_to_ns, damo_text_to_us, text_to_ns
    assert damo_text_to_ns("20s") == 20_000_000_000
    assert isinstance(damo_text_to_ns("20s"), int)
    assert damo_text_to_ns("1.5s") == 1.5e9
    assert damo_text_to_ns("1 m 30 s") == 90_000_000_000
    assert damo_text_to_ns("123") == 123
    assert damo_text_to_ns("10 s 5") == 10_000_000_005
    # the readers' lenient parser gives floats and wants a unit for every number
    assert isinstance(text_to_ns("20s"), float)
    with pytest.raises(ValueError):
        text_to_ns("10 s 5")
    assert damo_text_to_us("min") == 0 and isinstance(damo_text_to_us("min"), int)
    assert damo_text_to_us("5ms") == 5000.0


def test_unknown_engine_is_an_engine_error():
    from damo_pipe.errors import EngineError
    rec = _rec_from([(0, 10, [(0, 4096, 1)])])
    with pytest.raises(EngineError):
        hm.compute_heatmaps([rec], engine="fortran")
    with pytest.raises(EngineError):
        hm.compute_guides([rec], engine="fortran")


def test_raw_rendering_float_time_column():
    grid = hm.HeatmapGrid(heat=np.array([[1.5, np.nan]]), t_start=10.25, time_unit=4.0,
                          a_start=100, addr_unit=50)
    assert hm.format_raw(grid) == "-0.25\t0\t1.5\n-0.25\t50\tNaN"
    assert hm.format_raw(grid, abs_time=True, abs_addr=True) == "10\t100\t1.5\n10\t150\tNaN"


def test_ascii_rendering_levels():
    grid = hm.HeatmapGrid(heat=np.array([[0.0, 9.0], [np.nan, 4.5]]), t_start=0, time_unit=1000,
                          a_start=0, addr_unit=2048, t_end=2000, a_end=4096)
    text = hm.format_ascii(grid)
    lines = text.split("\n")
    # unit = (9 + 1 - 0) / 9; levels 0 and int(9/(10/9)) = 8; blank = level-4 escape + space
    assert lines[0] == "\x1b[48;5;232m\x1b[38;5;237m0\x1b[48;5;232m\x1b[38;5;253m8\x1b[0m"
    assert lines[1] == "\x1b[48;5;232m\x1b[38;5;245m \x1b[48;5;232m\x1b[38;5;245m4\x1b[0m"
    assert lines[-1] == "# resolution: 2x2 (2.000 KiB and 1 us for each character)"
    assert lines[-2] == "# y-axis: time [0 ns, 2 us) (2 us)"
    assert lines[-3] == "# x-axis: space [0 B, 4.000000 KiB) (4.000 KiB)"


def _rand_gappy(rng, nsnap, zero_ok=False):
    b = RecordBuilder(Record(target_id=0))
    areas = [(rng.randrange(1, 50), rng.randrange(60, 90)), (rng.randrange(100, 130), rng.randrange(140, 200)),
             (rng.randrange(300, 320), rng.randrange(330, 400))]
    for k in range(nsnap):
        regs = []
        for a, e in areas:
            a = max(1, a + rng.randrange(-3, 4))
            e += rng.randrange(-3, 4)
            if zero_ok and rng.random() < 0.1:
                a = 0
            cuts = sorted(set([a, e] + [rng.randrange(a, e) for _ in range(rng.randrange(0, 4))]))
            regs += [(cuts[i] * 4096, cuts[i + 1] * 4096, rng.choice([0, 0, 1, 5, 20]))
                     for i in range(len(cuts) - 1)]
        b.add_snapshot(k * 100, k * 100 + 100, RegionColumns(
            np.array([r[0] for r in regs], np.uint64), np.array([r[1] for r in regs], np.uint64),
            np.array([r[2] for r in regs], np.int64)))
    return b.build()


@pytest.mark.parametrize("seed", range(25))
def test_one_pass_heats_equal_exact_pass(seed):
    rng = random.Random(seed)
    recs = [_rand_gappy(rng, rng.randrange(1, 30), zero_ok=seed % 5 == 0)]
    src = RecordSource.from_records(recs)
    src.snapshots_per_chunk = rng.choice([1, 4, 100])
    fast = hm.compute_guides(src, engine="cython", with_heats=True)
    exact = hm.compute_guides(recs, engine="python", with_heats=True)
    assert [g.regions() for g in fast] == [g.regions() for g in exact]
    assert [[h or 0 for h in g.heats] for g in fast] == [[h or 0 for h in g.heats] for g in exact]


def test_epoch_nanoseconds_beyond_double_precision(engine):
    """Times above 2**53 (epoch ns) leave the double kernel: the exact engine takes over."""
    rng = random.Random(21)
    recs = [rand_record(rng, 8, False, t0=1_700_000_000_123_456_789)]
    t_range = [recs[0].snapshot_start(0), int(recs[0].snapshots.end_ns[-1])]
    got = hm.accumulate_heatmap(RecordSource.from_records(recs), [0], t_range,
                                [0, 400 * 4096], (7, 9), False, engine)
    assert _same(got.heat, ref_heatmap(recs, t_range, [0, 400 * 4096], 7, 9))


def test_time_range_reads_only_needed_snapshots():
    rng = random.Random(4)
    rec = rand_record(rng, 200, True)
    src = RecordSource.from_records([rec])
    seen = []
    orig = src.iter_chunk_range

    def spy(i, lo, hi, **kw):
        seen.append((lo, hi))
        return orig(i, lo, hi, **kw)
    src.iter_chunk_range = spy
    s = rec.snapshot_start(0)
    t_range = [s + 5_000_000_000, s + 6_000_000_000]      # snapshots ~50..60 of 200
    got = hm.accumulate_heatmap(src, [0], t_range, [0, 400 * 4096], (10, 10), False, "cython")
    lo, hi = seen[0]
    assert 40 <= lo <= 50 and 60 <= hi <= 70
    assert _same(got.heat, ref_heatmap([rec], t_range, [0, 400 * 4096], 10, 10))


# ---------------------------------------------------------------- archives
def _write_archive(tmp_path, recs, name="a.h5"):
    from damo_pipe.analyze.heatmap import GuideBuilder
    from damo_pipe.archive import write_records
    path = tmp_path / name
    write_records(recs, path, summariser=GuideBuilder)   # stores the guide summary
    return path


def _guide_view(g):
    return (g.key, g.start_time, g.end_time, g.regions(), [h or 0 for h in (g.heats or [])])


@pytest.mark.parametrize("seed", range(10))
def test_stored_guide_equals_scan(tmp_path, seed):
    """The guide summary written at close time gives the guides (and heats) the exact
    reference scan computes, without reading a region."""
    rng = random.Random(100 + seed)
    if seed % 2:
        recs = [_rand_gappy(rng, rng.randrange(1, 40), zero_ok=seed % 5 == 0)]
    else:
        recs = [rand_record(rng, rng.randrange(1, 30), True, float_first=seed % 4 == 0)]
    path = _write_archive(tmp_path, recs)
    exact = hm.compute_guides(recs, engine="python", with_heats=True)
    with RecordSource.open([path]) as src:
        sg = src.stored_guide(0)
        assert sg is not None
        if sg["heats"] is not None:    # None: the one-pass heats gave up (address 0, ...)
            def no_regions(*a, **kw):
                raise AssertionError("regions read although the guide is stored")
            src.iter_chunks = no_regions
        got = hm.compute_guides(src, engine="cython", with_heats=True)
        without = hm.compute_guides(src, engine="cython", with_heats=False)
    assert [_guide_view(g)[:4] for g in without] == [_guide_view(g)[:4] for g in exact]
    assert [_guide_view(g) for g in got] == [_guide_view(g) for g in exact]
    assert hm.format_guides(got) == hm.format_guides(exact)


def test_stored_guide_not_used_for_shared_keys(tmp_path):
    """Two records with the same key fold into one guide: the summaries are not
    composable, so the records are scanned."""
    rng = random.Random(7)
    recs = [_rand_gappy(rng, 12), _rand_gappy(rng, 9)]
    path = _write_archive(tmp_path, recs)
    exact = hm.compute_guides(recs, engine="python", with_heats=True)
    with RecordSource.open([path]) as src:
        got = hm.compute_guides(src, engine="cython", with_heats=True)
    assert [_guide_view(g) for g in got] == [_guide_view(g) for g in exact]


@pytest.mark.parametrize("seed", range(4))
def test_heatmap_from_archive_equals_reference(tmp_path, seed):
    rng = random.Random(200 + seed)
    recs = [rand_record(rng, rng.randrange(5, 40), seed % 2 == 0, float_first=seed == 2)]
    path = _write_archive(tmp_path, recs)
    want = hm.compute_heatmaps(recs, resol=(13, 17), engine="python", df_passed=seed == 3)
    with RecordSource.open([path]) as src:
        src.snapshots_per_chunk = 3       # several chunks through the prefetch thread
        got = hm.compute_heatmaps(src, resol=(13, 17), df_passed=seed == 3)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert (a.t_start, a.a_start, a.time_unit, a.addr_unit) == (b.t_start, b.a_start, b.time_unit,
                                                                     b.addr_unit)
        assert _same(a.heat, b.heat)
        assert hm.format_raw(a) == hm.format_raw(b, engine="python")


@pytest.mark.parametrize("seed", range(6))
def test_raw_text_engines_agree(seed):
    """The C formatter gives Python's float repr for every value kind."""
    rng = np.random.default_rng(seed)
    T, A = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    vals = np.concatenate([rng.normal(0, 1e3, 30), rng.normal(0, 1e-300, 5), [np.nan, np.inf, -np.inf,
                           0.0, -0.0, 1e16, 1.5e16, 123456789012345678.0, 5e-324, 1.7976931348623157e308,
                           0.1, 1 / 3, 2.0 ** 70]])
    if seed % 3 == 2:
        with np.errstate(over="ignore"):
            vals = vals[np.isfinite(vals)] * 1e20
    heat = rng.choice(vals, size=(T, A))
    t0 = float(rng.integers(0, 10 ** 6)) + (0.40625 if seed % 2 else 0)
    grid = hm.HeatmapGrid(heat=heat, t_start=t0 if seed % 2 else int(t0), time_unit=7,
                          a_start=int(rng.integers(0, 2 ** 40)), addr_unit=4096)
    for abs_t in (False, True):
        for abs_a in (False, True):
            want = "\n".join("%s\t%s\t%s" % ((t if abs_t else t - grid.t_start), (a if abs_a else a - grid.a_start),
                                              "NaN" if h != h else repr(h))
                             for t, row in zip(grid.pixel_times(), heat.tolist())
                             for a, h in zip(grid.pixel_addrs(), row))
            assert hm.format_raw(grid, abs_t, abs_a) == want
            assert hm.format_raw(grid, abs_t, abs_a, engine="python") == want


def test_prefetched_forwards_items_errors_and_stops():
    from damo_pipe._prefetch import prefetched
    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def bad():
        yield 1
        raise ValueError("boom")
    it = prefetched(bad())
    assert next(it) == 1
    with pytest.raises(ValueError, match="boom"):
        next(it)
    produced = []

    def endless():
        k = 0
        while True:
            produced.append(k)
            yield k
            k += 1
    it = prefetched(endless())
    assert next(it) == 0
    it.close()                    # stops and joins the producer
    n = len(produced)
    assert n <= 4
    import time
    time.sleep(0.05)
    assert len(produced) == n
