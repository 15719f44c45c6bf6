"""Writers of damo's formats: compared with ``json.dumps(..., indent=4)`` of damo's
object layout built here independently (FORMATS.md §3, Q13) and with the perf_script
line format (§4, Q14)."""
import json
import zlib

import numpy as np
import pytest

from damo_pipe.formats import read_records, write_records
from damo_pipe.formats.writers import format_nr, format_sz, format_time_ns_min_unit
from damo_pipe.model import (Intervals, IntervalsGoal, Record, RegionColumns,
                             SnapshotColumns)


def fmt_nr(n):
    return "{:,}".format(n)


def human_sz(b):
    f = float(b)
    for shift, unit in ((60, "EiB"), (50, "PiB"), (40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if f > 2 ** shift:
            return "%.3f %s" % (f / 2 ** shift, unit)
    return "%d B" % f


T0 = 5_000_000_000_000


def make():
    regions = RegionColumns(
        start=np.array([4096, 94827419009024, 0], np.uint64),
        end=np.array([8192, 94827423150080, 2048], np.uint64),
        nr_accesses=np.array([3, 0, 7], np.int64),
        age=np.array([1234, -1, 2], np.int64),
        sz_filter_passed=np.array([0, 1536, 2048], np.uint64),
        probe_offset=np.array([0, 2, 2, 2], np.int64), probe_hits=np.array([5, 1], np.int64))
    snaps = SnapshotColumns(
        start_ns=np.array([T0, T0 + 10**8], np.int64), end_ns=np.array([T0 + 10**8, T0 + 2 * 10**8], np.int64),
        region_offset=np.array([0, 2], np.int64), nr_regions=np.array([2, 1], np.int64),
        total_bytes=np.array([4141152, 2048], np.uint64),
        sample_interval_us=np.array([np.nan, 5000.0]),
        has_damos_stats=np.array([False, True]),
        damos_nr_tried=np.array([0, 3], np.uint64), damos_sz_applied=np.array([0, 4096], np.uint64))
    return Record(target_id=7, snapshots=snaps, regions=regions, kdamond_idx=None, context_idx=1,
                  scheme_idx=2, intervals=Intervals(5000, 100000, 1000000,
                                                    IntervalsGoal(400.0, 3, 5000, 10000000)),
                  scheme_filters=[{"filter_type": "anon", "matching": True}],
                  data_source="damon_stat")


def expected_obj(rec, percent=None, usec=None):
    regs = []
    for i in range(rec.nr_regions):
        age = int(rec.regions.age[i])
        regs.append({
            "start": fmt_nr(int(rec.regions.start[i])), "end": fmt_nr(int(rec.regions.end[i])),
            "nr_accesses": {"samples": int(rec.regions.nr_accesses[i]),
                            "percent": None if percent is None else percent[i]},
            "age": {"usec": None if usec is None else usec[i],
                    "aggr_intervals": None if age == -1 else fmt_nr(age)},
            "probe_hits": rec.regions.probe_hits_of(i),
            "sz_filter_passed": human_sz(int(rec.regions.sz_filter_passed[i]))})
    snaps = []
    for k in range(rec.nr_snapshots):
        lo, n = int(rec.snapshots.region_offset[k]), int(rec.snapshots.nr_regions[k])
        st = rec.snapshots.damos_stats_of(k)
        siv = rec.snapshots.sample_interval_us[k]
        snaps.append({
            "start_time": str(int(rec.snapshots.start_ns[k])), "end_time": str(int(rec.snapshots.end_ns[k])),
            "regions": regs[lo:lo + n], "total_bytes": str(int(rec.snapshots.total_bytes[k])),
            "damos_stats": None if st is None else {
                key: str(st[key]) for key in ("nr_tried", "sz_tried", "nr_applied", "sz_applied",
                                              "sz_ops_filter_passed", "qt_exceeds")},
            "sample_interval_us": None if np.isnan(siv) else "%d" % siv})
    iv = rec.intervals
    return {"kdamond_idx": 0 if rec.kdamond_idx is None else rec.kdamond_idx,
            "context_idx": 0 if rec.context_idx is None else rec.context_idx,
            "intervals": {"sample_us": "5000", "aggr_us": "100000", "ops_update_us": "1000000",
                          "intervals_goal": {"access_bp": "400.000000", "aggrs": "3",
                                             "min_sample_us": "5000", "max_sample_us": "10000000"}}
            if iv is not None else None,
            "scheme_idx": rec.scheme_idx, "target_id": rec.target_id,
            "scheme_filters": rec.scheme_filters, "snapshots": snaps,
            "data_source": rec.data_source}


def test_json_layout(tmp_path):
    rec = make()
    empty = Record(target_id=3)
    p = tmp_path / "o.json"
    write_records([rec, empty], p, "json")
    want = json.dumps([expected_obj(rec), expected_obj(empty)], indent=4)
    assert p.read_text() == want


def test_json_compressed_is_zlib_of_json(tmp_path):
    rec = make()
    write_records([rec], tmp_path / "a.json", "json")
    write_records([rec], tmp_path / "a.jsonc", "json_compressed")
    raw = (tmp_path / "a.json").read_bytes()
    assert (tmp_path / "a.jsonc").read_bytes() == zlib.compress(raw)


def test_json_compressed_streaming_equals_one_shot(tmp_path):
    """compressobj over pieces must give zlib.compress()'s exact bytes (big input)."""
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    from benchmarks.gen import make_record
    rec = make_record(200, 300, 3)
    write_records([rec], tmp_path / "b.json", "json")
    write_records([rec], tmp_path / "b.jsonc", "json_compressed")
    assert (tmp_path / "b.jsonc").read_bytes() == zlib.compress((tmp_path / "b.json").read_bytes())


def test_json_empty_list(tmp_path):
    write_records([], tmp_path / "e.json", "json")
    assert (tmp_path / "e.json").read_text() == json.dumps([], indent=4)


def test_region_values_percent_usec(tmp_path):
    rec = make()
    pct = np.array([30, 0, 70])
    usec = [123400000, None, 200000]
    write_records([rec], tmp_path / "p.json", "json",
                  region_values=lambda ri, ch: (pct, usec))
    want = json.dumps([expected_obj(rec, [30, 0, 70], ["2 m 3 s 400 ms", None, "200 ms"])], indent=4)
    assert (tmp_path / "p.json").read_text() == want


def test_roundtrip_json(tmp_path):
    rec = make()
    write_records([rec], tmp_path / "r.jsonc", "json_compressed")
    back = read_records(tmp_path / "r.jsonc")[0]
    assert back.regions.start.tolist() == rec.regions.start.tolist()
    assert back.regions.sz_filter_passed.tolist() == [0, 1536, 2048]
    assert back.regions.age.tolist() == rec.regions.age.tolist()
    assert back.snapshots.damos_stats_of(1)["sz_applied"] == 4096


def test_perf_script(tmp_path):
    rec = make()
    one = rec.slice_snapshots(0, 1)
    write_records([rec, one], tmp_path / "o.perf", "perf_script")
    lines = (tmp_path / "o.perf").read_text().splitlines()
    head = "kdamond.x xxxx xxxx "
    assert lines[0] == head + "%f: damon:damon_aggregated: target_id=7 nr_regions=2 4096-8192: 3 1234" % ((T0 + 10**8) / 1e9)
    assert lines[1].endswith("nr_regions=2 94827419009024-94827423150080: 0 None")
    assert lines[2] == head + "%f: damon:damon_aggregated: target_id=7 nr_regions=1 0-2048: 7 2" % ((T0 + 2 * 10**8) / 1e9)
    # single-snapshot record: fake snapshot end = end + duration
    assert lines[-1] == head + "%f: damon:damon_aggregated: target_id=7 nr_regions=1 0-0: -1 -1" % ((T0 + 2 * 10**8) / 1e9)
    assert len(lines) == 3 + 2 + 1


def test_perf_script_roundtrip_with_fake(tmp_path):
    rec = make().slice_snapshots(1, 2)
    rec.regions.age[:] = 4
    write_records([rec], tmp_path / "s.perf", "perf_script")
    back = read_records(tmp_path / "s.perf")[0]
    assert back.nr_snapshots == 1
    assert back.regions.start.tolist() == [0]
    e1, e2 = int(float("%f" % ((T0 + 2 * 10**8) / 1e9)) * 1e9), int(float("%f" % ((T0 + 3 * 10**8) / 1e9)) * 1e9)
    assert back.first_start_ns == e1 - float(e2 - e1)


@pytest.mark.parametrize("n,raw,want", [(0, False, "0"), (1234567, False, "1,234,567"),
                                        (-1234, False, "-1,234"), (1234567, True, "1234567")])
def test_format_nr(n, raw, want):
    assert format_nr(n, raw) == want


@pytest.mark.parametrize("b,want", [(0, "0 B"), (1024, "1024 B"), (1536, "1.500 KiB"),
                                    (2 ** 64 - 1, "max"), (3 * 2 ** 30 + 1, "3.000 GiB")])
def test_format_sz(b, want):
    assert format_sz(b) == want


@pytest.mark.parametrize("t,want", [(0, "0 ns"), (1500, "1 us 500 ns"),
                                    (1_500_000_000, "1 s 500 ms"), (61_000_000_000, "1 m 1 s"),
                                    (1.5, "1.500 ns"), (3_600_000_000_000, "1 h")])
def test_format_time_ns_min_unit(t, want):
    assert format_time_ns_min_unit(t) == want


def test_atomic_no_partial_file(tmp_path):
    class Boom(Record):
        pass

    def bad_records():
        yield make()
        raise RuntimeError("boom")
    p = tmp_path / "x.json"
    with pytest.raises(RuntimeError):
        write_records(bad_records(), p, "json")
    assert not p.exists()
    assert list(tmp_path.iterdir()) == []
