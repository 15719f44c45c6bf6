"""``report access --snapshot_time`` on an archive reads only the snapshots of the window
(the snapshot index), and prints exactly what the same command prints on the same
record in damo's json, which is read whole."""
import h5py
import pytest

from damo_pipe.analyze.cli import main

SAMPLE = __import__("damo_pipe.data", fromlist=["x"]).__path__[0] + "/sample.h5"


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    d = tmp_path_factory.mktemp("window")
    js = d / "sample.json"
    assert main(["convert", SAMPLE, str(js)]) == 0
    with h5py.File(SAMPLE, "r") as f:
        end = f["records/000000/snapshots/end_ns"][:]
        start = f["records/000000/snapshots/start_ns"][:]
    return js, start, end


def _windows(start, end):
    n = len(end)
    yield int(start[0]) - 10**9, int(end[2])                 # from before the first
    yield int(start[n // 2]), int(end[n // 2 + 3])           # exact snapshot bounds
    yield int(start[n // 2]) + 1, int(end[n // 2 + 3]) - 1   # just inside: fewer kept
    yield int(end[-3]), int(end[-1]) + 10**9                 # to past the last
    yield int(end[-1]) + 1, int(end[-1]) + 10**9             # nothing


@pytest.mark.parametrize("style", [[], ["--style", "simple-boxes"], ["--raw_form"], ["--json"]])
def test_archive_window_equals_whole_read(forms, capsys, style):
    js, start, end = forms
    for lo, hi in _windows(start, end):
        got = []
        for src in (SAMPLE, str(js)):
            rc = main(["report", "access", "--input", src, "--snapshot_time", str(lo), str(hi)]
                      + style)
            got.append((rc, capsys.readouterr().out.replace(str(js), SAMPLE)))
        assert got[0] == got[1], (lo, hi)


def test_only_the_window_is_read(forms):
    from damo_pipe.analyze.commands.report_access import _read_archive_window
    _, start, end = forms
    n = len(end)
    rec, = _read_archive_window(SAMPLE, (int(start[n // 2]), int(end[n // 2 + 3]) + 1))
    assert rec.nr_snapshots == 4 and n > 8
    assert rec.snapshots.end_ns.tolist() == end[n // 2:n // 2 + 4].tolist()
