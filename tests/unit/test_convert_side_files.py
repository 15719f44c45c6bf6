"""Side data through conversions (damo_pipe.convert, damo_pipe.sources): damo's
``X.mem_footprint`` and ``X.profile`` into an archive and back, archive -> archive
keeping every side table, the CLI switch, directories, a missing perf.

damo's fixture files are read from ../shared at test time (copied into tmp_path, never
into the repository)."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from damo_pipe import convert, sources
from damo_pipe.archive import ArchiveReader, ArchiveWriter
from damo_pipe.archive import profile as AP
from damo_pipe.archive.sidetables import read_side_table
from damo_pipe.formats.footprints import read_mem_footprint
from damo_pipe.model import Record
from tests.golden.conftest import FIXTURES
from tests.support.archive_proc import chunk_for

HOLI = FIXTURES / "damo-holistic" / "inputs" / "holi"
HAVE_PERF = shutil.which("perf") is not None


@pytest.fixture
def damo_files(tmp_path):
    """rec1.data with its .mem_footprint and .profile (damo 3.4.3's files), in tmp_path."""
    if not HOLI.exists():
        pytest.skip("../shared fixtures not available")
    d = tmp_path / "in"
    d.mkdir()
    for name in ("rec1.data", "rec1.data.mem_footprint", "rec1.data.profile"):
        shutil.copyfile(HOLI / name, d / name)
    return d / "rec1.data"


def _same_footprints(a, b):
    """Equal in damo's units: times, pids, every statm page count and meminfo KiB."""
    assert a.time_ns.tolist() == b.time_ns.tolist()
    assert a.pid.tolist() == b.pid.tolist() and a.proc_snapshot.tolist() == b.proc_snapshot.tolist()
    assert a.has_sys.tolist() == b.has_sys.tolist()
    for c in a.proc:
        assert (a.proc[c] // 4096).tolist() == (b.proc[c] // 4096).tolist(), c
    for c in a.sys:
        assert (a.sys[c] // 1024).tolist() == (b.sys[c] // 1024).tolist(), c


def test_side_file_table():
    assert sources.side_file_path("x/d.data", "profile") == "x/d.data.profile"
    assert sources.is_side_file("x/d.data.mem_footprint", {"x/d.data"})
    assert not sources.is_side_file("x/e.data.profile", {"x/d.data"})


@pytest.mark.parametrize("fmt, ext", [("json", ".json"), ("json_compressed", ".data")])
def test_round_trip_through_an_archive(damo_files, tmp_path, fmt, ext):
    src = str(damo_files)
    h5 = str(tmp_path / "r.h5")
    convert.convert_file(src, h5, "hdf5")
    fp = read_mem_footprint(src + ".mem_footprint")
    from damo_pipe.analyze.footprints import archive_footprints
    _same_footprints(archive_footprints(h5), fp)
    samples, attrs = AP.read_profile(h5)
    assert attrs["perf_data_name"] == "rec1.data.profile"
    if HAVE_PERF:
        assert len(samples) == 2704 and attrs["nr_samples"] == 2704
    # back to damo's files, side files beside
    out = str(tmp_path / ("back" + ext))
    convert.convert_file(h5, out, fmt)
    with open(src + ".profile", "rb") as a, open(out + ".profile", "rb") as b:
        assert a.read() == b.read()
    _same_footprints(read_mem_footprint(out + ".mem_footprint"), fp)
    # damo's own text comes back byte for byte (its float times included)
    with open(src + ".mem_footprint", "rb") as a, open(out + ".mem_footprint", "rb") as b:
        assert a.read() == b.read()


def test_no_side_files(damo_files, tmp_path):
    h5 = str(tmp_path / "r.h5")
    convert.convert_file(str(damo_files), h5, "hdf5", side_files=False)
    assert read_side_table(h5, "footprints") is None and AP.profile_attrs(h5) is None
    out = str(tmp_path / "o.json")
    convert.convert_file(str(damo_files), str(tmp_path / "f.h5"), "hdf5")
    convert.convert_file(str(tmp_path / "f.h5"), out, "json", side_files=False)
    assert not os.path.exists(out + ".profile") and not os.path.exists(out + ".mem_footprint")


def test_damo_to_damo_copies_side_files(damo_files, tmp_path):
    out = str(tmp_path / "o.json")
    convert.convert_file(str(damo_files), out, "json")
    for sfx in (".profile", ".mem_footprint"):
        with open(str(damo_files) + sfx, "rb") as a, open(out + sfx, "rb") as b:
            assert a.read() == b.read()


def test_missing_perf_keeps_the_bytes(damo_files, tmp_path, caplog):
    h5 = str(tmp_path / "r.h5")
    convert.convert_file(str(damo_files), h5, "hdf5", perf_path=str(tmp_path / "no-perf"))
    samples, attrs = AP.read_profile(h5)
    assert samples is None and "perf not found" in attrs["samples_error"]
    assert "kept without its sample table" in caplog.text
    back = AP.extract_perf_data(h5, tmp_path / "p.data")
    with open(str(damo_files) + ".profile", "rb") as a, open(back, "rb") as b:
        assert a.read() == b.read()


def _recorded_archive(path, profile_data):
    """An archive as damo-collect writes one: records, damos_stats / footprints / meminfo
    tables, /collect attributes, provenance, a profile."""
    from damo_pipe.formats.perf_samples import ProfileSamples
    meta = Record(target_id=3, pid=77)
    prov = {"source_format": "damon_sysfs", "command_line": "damo-collect record -- ./app",
            "hostname": "recorder-host", "kernel_release": "6.99-test"}
    with ArchiveWriter(path, provenance=prov) as w:
        w.add_record(meta)
        w.append(0, chunk_for(meta, 0, 0, 30))
        st = w.add_side_table("damos_stats", {"time_ns": np.int64, "nr_tried": np.uint64},
                              attrs={"schemes_json": "[]"})
        fp = w.add_side_table("footprints", {"time_ns": np.int64, "pid": np.int64,
                                             "vsz_bytes": np.uint64, "rss_bytes": np.uint64})
        mi = w.add_side_table("meminfo", {"time_ns": np.int64, "MemTotal": np.uint64,
                                          "MemFree": np.uint64, "SwapFree": np.uint64})
        for k in range(4):
            st.append(time_ns=k, nr_tried=10 * k)
            fp.append(time_ns=k, pid=77, vsz_bytes=4096 * (k + 10), rss_bytes=4096 * k)
            mi.append(time_ns=k, MemTotal=1 << 30, MemFree=1024 * k, SwapFree=5)
        w.set_side_attrs(spec_json=json.dumps({"ops": "vaddr"}), features_json="{}")
        w.set_profile(profile_data, ProfileSamples.from_rows(
            [(1, 77, 77, "main", "/app"), (2, 77, 78, "work", "/app")]),
            {"perf_clock": "realtime"})


def test_archive_to_archive_keeps_side_data(tmp_path):
    pd = tmp_path / "perf.data"
    pd.write_bytes(os.urandom(5000))
    a = str(tmp_path / "a.h5")
    _recorded_archive(a, str(pd))
    b = str(tmp_path / "b.h5")
    convert.convert_file(a, b, "hdf5", compression="zstd")
    for name in ("damos_stats", "footprints", "meminfo", "profile"):
        ta, tb = read_side_table(a, name), read_side_table(b, name)
        assert ta.keys() == tb.keys()
        for c in ta:
            assert np.array_equal(ta[c], tb[c]), (name, c)
    sa, aa = AP.read_profile(a)
    sb, ab = AP.read_profile(b)
    assert sa.symbols == sb.symbols and aa == ab
    assert AP.extract_perf_data(b, tmp_path / "x.data") and \
        (tmp_path / "x.data").read_bytes() == pd.read_bytes()
    with ArchiveReader(b) as r:
        attrs = r.attrs
        assert r.nr_snapshots(0) == 30 and r.records[0].pid == 77
    assert attrs["hostname"] == "recorder-host" and attrs["kernel_release"] == "6.99-test"
    assert attrs["command_line"] == "damo-collect record -- ./app"
    assert attrs["source_format"] == "damon_sysfs" and attrs["converted_from"] == a
    assert attrs["compression"] == "zstd"
    import h5py
    with h5py.File(b, "r") as f:
        assert json.loads(f["collect"].attrs["spec_json"]) == {"ops": "vaddr"}
        assert f["collect/damos_stats"].attrs["schemes_json"] == "[]"
    # and to damo's files: footprints in pages / KiB, the perf.data as it was
    out = str(tmp_path / "o.json")
    convert.convert_file(b, out, "json")
    assert (tmp_path / "o.json.profile").read_bytes() == pd.read_bytes()
    snaps = json.loads((tmp_path / "o.json.mem_footprint").read_text())
    assert [s["time"] for s in snaps] == [0.0, 1e-9, 2e-9, 3e-9]
    assert snaps[2]["footprints"] == [
        {"pid": 77, "footprint": {"size": 12, "resident": 2, "shared": 0, "trs": 0, "lrs": 0,
                                  "drs": 0, "dt": 0}},
        {"pid": None, "footprint": {"total": 1 << 20, "free": 2, "available": 0,
                                    "buffers": 0, "cached": 0}}]


def test_directory_conversion_skips_side_files(damo_files, tmp_path):
    out = tmp_path / "out"
    convert.convert_paths([str(damo_files.parent)], str(out))
    assert sorted(os.listdir(out)) == ["rec1.data.h5"]
    assert AP.profile_attrs(str(out / "rec1.data.h5")) is not None


def test_cli_switches(damo_files, tmp_path):
    from damo_pipe.analyze.cli import main
    h5 = str(tmp_path / "r.h5")
    assert main(["convert", "--no_side_files", str(damo_files), h5]) == 0
    assert AP.profile_attrs(h5) is None
    assert main(["convert", "--perf_path", str(tmp_path / "none"), str(damo_files), h5]) == 0
    samples, attrs = AP.read_profile(h5)
    assert samples is None and "samples_error" in attrs


def test_profile_path_extracts_and_cleans_up(damo_files, tmp_path):
    from damo_pipe.analyze.profile import profile_offset_ns, profile_path
    h5 = str(tmp_path / "r.h5")
    convert.convert_file(str(damo_files), h5, "hdf5")
    with profile_path(h5) as p:
        assert p != h5 + ".profile"
        with open(p, "rb") as a, open(str(damo_files) + ".profile", "rb") as b:
            assert a.read() == b.read()
    assert not os.path.exists(p)
    with profile_path(h5, "given.data") as p2:
        assert p2 == "given.data"
    assert profile_offset_ns(h5) == 0
    h5b = str(tmp_path / "plain.h5")
    convert.convert_file(str(damo_files), h5b, "hdf5", side_files=False)
    with profile_path(h5b) as p3:
        assert p3 == h5b + ".profile"
