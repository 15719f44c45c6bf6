"""The Python API (damo_pipe.open -> damo_pipe.api.Recording, docs/api.md).

References are independent of the API: the record columns read with the format
readers and walked region by region here, the reports' own functions
(compute_heatmaps, compute_wss), the side tables read with read_side_table, and
selections computed by filtering full reads in the tests.
"""
import datetime
import shutil
from pathlib import Path

import numpy as np
import pytest

import damo_pipe
from damo_pipe import sources
from damo_pipe.errors import MissingExtraError, UsageError
from damo_pipe.model import DAMOS_STAT_FIELDS, RecordBuilder, RegionColumns

pd = pytest.importorskip("pandas")
xr = pytest.importorskip("xarray")

SAMPLE = Path(damo_pipe.__file__).parent / "data" / "sample.h5"


@pytest.fixture(scope="module")
def sample_json(tmp_path_factory):
    """The sample as damo's json (read whole, in memory), with its .mem_footprint."""
    from damo_pipe.convert import convert_file
    d = tmp_path_factory.mktemp("api")
    out = d / "sample.json"
    convert_file(str(SAMPLE), str(out), "json")
    assert (d / "sample.json.mem_footprint").exists()
    return out


@pytest.fixture(params=["archive", "json"])
def inputs(request, sample_json):
    """(path, the full records read with the format readers)."""
    path = SAMPLE if request.param == "archive" else sample_json
    return path, sources.read_records(path)


def _expected_rows(records, keep_snapshot=None, keep_region=None):
    """to_pandas rows computed region by region from Record columns."""
    rows = []
    for i, rec in enumerate(records):
        iv = rec.intervals
        for k in range(rec.nr_snapshots):
            s, e = int(rec.snapshots.start_ns[k]), int(rec.snapshots.end_ns[k])
            if keep_snapshot is not None and not keep_snapshot(s, e):
                continue
            regs = rec.snapshot_regions(k)
            for j in range(len(regs)):
                a, b = int(regs.start[j]), int(regs.end[j])
                if keep_region is not None and not keep_region(a, b):
                    continue
                rows.append((i, rec.target_id, k, s, e, a, b, int(regs.nr_accesses[j]),
                             int(regs.age[j]), float(iv.sample_us), float(iv.aggr_us),
                             float(iv.ops_update_us)))
    return rows


COLUMNS = ["record", "target_id", "snapshot", "start_ns", "end_ns", "start", "end",
           "nr_accesses", "age", "sample_us", "aggr_us", "ops_update_us"]


def _rows(df):
    assert list(df.columns) == COLUMNS
    return [tuple(r) for r in df.itertuples(index=False, name=None)]


def test_open_describes_the_recording(inputs):
    path, records = inputs
    with damo_pipe.open(path) as rec:
        assert rec.nr_snapshots == sum(r.nr_snapshots for r in records)
        assert len(rec.metas) == len(records)
        assert rec.start_ns == min(int(r.snapshots.start_ns[0]) for r in records)
        assert "record(s)" in repr(rec)
        assert rec.format == ("hdf5" if str(path).endswith(".h5") else "json")


def test_to_pandas_rows_equal_the_record_columns(inputs):
    path, records = inputs
    with damo_pipe.open(path) as rec:
        df = rec.to_pandas()
    assert _rows(df) == _expected_rows(records)
    assert df["start"].dtype == np.uint64 and df["start_ns"].dtype == np.int64


def test_to_pandas_does_not_copy_the_region_columns():
    with damo_pipe.open(SAMPLE) as rec:
        (r,) = rec.records
        df = rec.to_pandas()
    for col in ("start", "end", "nr_accesses", "age"):
        assert np.shares_memory(df[col].to_numpy(), getattr(r.regions, col)), col


def test_records_equal_the_format_readers(inputs):
    path, records = inputs
    with damo_pipe.open(path) as rec:
        got = rec.records
    assert len(got) == len(records)
    for a, b in zip(got, records):
        for col in ("start_ns", "end_ns", "nr_regions"):
            np.testing.assert_array_equal(getattr(a.snapshots, col), getattr(b.snapshots, col))
        for col in ("start", "end", "nr_accesses", "age"):
            np.testing.assert_array_equal(getattr(a.regions, col), getattr(b.regions, col))


def _window(records, frac0, frac1):
    r = records[0]
    t0 = int(r.snapshots.start_ns[0])
    span = int(r.snapshots.end_ns[-1]) - t0
    return t0, int(span * frac0), int(span * frac1)


def test_time_selection_equals_a_filtered_full_read(inputs):
    path, records = inputs
    t0, a, b = _window(records, 0.3, 0.55)
    with damo_pipe.open(path, time_range=(a, b)) as rec:
        df = rec.to_pandas()
        n = rec.nr_snapshots
    lo, hi = t0 + a, t0 + b
    want = _expected_rows(records, keep_snapshot=lambda s, e: e >= lo and s < hi)
    assert _rows(df) == want
    assert 0 < n < records[0].nr_snapshots
    assert n == len({r[2] for r in want})


def test_time_range_spellings_agree(inputs):
    path, records = inputs
    t0 = int(records[0].snapshots.start_ns[0])
    spellings = [
        ("20s", "40s"),
        (20 * 10 ** 9, 40 * 10 ** 9),
        (np.timedelta64(20, "s"), np.timedelta64(40, "s")),
        (datetime.timedelta(seconds=20), datetime.timedelta(seconds=40)),
        (np.datetime64(t0 + 20 * 10 ** 9, "ns"), np.datetime64(t0 + 40 * 10 ** 9, "ns")),
    ]
    with damo_pipe.open(path) as rec:
        got = [rec.select(time_range=tr).time_range for tr in spellings]
        assert rec.select(time_range=("20s", None)).time_range == (t0 + 20 * 10 ** 9, None)
    assert got == [(t0 + 20 * 10 ** 9, t0 + 40 * 10 ** 9)] * len(spellings)


def test_address_selection_equals_a_filtered_full_read(inputs):
    path, records = inputs
    regs = records[0].regions
    a = int(np.median(regs.start))
    b = a + (64 << 20)
    with damo_pipe.open(path, address_range=(a, b), time_range=("10s", "60s")) as rec:
        df = rec.to_pandas()
    t0 = int(records[0].snapshots.start_ns[0])
    want = _expected_rows(records,
                          keep_snapshot=lambda s, e: e >= t0 + 10 ** 10 and s < t0 + 6 * 10 ** 10,
                          keep_region=lambda s, e: e > a and s < b)
    assert want and _rows(df) == want


def test_time_selection_reads_only_the_needed_rows(monkeypatch):
    from damo_pipe.archive.reader import ArchiveReader
    reads = []
    orig = ArchiveReader._read

    def spy(self, idx, lo, hi, *args, **kwargs):
        reads.append((lo, hi))
        return orig(self, idx, lo, hi, *args, **kwargs)

    monkeypatch.setattr(ArchiveReader, "_read", spy)
    with damo_pipe.open(SAMPLE, time_range=("30s", "40s")) as rec:
        lo, hi = rec.snapshot_indices(0)
        rec.to_pandas()
        total = len(rec._source().snapshot_table(0))
    assert 0 < lo < hi < total
    assert reads and min(r[0] for r in reads) == lo and max(r[1] for r in reads) == hi


def test_to_xarray_matches_each_snapshot(inputs):
    path, records = inputs
    with damo_pipe.open(path) as rec:
        ds = rec.to_xarray()
    r = records[0]
    assert ds.sizes["snapshot"] == r.nr_snapshots
    assert ds.sizes["region"] == int(r.snapshots.nr_regions.max())
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(ds["time"].values.astype(np.int64), r.snapshots.end_ns)
    assert ds["start"].attrs["units"].startswith("bytes")
    for k in range(r.nr_snapshots):
        regs = r.snapshot_regions(k)
        m = len(regs)
        assert int(ds["valid"][k].sum()) == m
        np.testing.assert_array_equal(ds["start"].values[k, :m], regs.start)
        np.testing.assert_array_equal(ds["end"].values[k, :m], regs.end)
        np.testing.assert_array_equal(ds["nr_accesses"].values[k, :m], regs.nr_accesses)
        np.testing.assert_array_equal(ds["age"].values[k, :m], regs.age)
        assert not ds["end"].values[k, m:].any()


def test_to_xarray_does_not_copy_regular_snapshots(tmp_path):
    from benchmarks.gen import make_record
    rec = make_record(30, 16, seed=3)
    path = tmp_path / "regular.json"
    sources.write_records([rec], path, "json")
    with damo_pipe.open(path) as r:
        ds = r.to_xarray()
        loaded = r.records[0]
    assert ds["start"].shape == (30, 16)
    assert np.shares_memory(ds["start"].values, loaded.regions.start)
    assert np.shares_memory(ds["time"].values, loaded.snapshots.end_ns)
    np.testing.assert_array_equal(ds["nr_accesses"].values.ravel(), rec.regions.nr_accesses)


def _two_target_archive(tmp_path):
    from benchmarks.gen import make_record
    recs = [make_record(12, 5, seed=1, target_id=0), make_record(12, 7, seed=2, target_id=1)]
    path = tmp_path / "two.h5"
    sources.write_records(recs, path, "hdf5")
    return path, recs


def test_several_records_need_a_choice(tmp_path):
    path, recs = _two_target_archive(tmp_path)
    with damo_pipe.open(path) as rec:
        with pytest.raises(UsageError, match="record=INDEX"):
            rec.to_xarray()
        with pytest.raises(UsageError, match="no record 5"):
            rec.wss(record=5)
        ds = rec.to_xarray(record=1)
        assert ds.attrs["target_id"] == 1 and ds.sizes["region"] == 7
        df = rec.to_pandas()
    assert _rows(df) == _expected_rows(recs)


def test_heatmap_equals_compute_heatmaps(inputs):
    from damo_pipe.analyze.heatmap import compute_heatmaps
    path, records = inputs
    want = compute_heatmaps([str(path)], resol=(40, 30))[0]
    with damo_pipe.open(path) as rec:
        da = rec.heatmap(resol=(40, 30))
        grid = rec.heatmap(resol=(40, 30), xarray=False)
    np.testing.assert_array_equal(da.values, want.heat)
    np.testing.assert_array_equal(grid.heat, want.heat)
    assert da.dims == ("time", "address")
    assert int(da["address"][1]) - int(da["address"][0]) == want.addr_unit
    assert int(da["time_ns"][0]) == int(want.t_start)


def test_heatmap_of_a_selection(inputs):
    from damo_pipe.analyze.heatmap import compute_heatmaps
    path, records = inputs
    t0 = int(records[0].snapshots.start_ns[0])
    regs = records[0].regions
    a, b = int(regs.start.min()), int(regs.start.min()) + (256 << 20)
    want = compute_heatmaps([str(path)], resol=(20, 16),
                            time_range=(t0 + 10 ** 10, t0 + 5 * 10 ** 10),
                            address_ranges=[(a, b)])[0]
    with damo_pipe.open(path, time_range=("10s", "50s"), address_range=(a, b)) as rec:
        da = rec.heatmap(resol=(20, 16))
    np.testing.assert_array_equal(da.values, want.heat)
    with damo_pipe.open(path) as rec:
        all_ranges = rec.heatmap(resol=(8, 8), draw_range="all")
    assert isinstance(all_ranges, list) and len(all_ranges) >= 1


def test_wss_equals_compute_wss(inputs):
    from damo_pipe.analyze.wss import compute_wss
    path, records = inputs
    for excl in (0, 20):
        want = compute_wss([str(path)], sortby="time", exclude_samples=excl)
        with damo_pipe.open(path) as rec:
            da = rec.wss(exclude_samples=excl)
            times, values = rec.wss(exclude_samples=excl, xarray=False)
        (w,) = want.values()
        np.testing.assert_array_equal(da.values, w.wss_bytes)
        np.testing.assert_array_equal(da["end_ns"].values, w.times_ns)
        np.testing.assert_array_equal(values, w.wss_bytes)
        assert da.attrs["units"] == "bytes"


def test_side_tables_of_an_archive():
    from damo_pipe.archive.sidetables import read_side_table
    with damo_pipe.open(SAMPLE) as rec:
        tables = {"footprints": rec.footprints(), "meminfo": rec.meminfo(),
                  "damos_stats": rec.damos_stats()}
        sel = rec.select(time_range=("20s", "40s")).footprints()
        t0 = rec.start_ns
    for name, df in tables.items():
        want = read_side_table(str(SAMPLE), name)
        assert list(df.columns) == list(want)
        for col, values in want.items():
            np.testing.assert_array_equal(df[col].to_numpy(), values)
    t = read_side_table(str(SAMPLE), "footprints")["time_ns"]
    keep = (t >= t0 + 2 * 10 ** 10) & (t < t0 + 4 * 10 ** 10)
    assert 0 < len(sel) == int(keep.sum())
    np.testing.assert_array_equal(sel["time_ns"].to_numpy(), t[keep])


def test_footprints_of_a_damon_data_file(sample_json):
    from damo_pipe.formats.footprints import read_mem_footprint
    fp = read_mem_footprint(str(sample_json) + ".mem_footprint")
    with damo_pipe.open(sample_json) as rec:
        foot, mem = rec.footprints(), rec.meminfo()
        stats = rec.damos_stats()
    np.testing.assert_array_equal(foot["time_ns"].to_numpy(), fp.time_ns[fp.proc_snapshot])
    np.testing.assert_array_equal(foot["rss_bytes"].to_numpy(), fp.proc["rss_bytes"])
    np.testing.assert_array_equal(mem["MemFree"].to_numpy(), fp.sys["MemFree"][fp.has_sys])
    (r,) = sources.read_records(sample_json)
    has = r.snapshots.has_damos_stats
    assert 0 < len(stats) == int(has.sum())
    np.testing.assert_array_equal(stats["time_ns"].to_numpy(), r.snapshots.end_ns[has])
    np.testing.assert_array_equal(stats["nr_tried"].to_numpy(), r.snapshots.damos_nr_tried[has])


def test_damos_stats_stored_with_snapshots(tmp_path):
    b = RecordBuilder(damo_pipe.model.Record(target_id=3, kdamond_idx=0, context_idx=0,
                                             scheme_idx=2))
    regs = RegionColumns(np.array([0, 4096], np.uint64), np.array([4096, 8192], np.uint64),
                         np.array([1, 2]), np.array([3, 4]))
    stats = {f: 10 * (k + 1) for k, f in enumerate(DAMOS_STAT_FIELDS)}
    b.add_snapshot(0, 1000, regs, damos_stats=stats)
    b.add_snapshot(1000, 2000, regs)
    b.add_snapshot(2000, 3000, regs, damos_stats={f: v + 1 for f, v in stats.items()})
    path = tmp_path / "stats.json"
    sources.write_records([b.build()], path, "json")
    with damo_pipe.open(path) as rec:
        df = rec.damos_stats()
    assert df["time_ns"].tolist() == [1000, 3000]
    assert df["scheme_idx"].tolist() == [2, 2] and df["target_id"].tolist() == [3, 3]
    assert df["nr_tried"].tolist() == [10, 11]
    assert df["sz_applied"].tolist() == [40, 41]


def test_profile_of_an_archive(tmp_path):
    from damo_pipe.archive.profile import attach_profile
    from damo_pipe.formats.perf_samples import ProfileSamples
    path = tmp_path / "p.h5"
    shutil.copyfile(SAMPLE, path)
    with damo_pipe.open(path) as rec:
        t0 = rec.start_ns
    rows = [(t0 + k * 10 ** 9, 100 + k % 2, 200 + k % 3, "f%d" % (k % 4), "/bin/x")
            for k in range(60)]
    attach_profile(str(path), None, ProfileSamples.from_rows(rows),
                   attrs={"perf_clock": "test", "time_offset_ns": 0})
    with damo_pipe.open(path) as rec:
        df = rec.profile()
        win = rec.select(time_range=("10s", "20s")).profile()
    assert df["time_ns"].tolist() == [r[0] for r in rows]
    assert df["symbol"].astype(str).tolist() == [r[3] for r in rows]
    assert df["dso"].astype(str).tolist() == [r[4] for r in rows]
    assert df["pid"].tolist() == [r[1] for r in rows]
    assert df.attrs["perf_clock"] == "test"
    assert win["time_ns"].tolist() == [r[0] for r in rows if 10 <= (r[0] - t0) // 10 ** 9 < 20]


def test_missing_notebook_extra_is_one_clear_error(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pandas", None)
    with damo_pipe.open(SAMPLE) as rec:
        with pytest.raises(MissingExtraError, match=r"damo-pipe\[notebook\]") as e:
            rec.to_pandas()
        assert isinstance(e.value, ImportError)
        times, values = rec.wss(xarray=False)      # numpy results need no extra
        assert len(times) == len(values) > 0


def test_wrong_arguments_and_closed_recording():
    with pytest.raises(UsageError, match="after its start"):
        damo_pipe.open(SAMPLE, time_range=("40s", "20s"))
    with pytest.raises(UsageError, match="wrong time"):
        damo_pipe.open(SAMPLE, time_range=("soon", "later"))
    with pytest.raises(UsageError, match="pair"):
        damo_pipe.open(SAMPLE, address_range=5)
    rec = damo_pipe.open(SAMPLE)
    rec.close()
    with pytest.raises(UsageError, match="closed"):
        rec.to_pandas()
