"""Large records keep their snapshot table on disk: a time window is found through the
archive's time index and only its rows are read (issue 16, day-long archives).

The reference is the plain search of the whole table read with h5py (the first whose
end is >= t0 up to the first whose start is >= t1), and the same reports on the same
record read whole from damo's json."""
import h5py
import numpy as np
import pytest

from damo_pipe.analyze.cli import main
from damo_pipe.archive import ArchiveReader, ArchiveWriter
from damo_pipe.archive import reader as reader_mod
from damo_pipe.errors import ArchiveError
from damo_pipe.model import Intervals, IntervalsGoal, Record, RegionColumns, SnapshotColumns

NR_SNAPSHOTS = 9000          # > LAZY_TABLE_MIN_SNAPSHOTS and > 35 time-index strides
REGIONS = 3
T0 = 10**12


def _record(seed=1):
    rng = np.random.default_rng(seed)
    # uneven durations and gaps, so that windows fall anywhere inside index strides
    dur = rng.integers(50, 150, NR_SNAPSHOTS) * 10**6
    gap = np.where(rng.random(NR_SNAPSHOTS) < 0.05, rng.integers(1, 10**9, NR_SNAPSHOTS), 0)
    end = T0 + np.cumsum(dur + gap)
    start = end - dur
    n = NR_SNAPSHOTS * REGIONS
    base = np.arange(REGIONS, dtype=np.uint64) * np.uint64(1 << 20) + np.uint64(1 << 30)
    starts = np.tile(base, NR_SNAPSHOTS)
    ends = starts + np.uint64(1 << 20)
    snaps = SnapshotColumns(start_ns=start, end_ns=end,
                            region_offset=np.arange(NR_SNAPSHOTS, dtype=np.int64) * REGIONS,
                            nr_regions=np.full(NR_SNAPSHOTS, REGIONS, np.int64),
                            total_bytes=np.full(NR_SNAPSHOTS, REGIONS << 20, np.uint64))
    regions = RegionColumns(starts, ends, rng.integers(0, 21, n), rng.integers(0, 50, n))
    return Record(target_id=0, snapshots=snaps, regions=regions, kdamond_idx=0, context_idx=0,
                  intervals=Intervals(5000, 100000, 1000000, IntervalsGoal(0.0, 0, 0, 0)))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("lazy") / "long.h5"
    rec = _record()
    with ArchiveWriter(str(path)) as w:
        w.add_record(rec.meta() if hasattr(rec, "meta") else rec)
        for lo in range(0, NR_SNAPSHOTS, 1000):     # several appends: index grows with them
            w.append(0, rec.slice_snapshots(lo, min(NR_SNAPSHOTS, lo + 1000)))
            w.flush()
    return str(path)


def _table(path):
    with h5py.File(path, "r") as f:
        s = f["records/000000/snapshots"]
        return s["start_ns"][:], s["end_ns"][:]


def _windows(start, end):
    rng = np.random.default_rng(7)
    for k in rng.integers(0, NR_SNAPSHOTS, 40):
        k = int(k)
        yield int(start[k]), int(end[min(NR_SNAPSHOTS - 1, k + int(rng.integers(0, 600)))])
        yield int(end[k]), int(end[k]) + 1                      # one instant at an end
        yield int(start[k]) + 1, int(start[k]) + 2              # inside one snapshot
    yield int(start[0]) - 10**9, int(start[0])                  # before the first
    yield int(end[-1]), int(end[-1]) + 10**9                    # at the last end
    yield int(end[-1]) + 1, int(end[-1]) + 10**9                # after everything
    yield int(start[0]) - 10**9, int(end[-1]) + 10**9           # everything
    for k in (255, 256, 257, 511, 512, 4095, 4096, 8191, 8192):  # stride boundaries
        yield int(end[k]), int(start[k + 1]) + 1
        yield int(end[k]) - 1, int(end[k])


def test_windows_match_the_whole_table_search(archive):
    start, end = _table(archive)
    with ArchiveReader(archive) as r:
        for t0, t1 in _windows(start, end):
            lo = int(np.searchsorted(end, t0, side="left"))
            hi = max(lo, int(np.searchsorted(start, t1, side="left")))
            assert r.snapshot_range(0, (t0, t1)) == (lo, hi), (t0, t1)
            rec = r.load(0, time_range=(t0, t1))
            assert rec.nr_snapshots == hi - lo
            if hi > lo:
                assert rec.snapshots.end_ns.tolist() == end[lo:hi].tolist()
                assert rec.snapshots.region_offset[0] == 0
        assert r._handles[0]._table is None, "a window read the whole snapshot table"


def test_small_records_are_read_whole_at_open(tmp_path):
    rec = _record().slice_snapshots(0, 100)
    path = str(tmp_path / "small.h5")
    with ArchiveWriter(path) as w:
        w.add_record(rec)
        w.append(0, rec)
    with ArchiveReader(path) as r:
        assert r._handles[0]._table is not None
        assert reader_mod.LAZY_TABLE_MIN_SNAPSHOTS > 100


def test_whole_table_and_chunks_agree_with_the_file(archive):
    start, end = _table(archive)
    with ArchiveReader(archive) as r:
        chunks = list(r.iter_chunks(0, regions_per_chunk=1000))
        assert sum(c.nr_snapshots for c in chunks) == NR_SNAPSHOTS
        assert np.concatenate([c.snapshots.end_ns for c in chunks]).tolist() == end.tolist()
        assert r.snapshot_table(0).start_ns.tolist() == start.tolist()
        assert r.snapshot_column(0, "end_ns").tolist() == end.tolist()


@pytest.mark.parametrize("command", [["report", "wss"], ["report", "nr_regions"],
                                     ["report", "heatmap", "--output", "raw"]])
def test_windowed_reports_equal_the_json_read_whole(archive, tmp_path, capsys, command):
    js = str(tmp_path / "long.json")
    assert main(["convert", archive, js]) == 0
    capsys.readouterr()
    start, end = _table(archive)
    t0 = int(start[4000]) - T0
    t1 = int(end[4100]) - T0
    words = ["--time_range", "%dns" % (t0 + T0), "%dns" % (t1 + T0)]
    outs = []
    for src in (archive, js):
        rc = main(command + ["--input", src] + words)
        outs.append((rc, capsys.readouterr().out))
    assert outs[0][0] == 0
    assert outs[0] == outs[1]


def test_damage_inside_a_window_is_an_error_naming_the_row(archive, tmp_path):
    import shutil
    path = str(tmp_path / "damaged.h5")
    shutil.copy(archive, path)
    with h5py.File(path, "r+") as f:
        f["records/000000/snapshots/nr_regions"][5000] = -4
    start, end = _table(path)
    with ArchiveReader(path) as r:
        # a window elsewhere still reads
        assert r.load(0, time_range=(int(start[100]) + 1, int(end[110]))).nr_snapshots == 11
        with pytest.raises(ArchiveError, match=r"nr_regions, row 5000: negative"):
            r.load(0, time_range=(int(start[4990]), int(end[5010])))
        with pytest.raises(ArchiveError, match=r"row 5000"):
            r.snapshot_table(0)


def test_a_wrong_last_row_is_an_error_at_open(archive, tmp_path):
    import shutil
    path = str(tmp_path / "short.h5")
    shutil.copy(archive, path)
    with h5py.File(path, "r+") as f:
        f["records/000000/snapshots/nr_regions"][NR_SNAPSHOTS - 1] = 2
    with pytest.raises(ArchiveError, match="committed"):
        ArchiveReader(path)
