"""damo json / json_compressed readers: reference (python) and streaming (cython) engines.

Documents are built here with ``json.dumps`` following FORMATS.md §3; expected values
are written out in the test.
"""
import json
import zlib

import numpy as np
import pytest

from damo_pipe.errors import RecordFormatError
from damo_pipe.formats import detect_format, iter_record_chunks, read_records


def region(start, end, samples=0, aggr="3", passed="0 B", usec=None, probes=None):
    return {"start": start, "end": end,
            "nr_accesses": {"samples": samples, "percent": None},
            "age": {"usec": usec, "aggr_intervals": aggr},
            "probe_hits": probes or [], "sz_filter_passed": passed}


def record(snapshots, **kw):
    r = {"kdamond_idx": 0, "context_idx": 0,
         "intervals": {"sample_us": "5000", "aggr_us": "100000", "ops_update_us": "1000000",
                       "intervals_goal": {"access_bp": "0.000000", "aggrs": "0",
                                          "min_sample_us": "0", "max_sample_us": "0"}},
         "scheme_idx": None, "target_id": 0, "scheme_filters": [], "snapshots": snapshots,
         "data_source": "unknown"}
    r.update(kw)
    return r


def snapshot(start, end, regions, **kw):
    s = {"start_time": start, "end_time": end, "regions": regions,
         "total_bytes": None, "damos_stats": None, "sample_interval_us": None}
    s.update(kw)
    return s


def meta_of(r):
    return (r.target_id, r.kdamond_idx, r.context_idx, r.scheme_idx, r.intervals,
            r.scheme_filters, r.data_source, r.first_start_ns)


def write(tmp_path, obj, compressed=True, name="d.data"):
    text = json.dumps(obj, indent=4).encode()
    p = tmp_path / name
    p.write_bytes(zlib.compress(text) if compressed else text)
    return p


@pytest.mark.parametrize("compressed", [True, False])
def test_non_raw_values(tmp_path, engine, compressed):
    regs = [region("94,827,419,009,024", "94,827,423,150,080", 5, "1,234", "1.500 KiB", "1 s 500 ms"),
            region("94827423150080", 94827427291136, 0, None, "0 B"),
            region("4,096", "8 K", 1, "7", "2", probes=[3, 1])]
    doc = [record([snapshot("539809434100", "539914032967", regs, total_bytes="12345")],
                  data_source="damon_stat", target_id=18446623438842320000)]
    p = write(tmp_path, doc, compressed)
    assert detect_format(p) == ("json_compressed" if compressed else "json")
    r = read_records(p, engine=engine)[0]
    assert r.target_id == 18446623438842320000
    assert r.data_source == "damon_stat"
    assert r.intervals.sample_us == 5000 and r.intervals.aggr_us == 100000
    assert r.regions.start.tolist() == [94827419009024, 94827423150080, 4096]
    assert r.regions.end.tolist() == [94827423150080, 94827427291136, 8192]
    assert r.regions.nr_accesses.tolist() == [5, 0, 1]
    assert r.regions.age.tolist() == [1234, -1, 7]
    assert r.regions.sz_filter_passed.tolist() == [1536, 0, 2]
    assert r.regions.probe_hits_of(2) == [3, 1] and r.regions.probe_hits_of(0) == []
    assert r.snapshots.start_ns.tolist() == [539809434100]
    assert r.snapshots.total_bytes.tolist() == [12345]
    assert r.first_start_ns is None


def test_old_key_sets(tmp_path, engine):
    # damo 1.9-2.x: no scheme_filters/data_source/damos_stats/sample_interval_us/
    # probe_hits/sz_filter_passed/intervals_goal; kdamond/context/scheme absent
    regs = [{"start": "4,096", "end": "8,192", "nr_accesses": {"samples": 3, "percent": None},
             "age": {"usec": None, "aggr_intervals": None}}]
    doc = [{"target_id": 5, "intervals": {"sample_us": 5000, "aggr_us": 100000, "ops_update_us": 1000000},
            "snapshots": [{"start_time": 10, "end_time": 20, "regions": regs}]}]
    r = read_records(write(tmp_path, doc), engine=engine)[0]
    assert r.kdamond_idx is None and r.scheme_idx is None
    assert r.scheme_filters == [] and r.data_source == "unknown"
    assert r.intervals.goal is None
    assert r.snapshots.total_bytes.tolist() == [4096]
    assert r.regions.sz_filter_passed.tolist() == [0]
    assert r.snapshots.has_damos_stats.tolist() == [False]


def test_damos_stats_and_sample_interval(tmp_path, engine):
    st = {"nr_tried": "3", "sz_tried": "4096", "nr_applied": "1", "sz_applied": "1,024",
          "sz_ops_filter_passed": "0", "qt_exceeds": "2"}
    doc = [record([snapshot("1", "2", [region("0", "4096")], damos_stats=st,
                            sample_interval_us="7000")])]
    r = read_records(write(tmp_path, doc), engine=engine)[0]
    assert r.snapshots.damos_stats_of(0)["sz_applied"] == 1024
    assert r.snapshots.damos_stats_of(0)["qt_exceeds"] == 2
    assert r.snapshots.sample_interval_us.tolist() == [7000.0]


def test_empty_and_multi(tmp_path, engine):
    assert read_records(write(tmp_path, [], compressed=False), engine=engine) == []
    doc = [record([], target_id=1),
           record([snapshot("1", "2", [region("0", "4096")]), snapshot("2", "3", [])], target_id=2)]
    recs = read_records(write(tmp_path, doc), engine=engine)
    assert [r.target_id for r in recs] == [1, 2]
    assert recs[0].nr_snapshots == 0
    assert recs[1].snapshots.nr_regions.tolist() == [1, 0]


@pytest.mark.parametrize("doc,what", [
    ({"a": 1}, "list"),
    ([{"snapshots": []}], "target_id"),
    ([{"target_id": 0}], "snapshots"),
    ([record([snapshot("1", "2", [{"start": "0"}])])], "end"),
    ([record([snapshot("1", "2", [{"start": "0", "end": "1", "nr_accesses": {"samples": 1}}])])], "age"),
    ([record([snapshot("1", "2", [region("-5", "1")])])], "region"),
    ([record([snapshot("1", "2", [region("zz", "1")])])], "region"),
])
def test_bad_documents(tmp_path, engine, doc, what):
    with pytest.raises(RecordFormatError) as ei:
        read_records(write(tmp_path, doc), engine=engine)
    assert "d.data" in str(ei.value)


def test_invalid_json_located(tmp_path, engine):
    doc = [record([snapshot("1", "2", [region("0", "4096")] * 3)])]
    text = json.dumps(doc, indent=4)
    bad = text[:400] + "}" + text[400:]
    p = tmp_path / "bad.json"
    p.write_text(bad)
    with pytest.raises(RecordFormatError) as ei:
        read_records(p, engine=engine)
    assert ei.value.offset is not None and 380 <= ei.value.offset <= 420


def test_truncated_zlib(tmp_path, engine):
    doc = [record([snapshot("1", "2", [region(str(i * 4096), str(i * 4096 + 4096)) for i in range(300)])])]
    data = zlib.compress(json.dumps(doc, indent=4).encode())
    p = tmp_path / "t.data"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordFormatError, match="zlib|truncated"):
        read_records(p, engine=engine)


def test_streaming_small_windows_equal_reference(tmp_path, monkeypatch):
    from damo_pipe.formats import json_fast
    monkeypatch.setattr(json_fast, "OUT_MAX", 37)
    monkeypatch.setattr(json_fast, "IN_CHUNK", 11)
    monkeypatch.setattr(json_fast, "REGION_CAP", 5)
    snaps = [snapshot(str(k * 100), str(k * 100 + 100),
                      [region("{:,}".format(i * 4096), str(i * 4096 + 4096), i % 7, str(k),
                              "1.500 KiB" if i == 3 else "0 B", probes=[i] if i == 2 else None)
                       for i in range(k % 9)])
             for k in range(30)]
    doc = [record(snaps, target_id=1), record(snaps[:3], target_id=2, data_source="damon_stat")]
    p = write(tmp_path, doc)
    ref = read_records(p, engine="python")
    fast = read_records(p, engine="cython")
    assert [r.data_source for r in fast] == ["unknown", "damon_stat"]
    for a, b in zip(ref, fast):
        assert meta_of(a) == meta_of(b)
        for f in ("start_ns", "end_ns", "nr_regions", "total_bytes"):
            assert getattr(a.snapshots, f).tolist() == getattr(b.snapshots, f).tolist()
        for f in ("start", "end", "nr_accesses", "age", "sz_filter_passed"):
            assert getattr(a.regions, f).tolist() == getattr(b.regions, f).tolist()
        assert [a.regions.probe_hits_of(i) for i in range(a.nr_regions)] == \
            [b.regions.probe_hits_of(i) for i in range(b.nr_regions)]
    # chunked stream
    st = iter_record_chunks(p, chunk_regions=10, engine="cython")
    parts = {}
    for ri, ch in st:
        parts.setdefault(ri, []).append(ch)
    assert len(parts[0]) > 2
    got = np.concatenate([c.regions.start for c in parts[0]])
    assert got.tolist() == ref[0].regions.start.tolist()
    assert st.records[1].data_source == "damon_stat"


def test_stated_usec_and_percent(tmp_path, engine):
    """damo_stat records state ages only in µs; adjust output states percent/usec."""
    regs = [{"start": "0", "end": "4096", "nr_accesses": {"samples": 10, "percent": None},
             "age": {"usec": "19000000", "aggr_intervals": None}},
            region("4,096", "8,192", 3, "2", usec=None),
            {"start": "8192", "end": "12288", "nr_accesses": {"samples": 1, "percent": 50},
             "age": {"usec": "1 s 500 ms", "aggr_intervals": "3"}}]
    p = write(tmp_path, [record([snapshot("1", "2", regs)])])
    r = read_records(p, engine=engine)[0]
    assert r.regions.age.tolist() == [-1, 2, 3]
    u = r.regions.age_usec.tolist()
    assert u[0] == 19000000 and np.isnan(u[1]) and u[2] == 1500000
    pc = r.regions.nr_accesses_percent.tolist()
    assert np.isnan(pc[0]) and np.isnan(pc[1]) and pc[2] == 50
    # written back as damo would: usec human-readable, percent as the number
    from damo_pipe.formats import write_records
    write_records([r], tmp_path / "o.json", "json")
    out = json.loads((tmp_path / "o.json").read_text())[0]["snapshots"][0]["regions"]
    assert [x["age"]["usec"] for x in out] == ["19 s", None, "1 s 500 ms"]
    assert [x["nr_accesses"]["percent"] for x in out] == [None, None, 50]
    # no stated values: column absent
    p2 = write(tmp_path, [record([snapshot("1", "2", [region("0", "1")])])], name="n.data")
    r2 = read_records(p2, engine=engine)[0]
    assert r2.regions.age_usec is None and r2.regions.nr_accesses_percent is None
