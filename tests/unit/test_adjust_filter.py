"""The record filter used by adjust and report access (SEMANTICS.md §6)."""
import argparse

import numpy as np
import pytest

from damo_pipe.analyze import record_filter as rf
from damo_pipe.errors import UsageError
from damo_pipe.model import Intervals, IntervalsGoal, Record, RecordBuilder, RegionColumns


def _rec(nsnap=6, intervals=True):
    iv = Intervals(5000, 100000, 1000000, IntervalsGoal()) if intervals else None
    b = RecordBuilder(Record(target_id=0, intervals=iv))
    for k in range(nsnap):
        s = np.array([0, 4096, 16384], np.uint64)
        e = np.array([4096, 16384, 16384 + 4096 * (k + 1)], np.uint64)
        b.add_snapshot(k * 100, k * 100 + 100, RegionColumns(
            s, e, np.array([0, 5, 20], np.int64), np.array([1, 2, 3], np.int64)))
    return b.build()


def _args(*argv):
    p = argparse.ArgumentParser()
    rf.add_filter_arguments(p)
    return p.parse_args(list(argv))


def test_default_filter_fills_percent_and_keeps_everything():
    rec = _rec()
    out, = rf.apply_record_filter([rec], rf.build_filter(_args()))
    assert out.nr_regions == rec.nr_regions
    # percent = int(samples * 100.0 / (aggr / sample)) with aggr/sample = 20
    assert rf.region_percent(out)[:3].tolist() == [0.0, 25.0, 100.0]
    assert rf.region_usec(out)[:3].tolist() == [100000.0, 200000.0, 300000.0]


def test_access_rate_and_size():
    rec = _rec()
    out, = rf.apply_record_filter([rec], rf.build_filter(_args("--access_rate", "10", "100")))
    assert out.regions.nr_accesses.tolist() == [5, 20] * 6
    out, = rf.apply_record_filter([rec], rf.build_filter(_args("--sz_region", "5K", "max")))
    assert (out.regions.end - out.regions.start).min() >= 5 * 1024


def test_address_clips_regions_and_recomputes_total():
    rec = _rec(1)
    out, = rf.apply_record_filter([rec], rf.build_filter(_args("--address", "2048", "8192")))
    assert list(zip(out.regions.start.tolist(), out.regions.end.tolist())) == [(2048, 4096), (4096, 8192)]
    assert int(out.snapshots.total_bytes[0]) == 6144


def test_snapshot_idx_streaming_equals_whole():
    rec = _rec(10)
    f = rf.build_filter(_args("--snapshot_idx", "3", "6", "--sz_region", "1", "max"))
    whole, = rf.apply_record_filter([rec], f)
    cf = rf.ChunkFilter(f)
    parts = [cf(rec.slice_snapshots(a, a + 3)) for a in range(0, 10, 3)]
    starts = np.concatenate([p.snapshots.start_ns for p in parts])
    assert starts.tolist() == whole.snapshots.start_ns.tolist() == [300, 400, 500, 600]


def test_bad_ranges_rejected():
    with pytest.raises(UsageError, match="wrong --address input"):
        rf.build_filter(_args("--address", "0xzz", "10"))
    with pytest.raises(UsageError):
        rf.build_filter(_args("--sz_region", "10", "5"))


def test_no_intervals_only_size_applies():
    rec = _rec(2, intervals=False)
    out, = rf.apply_record_filter([rec], rf.build_filter(_args("--access_rate", "50", "100")))
    assert out.nr_regions == rec.nr_regions
