"""The heatmap kernel split into two row bands run in two threads gives the same pixels
as one thread and as the independent reference (tests/support/heatmap_reference.py)."""
from __future__ import annotations

import random

import numpy as np
import pytest

from damo_pipe.analyze import heatmap as hm
from damo_pipe.analyze._chunks import RecordSource
from damo_pipe.analyze.heatmap import grid
from damo_pipe.model import Intervals, IntervalsGoal, Record, RecordBuilder, RegionColumns
from tests.support.heatmap_reference import rand_record, ref_heatmap


@pytest.fixture
def always_bands(monkeypatch):
    """Split every chunk, however small, as if the host had several CPUs."""
    monkeypatch.setattr(grid._CythonAccumulator, "PARALLEL_MIN_REGIONS", 0)
    monkeypatch.setattr(grid, "_cpus", lambda: 2)


def _same(a, b):
    return np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("seed", range(16))
def test_banded_pixels_match_reference(always_bands, seed):
    rng = random.Random(1000 + seed)
    with_iv = seed % 2 == 0
    rec = rand_record(rng, rng.randrange(4, 60), with_iv, float_first=(seed % 3 == 1))
    T, A = rng.randrange(2, 25), rng.randrange(1, 30)
    t_range = [rec.snapshot_start(0) + rng.randrange(-300_000_000, 300_000_000),
               int(rec.snapshots.end_ns[-1]) + rng.randrange(-200_000_000, 200_000_000)]
    a_range = [rng.randrange(0, 200) * 4096, rng.randrange(201, 450) * 4096]
    df = seed % 4 == 3
    want = ref_heatmap([rec], t_range, a_range, T, A, df_passed=df)
    src = RecordSource.from_records([rec])
    src.snapshots_per_chunk = rng.choice([3, 7, 64])
    got = hm.accumulate_heatmap(src, [0], t_range, a_range, (T, A), df, "cython")
    assert _same(got.heat, want)


def _big_record(nsnap, per, seed):
    rng = np.random.default_rng(seed)
    b = RecordBuilder(Record(target_id=0, kdamond_idx=0, context_idx=0,
                             intervals=Intervals(5000, 100000, 1000000, IntervalsGoal())))
    t = 10 ** 12
    for _ in range(nsnap):
        sizes = rng.integers(1, 64, per).astype(np.uint64) * 4096
        ends = np.uint64(1 << 40) + np.cumsum(sizes, dtype=np.uint64)
        b.add_snapshot(t, t + 100_000_000, RegionColumns(
            ends - sizes, ends, rng.integers(0, 21, per), rng.integers(0, 40, per),
            np.zeros(per, np.uint64)))
        t += 100_000_000
    return b.build()


def test_default_split_on_large_chunks_equals_one_thread(monkeypatch):
    """Chunks above PARALLEL_MIN_REGIONS are split by default (2 CPUs): same pixels."""
    monkeypatch.setattr(grid, "_cpus", lambda: 2)
    rec = _big_record(300, 1000, 7)
    seen = []
    real = grid._CythonAccumulator._band_split

    def spy(self, ends, nr_regions):
        row = real(self, ends, nr_regions)
        seen.append(row)
        return row
    monkeypatch.setattr(grid._CythonAccumulator, "_band_split", spy)
    t_range = [rec.snapshot_start(0), int(rec.snapshots.end_ns[-1])]
    a_range = [int(rec.regions.start.min()), int(rec.regions.end.max())]
    src = RecordSource.from_records([rec])
    src.snapshots_per_chunk = 100
    banded = hm.accumulate_heatmap(src, [0], t_range, a_range, (50, 40), False, "cython")
    assert any(r is not None for r in seen)
    monkeypatch.setattr(grid, "_cpus", lambda: 1)
    single = hm.accumulate_heatmap(src, [0], t_range, a_range, (50, 40), False, "cython")
    assert _same(banded.heat, single.heat)
    assert not np.isnan(single.heat).all()
