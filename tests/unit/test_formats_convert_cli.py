"""Format detection and the ``convert`` / ``convert_record_format`` commands."""
import json
import struct
import zlib

import numpy as np
import pytest

from damo_pipe.analyze.cli import main
from damo_pipe.errors import RecordFormatError
from damo_pipe.sources import detect_format, read_records

PERF_LINE = "kdamond.0 1 [000] %s: damon:damon_aggregated: target_id=0 nr_regions=1 %d-%d: 3 4\n"


def trace(n=5):
    return "".join(PERF_LINE % ("%d.%06d" % (100 + k, 7 * k), 4096 * k, 4096 * k + 4096)
                   for k in range(n))


@pytest.mark.parametrize("content,fmt", [
    (b"\x89HDF\r\n\x1a\n" + b"\0" * 8, "hdf5"),
    (b"damon_recfmt_ver\x02\0\0\0", "record"),
    (b"PERFILE2" + b"\0" * 8, "perf_data"),
    (zlib.compress(b"[]"), "json_compressed"),
    (b"  \n [ ]", "json"),
    (b"{}", "json"),
    (b"\x01\x00\x00\x00\x00\x00\x00\x00", "record"),
    (b"cpus=2\n  kdamond.0-1 [000] 1.0: x", "perf_script"),
])
def test_detect(tmp_path, content, fmt):
    p = tmp_path / "f"
    p.write_bytes(content)
    assert detect_format(p) == fmt


def test_detect_errors(tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    with pytest.raises(RecordFormatError, match="empty"):
        detect_format(p)
    p.write_bytes(b"\x17\x08\x44tracing6")
    with pytest.raises(RecordFormatError, match="trace-cmd"):
        detect_format(p)
    with pytest.raises(RecordFormatError):
        detect_format(tmp_path / "missing")


def test_input_type_forces(tmp_path):
    p = tmp_path / "x.json"          # the name says json, the content is a trace
    p.write_text(trace())
    assert read_records(p)[0].nr_snapshots == 5
    with pytest.raises(RecordFormatError):
        read_records(p, input_type="json")


def test_convert_extensions_and_back(tmp_path):
    src = tmp_path / "damon.data"
    src.write_text(trace(6))
    for ext, fmt in ((".h5", "hdf5"), (".json", "json"), (".jsonc", "json_compressed"),
                     (".perf", "perf_script")):
        out = tmp_path / ("o" + ext)
        assert main(["convert", str(src), str(out)]) == 0
        assert detect_format(out) == ("perf_script" if fmt == "perf_script" else fmt)
        r = read_records(out)[0]
        assert r.nr_snapshots == 6
        assert r.regions.start.tolist() == [4096 * k for k in range(6)]
    # archive keeps the exact deduced first start; json keeps its truncation
    ends = [int(float("%d.%06d" % (100 + k, 7 * k)) * 1e9) for k in range(6)]
    first = ends[0] - float(ends[-1] - ends[0]) / 5
    a = read_records(tmp_path / "o.h5")[0]
    assert a.first_start_ns == first
    assert a.snapshots.start_ns[0] == int(first)
    assert read_records(tmp_path / "o.json")[0].snapshots.start_ns[0] == int(first)


def test_convert_unknown_extension(tmp_path, capsys):
    src = tmp_path / "damon.data"
    src.write_text(trace())
    assert main(["convert", str(src), str(tmp_path / "out.bin")]) == 2
    assert "--format" in capsys.readouterr().err
    assert main(["convert", "--format", "json", str(src), str(tmp_path / "out.bin")]) == 0
    assert json.loads((tmp_path / "out.bin").read_text())[0]["target_id"] == 0


def test_convert_many_into_directory(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text(trace(3))
    (d / "sub" / "b.data").write_text(trace(4))
    (d / ".hidden").write_text("x")
    out = tmp_path / "out"
    assert main(["convert", str(d), str(out)]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.h5")) == ["a.h5", "sub/b.data.h5"]
    assert read_records(out / "sub" / "b.data.h5")[0].nr_snapshots == 4
    out2 = tmp_path / "out2"
    assert main(["convert", "--format", "json", str(d / "a.txt"), str(d / "sub" / "b.data"),
                 str(out2)]) == 0
    assert sorted(p.name for p in out2.iterdir()) == ["a.json", "b.data.json"]


def test_convert_failure_leaves_no_output(tmp_path):
    src = tmp_path / "bad.txt"
    src.write_text(trace(3) + "kdamond.0 1 [000] 1.0: damon:damon_aggregated: target_id=0 nr_regions=1 z-1: 3 4\n")
    for name in ("o.h5", "o.json"):
        assert main(["convert", str(src), str(tmp_path / name)]) != 0
        assert not (tmp_path / name).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]


def test_convert_json_stream_patches_late_metadata(tmp_path):
    regions = [{"start": str(i), "end": str(i + 1), "nr_accesses": {"samples": 1, "percent": None},
                "age": {"usec": None, "aggr_intervals": "2"}} for i in range(10)]
    doc = [{"target_id": 4, "snapshots": [{"start_time": k, "end_time": k + 1, "regions": regions}
                                          for k in range(5)], "data_source": "damon_stat"}]
    src = tmp_path / "d.json"
    src.write_text(json.dumps(doc))
    out = tmp_path / "d.h5"
    assert main(["convert", "--chunk_regions", "7", str(src), str(out)]) == 0
    r = read_records(out)[0]
    assert r.data_source == "damon_stat"
    assert r.nr_snapshots == 5 and r.nr_regions == 50


def test_convert_record_format_in_place(tmp_path):
    src = tmp_path / "damon.data"
    src.write_text(trace(2))
    src.chmod(0o640)
    assert main(["convert_record_format", "--record_file", str(src), "--format", "json"]) == 0
    assert detect_format(src) == "json"
    assert (src.stat().st_mode & 0o777) == 0o640
    assert main(["convert_record_format", "--record_file", str(src)]) == 0
    assert detect_format(src) == "json_compressed"
    assert read_records(src)[0].nr_snapshots == 2


def test_binary_to_json_cli(tmp_path):
    data = b"damon_recfmt_ver" + struct.pack("<i", 2)
    for k in range(3):
        data += struct.pack("<qqIQI", 10 + k, 0, 1, 99, 1) + struct.pack("<QQI", 0, 4096, k)
    src = tmp_path / "bin.data"
    src.write_bytes(data)
    assert main(["convert_record_format", "--record_file", str(src), "--format", "json",
                 "--output_file", str(tmp_path / "o.json")]) == 0
    obj = json.loads((tmp_path / "o.json").read_text())
    assert obj[0]["target_id"] == 99
    assert [s["end_time"] for s in obj[0]["snapshots"]] == ["10000000000", "11000000000", "12000000000"]
    assert obj[0]["snapshots"][0]["start_time"] == "9000000000"
    assert np.array([s["regions"][0]["nr_accesses"]["samples"] for s in obj[0]["snapshots"]]).tolist() == [0, 1, 2]


def test_archive_to_damo_formats_equals_direct(tmp_path):
    src = tmp_path / "t.txt"
    src.write_text(trace(9))
    assert main(["convert", str(src), str(tmp_path / "a.h5")]) == 0
    assert main(["convert", str(tmp_path / "a.h5"), str(tmp_path / "b.h5")]) == 0
    for ext, fmt in ((".json", "json"), (".perf", "perf_script"), (".jsonc", "json_compressed")):
        assert main(["convert", str(tmp_path / "b.h5"), str(tmp_path / ("via" + ext))]) == 0
        assert main(["convert_record_format", "--record_file", str(src), "--format", fmt,
                     "--output_file", str(tmp_path / ("direct" + ext))]) == 0
        assert (tmp_path / ("via" + ext)).read_bytes() == (tmp_path / ("direct" + ext)).read_bytes()


@pytest.mark.parametrize("ext", [".json", ".perf", ".jsonc"])
def test_big_inputs_stream_through_an_archive(tmp_path, monkeypatch, ext):
    from damo_pipe import convert
    src = tmp_path / "t.txt"
    text = trace(7)
    # a second target with a single snapshot (perf_script writer adds a fake one)
    text += "kdamond.0 1 [000] 200.000000: damon:damon_aggregated: target_id=5 nr_regions=1 0-4096: 1 2\n"
    src.write_text(text)
    assert main(["convert", str(src), str(tmp_path / ("direct" + ext))]) == 0
    monkeypatch.setattr(convert, "STREAM_VIA_ARCHIVE_BYTES", 10)
    assert main(["convert", "--chunk_regions", "2", str(src), str(tmp_path / ("via" + ext))]) == 0
    assert (tmp_path / ("via" + ext)).read_bytes() == (tmp_path / ("direct" + ext)).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["t.txt", "direct" + ext, "via" + ext])
