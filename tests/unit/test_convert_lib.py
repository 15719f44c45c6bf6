"""The format table (damo_pipe.sources) and the conversion library (damo_pipe.convert),
called as libraries (the CLI is tested in test_formats_convert_cli.py)."""
import json
import os

import pytest

from damo_pipe import convert, formats, sources
from damo_pipe.archive import ArchiveReader
from damo_pipe.errors import EngineError, RecordFormatError, UsageError
from damo_pipe.model import Record

PERF_LINE = "kdamond.0 1 [000] %s: damon:damon_aggregated: target_id=0 nr_regions=1 %d-%d: 3 4\n"


def trace(n=5):
    return "".join(PERF_LINE % ("%d.%06d" % (100 + k, 7 * k), 4096 * k, 4096 * k + 4096)
                   for k in range(n))


def json_record(n=5, data_source_last=True):
    snaps = [{"start_time": str(k * 10**8), "end_time": str((k + 1) * 10**8),
              "regions": [{"start": str(4096 * k), "end": str(4096 * (k + 2)),
                           "nr_accesses": {"samples": str(k)},
                           "age": {"aggr_intervals": str(k + 1)}}]} for k in range(n)]
    rec = {"kdamond_idx": "0", "context_idx": "0", "scheme_idx": None, "target_id": "0",
           "intervals": {"sample_us": "5000", "aggr_us": "100000", "ops_update_us": "1000000"}}
    if data_source_last:
        rec["snapshots"] = snaps
        rec["data_source"] = "damon_stat"
    else:
        rec["data_source"] = "damon_stat"
        rec["snapshots"] = snaps
    return [rec]


def test_one_table_for_every_input_type():
    assert tuple(sources.FORMATS) == formats.INPUT_TYPES == sources.INPUT_TYPES
    assert set(formats.FORMATS) == set(formats.INPUT_TYPES) - {formats.ARCHIVE_FORMAT}
    for name, h in formats.FORMATS.items():
        assert sources.FORMATS[name] is h           # the same entries, not a copy
        assert h.open is None
    assert sources.FORMATS["hdf5"].open is not None
    assert set(sources.OUTPUT_FORMATS) == {"json", "json_compressed", "perf_script", "hdf5"}
    assert convert.OUTPUT_FORMATS == ("hdf5", "json", "json_compressed", "perf_script")


def test_dispatch_goes_through_the_table(tmp_path, monkeypatch):
    """Replacing the table's json entry changes what every reader sees."""
    from damo_pipe.analyze._chunks import RecordSource
    p = tmp_path / "r.json"
    p.write_text(json.dumps(json_record()))
    fake = [Record(target_id=42)]
    calls = []

    def read(path, engine, lenient=False):
        calls.append((path, engine))
        return fake
    monkeypatch.setitem(sources.FORMATS, "json",
                        formats.FormatHandler("json", read, None, formats.FORMATS["json"].write))
    assert sources.read_records(p) is fake
    with RecordSource.open([p]) as src:
        assert [m.target_id for m in src.metas] == [42]
    assert convert.convert_file(p, tmp_path / "o.json", "json") == 1
    assert json.loads((tmp_path / "o.json").read_text())[0]["target_id"] == 42
    assert [c[0] for c in calls] == [str(p)] * 3
    assert formats.read_records(p)[0].target_id == 0     # formats' own lookup: damo's entry


def test_unknown_names_and_engines(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(json_record()))
    with pytest.raises(RecordFormatError, match="unknown input type 'xml'"):
        sources.read_records(p, input_type="xml")
    with pytest.raises(RecordFormatError, match="unknown input type 'xml'"):
        formats.iter_record_chunks(p, input_type="xml")
    with pytest.raises(EngineError):
        sources.read_records(p, engine="fortran")
    with pytest.raises(EngineError):
        sources.iter_record_chunks(p, engine="fortran")
    with pytest.raises(ValueError, match="unknown output format"):
        sources.write_records([], tmp_path / "x", "xml")


def test_to_archive_stores_late_metadata_and_the_guide(tmp_path, engine):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(json_record(data_source_last=True)))
    out = tmp_path / "a.h5"
    assert convert.to_archive(p, out, chunk_regions=2, engine=engine) == 1
    with ArchiveReader(out) as r:
        assert r.records[0].data_source == "damon_stat"   # stated after the snapshots
        assert r.nr_snapshots(0) == 5
        sg = r.stored_guide(0)
        assert r.attrs["source_format"] == "json"
    from damo_pipe.analyze.heatmap import GuideBuilder
    b = GuideBuilder()
    b.feed(sources.read_records(p)[0])
    want = b.summary()
    assert sg == {k: want[k] for k in sg} and sg["highest_addr"] == 4096 * 6
    assert [x.meta_dict() for x in sources.read_records(out)] == \
        [x.meta_dict() for x in sources.read_records(p)]


def test_trace_to_archive_keeps_the_deduced_first_start(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(trace(6))
    direct = sources.read_records(p)[0]
    convert.to_archive(p, tmp_path / "a.h5", chunk_regions=1)
    back = sources.read_records(tmp_path / "a.h5")[0]
    assert back.first_start_ns == direct.first_start_ns is not None
    assert back.snapshots.start_ns.tolist() == direct.snapshots.start_ns.tolist()


def test_archive_to_damo_and_convert_file(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(trace(7))
    convert.convert_file(p, tmp_path / "a.h5", "hdf5")
    for fmt in ("json", "json_compressed", "perf_script"):
        convert.archive_to_damo(tmp_path / "a.h5", tmp_path / ("via." + fmt), fmt, chunk_regions=3)
        convert.convert_file(p, tmp_path / ("direct." + fmt), fmt)
        assert (tmp_path / ("via." + fmt)).read_bytes() == \
            (tmp_path / ("direct." + fmt)).read_bytes()


def test_convert_paths(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.txt").write_text(trace(3))
    (tmp_path / "in" / "sub" / "b.json").write_text(json.dumps(json_record()))
    (tmp_path / "in" / ".hidden").write_text("x")
    seen = []

    class Bar:
        def __init__(self, total):
            seen.append(("total", total))

        def update(self, n):
            seen.append(("update", n))

        def close(self):
            seen.append(("close",))

    convert.convert_paths([str(tmp_path / "in")], str(tmp_path / "out"), progress=Bar)
    assert sorted(os.listdir(tmp_path / "out")) == ["a.h5", "sub"]
    assert os.listdir(tmp_path / "out" / "sub") == ["b.h5"]
    assert seen == [("total", 2), ("update", 1), ("update", 1), ("close",)]
    convert.convert_paths([str(tmp_path / "in" / "a.txt")], str(tmp_path / "one.jsonc"))
    assert sources.detect_format(tmp_path / "one.jsonc") == "json_compressed"
    with pytest.raises(RecordFormatError, match="nope: no such file"):
        convert.convert_paths([str(tmp_path / "nope")], str(tmp_path / "x.h5"))
    with pytest.raises(UsageError, match="cannot tell the output format"):
        convert.convert_paths([str(tmp_path / "in" / "a.txt")], str(tmp_path / "x.bin"))
    with pytest.raises(UsageError, match="is not a directory"):
        convert.convert_paths([str(tmp_path / "in")], str(tmp_path / "one.jsonc"))


def test_convert_record_file_in_place_keeps_the_mode(tmp_path):
    p = tmp_path / "damon.data"
    p.write_text(trace(4))
    os.chmod(p, 0o640)
    convert.convert_record_file(str(p), "json")
    assert sources.detect_format(p) == "json"
    assert os.stat(p).st_mode & 0o777 == 0o640
    with pytest.raises(RecordFormatError, match="no such file"):
        convert.convert_record_file(str(tmp_path / "missing"), "json")
