"""Plain ``info`` names what an archive holds beside the snapshots: every side table
with its rows (counted here with h5py), as ``info --json`` does."""
import h5py

from damo_pipe.analyze.cli import main

SAMPLE = __import__("damo_pipe.data", fromlist=["x"]).__path__[0] + "/sample.h5"


def _tables_by_h5py(path):
    out = {}
    with h5py.File(path, "r") as f:
        for name, g in f["collect"].items():
            if isinstance(g, h5py.Group) and "time_ns" in g:
                rows = g["time_ns"].shape[0]
                if "committed" in g:             # rows made durable (crash safety)
                    rows = min(rows, int(g["committed"][0]))
                out[name] = rows
    return out


def test_info_lists_side_tables_with_rows(capsys):
    assert main(["info", SAMPLE]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.startswith("side tables: "))
    expected = _tables_by_h5py(SAMPLE)
    assert expected, "the sample has side tables"
    for name, rows in expected.items():
        assert "%s (%d rows)" % (name, rows) in line


def test_info_of_an_archive_without_side_tables_has_no_side_line(tmp_path, capsys):
    out = str(tmp_path / "bare.h5")
    assert main(["convert", SAMPLE, out, "--no-side-files"]) == 0
    capsys.readouterr()
    assert main(["info", out]) == 0
    assert "side tables:" not in capsys.readouterr().out
