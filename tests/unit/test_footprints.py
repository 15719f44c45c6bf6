"""Memory footprints: damo's .mem_footprint reader, archive side tables, distributions.

The reference numbers are computed straight from the JSON (damo's formulas: pages * 4096,
KiB * 1024, one value per snapshot; tests/support/footprints_reference.py), independently
of the reader.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from damo_pipe.analyze import footprints as F
from damo_pipe.analyze.cli import main
from damo_pipe.errors import RecordFormatError, ReportError
from damo_pipe.formats.footprints import parse_mem_footprint, read_mem_footprint
from tests.support.footprints_reference import SNAPS, reference


@pytest.fixture
def fp_file(tmp_path):
    p = tmp_path / "damon.data.mem_footprint"
    p.write_text(json.dumps(SNAPS, indent=4))
    return p


@pytest.mark.parametrize("metric", ["vsz", "rss", "sys_used"])
def test_values_follow_damos_formulas(fp_file, metric):
    fp = read_mem_footprint(fp_file)
    assert fp.nr_snapshots == 4
    assert F.footprint_values(fp, metric, sort=False) == reference(SNAPS, metric)
    assert F.footprint_values(fp, metric, sort=True) == sorted(reference(SNAPS, metric))


def test_columns_are_bytes_with_the_archive_names(fp_file):
    fp = read_mem_footprint(fp_file)
    assert fp.time_ns.tolist() == [100_500_000_000, 101_500_000_000, 102_500_000_000,
                                   103_500_000_000]
    assert fp.has_sys.tolist() == [True, True, False, True]
    assert fp.sys["MemTotal"].tolist() == [1024000, 1024000, 0, 2048000]
    assert fp.sys["MemAvailable"].tolist() == [0, 0, 0, 0]      # null -> 0
    assert fp.pid.tolist() == [1, 2, 1, 1, 2]
    assert fp.proc["vsz_bytes"].tolist() == [40960, 81920, 122880, 28672, 20480]
    assert fp.proc["data_bytes"].tolist() == [3 * 4096] * 5


@pytest.mark.parametrize("text, where, what", [
    ("", "line 1", "expected a JSON list"),
    ("{}", "line 1", "expected a JSON list"),
    ('[\n {"time": 1, "footprints": []},\n {"time": 2, "footprints": [}\n]', "line 3", "invalid JSON"),
    ('[\n {"time": 1, "footprints": []}\n {"time": 2}]', "line 3", "expected ','"),
    ('[\n {"time": 1, "footprints": []},\n {"footprints": []}\n]', "line 3", "snapshot 1: no 'time'"),
    ('[{"time": 1, "footprints": [{"pid": 3, "footprint": {"size": 1}}]}]', "line 1",
     "no 'resident'"),
    ('[{"time": 1, "footprints": [{"pid": 3, "footprint": {"size": "x", "resident": 1, '
     '"shared": 0, "trs": 0, "lrs": 0, "drs": 0, "dt": 0}}]}]', "line 1", "not a number"),
    ('[{"time": 1, "footprints": [{"pid": null, "footprint": {"total": 1.5, "free": 1, '
     '"available": 1, "buffers": 1, "cached": 1}}]}]', "line 1", "whole number"),
    ('[{"time": 1, "footprints": {}}]', "line 1", "not a list"),
    ('[{"time": 1, "footprints": [{"pid": true, "footprint": {}}]}]', "line 1", "bad pid"),
    ('[]\n\nx', "line 3", "after the snapshot list"),
])
def test_garbage_is_one_located_error(tmp_path, text, where, what):
    p = tmp_path / "bad.mem_footprint"
    p.write_text(text)
    with pytest.raises(RecordFormatError) as e:
        read_mem_footprint(p)
    msg = str(e.value)
    assert msg.startswith(str(p)) and where in msg and what in msg, msg


def test_missing_file_and_bad_utf8(tmp_path):
    with pytest.raises(RecordFormatError, match="no such file"):
        read_mem_footprint(tmp_path / "nope")
    with pytest.raises(RecordFormatError, match="byte offset 1"):
        parse_mem_footprint(b"[\xff]", "x")


def test_empty_list_prints_no_snapshot(tmp_path, capsys):
    p = tmp_path / "empty.mem_footprint"
    p.write_text("[]")
    assert main(["report", "footprints", "vsz", "--input", str(p)]) == 0
    assert capsys.readouterr().out == "# <percentile> <vsz>\n# no snapshot\n"


def write_archive(path, snaps, records=()):
    """An archive holding ``records`` and the footprints of ``snaps`` as damo-collect
    stores them (bytes, one row per pid and time; meminfo rows only where present)."""
    from damo_pipe.archive import ArchiveWriter
    statm = ["vsz_bytes", "rss_bytes", "shared_bytes", "text_bytes", "lib_bytes",
             "data_bytes", "dirty_bytes"]
    with ArchiveWriter(path) as w:
        tf = w.add_side_table("footprints", {"time_ns": np.int64, "pid": np.int64,
                                             **{c: np.uint64 for c in statm}})
        tm = w.add_side_table("meminfo", {"time_ns": np.int64, "MemTotal": np.uint64,
                                          "MemFree": np.uint64, "MemAvailable": np.uint64})
        for rec in records:
            idx = w.add_record(rec)
            w.append(idx, rec)
            if rec.first_start_ns is not None:
                w.set_first_start(idx, rec.first_start_ns)
        for s in snaps:
            t = int(round(s["time"] * 1e9))
            by_pid = {}
            for e in s["footprints"]:
                by_pid[e["pid"]] = e["footprint"]
            for pid, fp in by_pid.items():
                if pid is None:
                    tm.append(time_ns=t, MemTotal=fp["total"] * 1024, MemFree=fp["free"] * 1024,
                              MemAvailable=(fp["available"] or 0) * 1024)
                else:
                    tf.append(time_ns=t, pid=pid, **{c: fp[k] * 4096 for c, k in zip(
                        statm, ["size", "resident", "shared", "trs", "lrs", "drs", "dt"])})


@pytest.mark.parametrize("metric", ["vsz", "rss", "sys_used"])
def test_archive_side_tables_give_the_same_values(tmp_path, metric):
    h5 = tmp_path / "a.h5"
    # the snapshot without anything does not exist in an archive (no row at that time)
    snaps = [s for s in SNAPS if s["footprints"]]
    write_archive(h5, snaps)
    fp = F.load_footprints(h5)
    assert fp.nr_snapshots == 3
    assert F.footprint_values(fp, metric, sort=False) == reference(snaps, metric)


def test_archive_without_tables(tmp_path):
    from damo_pipe.archive import write_records
    from damo_pipe.model import Record
    h5 = tmp_path / "plain.h5"
    write_records([Record(target_id=0)], h5)
    assert F.archive_footprints(h5) is None
    with pytest.raises(RecordFormatError, match="no memory footprints"):
        F.load_footprints(h5)


def test_footprints_for_prefers_given_then_archive_then_side_file(tmp_path, fp_file):
    h5 = tmp_path / "rec.h5"
    write_archive(h5, SNAPS[:1])
    assert F.footprints_for(h5).nr_snapshots == 1
    assert F.footprints_for(h5, given=fp_file).nr_snapshots == 4
    plain = tmp_path / "damon.data"
    plain.write_text("x")
    assert F.footprints_for(plain).nr_snapshots == 4      # damon.data.mem_footprint
    with pytest.raises(RecordFormatError, match="no such file"):
        F.footprints_for(tmp_path / "other.data")


def test_time_range_uses_heatmaps_syntax(fp_file):
    fp = read_mem_footprint(fp_file)
    assert F.select_time_range(fp, ["1s", "3s", "guided"]).time_ns.tolist() == [
        101_500_000_000, 102_500_000_000]
    assert F.select_time_range(fp, ["0", "1s", "guided_end"]).nr_snapshots == 1
    assert F.select_time_range(fp, ["101500000000", "103500000000"]).nr_snapshots == 2
    sel = F.select_time_range(fp, ["2s", "10s", "guided"])
    assert F.footprint_values(sel, "vsz", sort=False) == reference(SNAPS[2:], "vsz")
    assert sel.proc_snapshot.tolist() == [1, 1]


def test_cli_text_json_and_time_range(fp_file, capsys):
    assert main(["report", "footprints", "rss", "--input", str(fp_file), "--raw-number",
                 "--range", "0", "101", "50"]) == 0
    vals = sorted(reference(SNAPS, "rss"))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "# <percentile> <rss>"
    assert out[1] == "# avr:\t%d" % (sum(vals) / 4)
    assert out[2].startswith("  0 %15d |" % vals[0])
    assert out[4].split()[:2] == ["100", str(vals[3])]
    assert main(["report", "footprints", "--input", str(fp_file), "--json",
                 "--time_range", "1s", "10s", "guided"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["schema"], doc["version"]) == ("damo-pipe/footprints", 1)
    assert doc["nr_snapshots"] == 3 and list(doc["metrics"]) == ["vsz", "rss", "sys_used"]
    vsz = sorted(reference(SNAPS[1:], "vsz"))
    assert [p["bytes"] for p in doc["metrics"]["vsz"]["percentiles"]] == [
        vsz[0], vsz[0], vsz[1], vsz[2], vsz[2]]
    assert doc["metrics"]["vsz"]["average_bytes"] == sum(vsz) / 3


def test_cli_missing_and_garbage_input_exit_1(tmp_path, capsys):
    assert main(["report", "footprints", "--input", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    bad = tmp_path / "bad"
    bad.write_text('[{"time": 1, "footprints": [oops]}]')
    assert main(["report", "footprints", "--input", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid JSON" in err[0] and "line 1" in err[0]


def test_unknown_metric_and_plot(fp_file, tmp_path):
    fp = read_mem_footprint(fp_file)
    with pytest.raises(ReportError):
        F.footprint_values(fp, "pss")
    pytest.importorskip("matplotlib")
    F.plot_footprints(fp, ["vsz", "rss"], "size", str(tmp_path / "fp.png"))
    F.plot_footprints(fp, ["sys_used"], "time", str(tmp_path / "t.svg"))
    assert (tmp_path / "fp.vsz.png").stat().st_size > 0
    assert (tmp_path / "fp.rss.png").stat().st_size > 0
    assert (tmp_path / "t.svg").stat().st_size > 0
