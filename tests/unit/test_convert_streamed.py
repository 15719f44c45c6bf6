"""``damo-analyze convert`` of trace text whose snapshots are too big to hold: they are
streamed into the archive in pieces (convert.OPEN_REGIONS); the archive must hold the
same records as a conversion that holds every snapshot whole, and a damaged input must
fail the same way (its line number) without leaving an output."""
import numpy as np
import pytest

from damo_pipe import convert
from damo_pipe.analyze.cli import main
from damo_pipe.archive import read_archive_records
from tests.unit.test_streamer_ingest import CASES


def _convert(tmp_path, data, open_regions, name, monkeypatch, extra=()):
    src = tmp_path / "in.txt"
    src.write_bytes(data)
    out = tmp_path / ("%s.h5" % name)
    monkeypatch.setattr(convert, "OPEN_REGIONS", open_regions)
    rc = main(["convert", *extra, str(src), str(out)])
    return rc, out


def _columns(records):
    out = []
    for r in records:
        s, g = r.snapshots, r.regions
        out.append((r.target_id,
                    [np.asarray(x).tolist() for x in (s.start_ns, s.end_ns, s.nr_regions,
                                                      s.total_bytes)],
                    [np.asarray(x).tolist() for x in (g.start, g.end, g.nr_accesses, g.age)]))
    return out


@pytest.mark.parametrize("name", sorted(n for n in CASES if n != "truncated"))
@pytest.mark.parametrize("open_regions", [1, 500])
def test_streamed_conversion_holds_the_same_records(tmp_path, monkeypatch, name, open_regions):
    data = CASES[name]
    rc_whole, whole = _convert(tmp_path, data, 1 << 40, "whole", monkeypatch)
    rc_streamed, streamed = _convert(tmp_path, data, open_regions, "streamed", monkeypatch)
    assert rc_whole == rc_streamed == 0
    a, b = read_archive_records(whole), read_archive_records(streamed)
    assert sum(r.nr_regions for r in a) == sum(r.nr_regions for r in b) > 0
    assert _columns(a) == _columns(b)


def test_streamed_conversion_of_a_damaged_input_fails_as_the_whole_one(
        tmp_path, monkeypatch, capsys):
    data = CASES["truncated"]
    rc_whole, whole = _convert(tmp_path, data, 1 << 40, "whole", monkeypatch)
    err_whole = capsys.readouterr().err
    rc_streamed, streamed = _convert(tmp_path, data, 500, "streamed", monkeypatch)
    err_streamed = capsys.readouterr().err
    assert rc_whole == rc_streamed != 0
    last_line = data.count(b"\n") + (not data.endswith(b"\n"))   # the cut last line
    assert "line %d:" % last_line in err_streamed and err_streamed == err_whole
    assert not whole.exists() and not streamed.exists()


def test_streamed_lenient_conversion_drops_the_incomplete_snapshot(tmp_path, monkeypatch):
    data = CASES["truncated"]
    rc_whole, whole = _convert(tmp_path, data, 1 << 40, "whole", monkeypatch, ["--lenient"])
    rc_streamed, streamed = _convert(tmp_path, data, 500, "streamed", monkeypatch,
                                     ["--lenient"])
    assert rc_whole == rc_streamed == 0
    a, b = read_archive_records(whole), read_archive_records(streamed)
    assert _columns(a) == _columns(b)
    assert sum(r.nr_snapshots for r in b) == 1      # the cut second snapshot is dropped
