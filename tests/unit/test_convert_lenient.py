"""``damo-analyze convert --lenient``: a trace text with one lost line is an error by
default, and with --lenient the snapshot it broke is dropped (warned and counted) while
every other snapshot arrives intact."""
import pytest

from benchmarks.gen import iter_trace_text, make_record
from damo_pipe.analyze.cli import main
from damo_pipe.archive import read_archive_records


def _snapshots(rec):
    """[(end_ns, [(start, end, nr_accesses)])] per snapshot, from the columns."""
    S, R = rec.snapshots, rec.regions
    out = []
    for k in range(rec.nr_snapshots):
        lo, n = int(S.region_offset[k]), int(S.nr_regions[k])
        out.append((int(S.end_ns[k]), list(zip(R.start[lo:lo + n].tolist(),
                                               R.end[lo:lo + n].tolist(),
                                               R.nr_accesses[lo:lo + n].tolist()))))
    return out


@pytest.mark.parametrize("style", ["perf", "trace-cmd", "trace_pipe"])
def test_lost_line_is_an_error_and_lenient_drops_only_its_snapshot(tmp_path, capsys, caplog, style):
    rec = make_record(6, 5, seed=3, with_intervals=False)
    snaps = list(iter_trace_text([rec], style))
    broken = 2                                   # lose the second line of snapshot 2
    lines = snaps[broken].splitlines(keepends=True)
    snaps[broken] = b"".join(lines[:1] + lines[2:])
    src = tmp_path / "damaged.txt"
    src.write_bytes(b"".join(snaps))
    dst = tmp_path / "out.h5"

    assert main(["convert", str(src), str(dst)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(src) in err[0] and "line " in err[0], err
    assert not dst.exists()

    assert main(["convert", "--lenient", str(src), str(dst)]) == 0
    assert "dropped 1 incomplete snapshot" in caplog.text, caplog.text
    got = _snapshots(read_archive_records(dst)[0])
    want = [s for k, s in enumerate(_snapshots(rec)) if k != broken]
    assert [g[1] for g in got] == [w[1] for w in want]
    assert [g[0] // 1000 for g in got] == [w[0] // 1000 for w in want]   # text keeps us
