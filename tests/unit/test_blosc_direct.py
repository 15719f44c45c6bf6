"""Direct Blosc chunk reads (archive/_blosc_direct.py) return exactly what h5py's
``read_direct`` returns, and fall back to it whenever they cannot be sure."""
from __future__ import annotations

import numpy as np
import pytest

from damo_pipe.archive import ArchiveWriter, write_records
from damo_pipe.archive import _blosc_direct, layout
from damo_pipe.archive.reader import ArchiveReader
from damo_pipe.model import Intervals, IntervalsGoal, Record, RecordBuilder, RegionColumns

COLUMNS = ("start", "end", "nr_accesses", "age", "sz_filter_passed")


def _record(nsnap, seed, per=(1, 700)):
    rng = np.random.default_rng(seed)
    b = RecordBuilder(Record(target_id=0, kdamond_idx=0, context_idx=0,
                             intervals=Intervals(5000, 100000, 1000000, IntervalsGoal())))
    t = 10 ** 12
    for _ in range(nsnap):
        n = int(rng.integers(*per))
        sizes = rng.integers(1, 2048, n).astype(np.uint64) * 4096
        ends = np.uint64(0x7F00_0000_0000) + np.cumsum(sizes, dtype=np.uint64)
        b.add_snapshot(t, t + 100_000_000, RegionColumns(
            ends - sizes, ends, rng.integers(0, 21, n), rng.integers(-1, 500, n),
            rng.integers(0, 1 << 40, n).astype(np.uint64)))
        t += 100_000_000
    return b.build()


def _compare(path, ranges, expect_direct=None):
    """Columns of the direct path == read_direct's; ``expect_direct``: whether every
    read must have gone through the direct path (True) or none (False)."""
    fast = ArchiveReader(path)
    slow = ArchiveReader(path)
    slow.direct_chunks = False
    outcomes = []
    direct = fast._direct_reader()
    real = direct.read_many
    direct.read_many = lambda jobs: outcomes.append(real(jobs)) or outcomes[-1]
    try:
        for lo, hi in ranges:
            a, b = fast._read(0, lo, hi), slow._read(0, lo, hi)
            for n in COLUMNS:
                assert np.array_equal(getattr(a.regions, n), getattr(b.regions, n)), (lo, hi, n)
    finally:
        fast.close()
        slow.close()
    if expect_direct is True:
        assert outcomes and all(outcomes), outcomes
    elif expect_direct is False:
        assert not any(outcomes), outcomes


def _ranges(nsnap, rng):
    out = [(0, nsnap), (0, 1), (nsnap - 1, nsnap)]
    for _ in range(25):
        lo = int(rng.integers(0, nsnap))
        out.append((lo, int(rng.integers(lo + 1, nsnap + 1))))
    # consecutive chunks: the cached boundary chunk is reused
    out += [(k, min(nsnap, k + 37)) for k in range(0, nsnap, 37)]
    return out


@pytest.mark.parametrize("compression", ["lz4", "zstd", "gzip", "none"])
def test_same_columns_as_read_direct(tmp_path, compression):
    rec = _record(400, 1)
    path = tmp_path / "a.h5"
    write_records([rec], path, compression=compression)
    with ArchiveReader(path) as r:
        used = all(r._direct_reader().usable(r._handles[0].region_ds[n]) for n in COLUMNS)
    assert used == (compression in ("lz4", "zstd"))
    _compare(path, _ranges(400, np.random.default_rng(2)), expect_direct=used)


@pytest.mark.parametrize("pool_min", [0, 16, 10 ** 9])
def test_small_chunks_many_per_read(tmp_path, monkeypatch, pool_min):
    """Many chunks a read: decompressed in the pool (pool_min 0), in the caller's
    thread (10**9) or either by their number (the default)."""
    monkeypatch.setattr(_blosc_direct.BloscColumns, "POOL_MIN_CHUNKS", pool_min)
    rec = _record(300, 3)
    path = tmp_path / "a.h5"
    w = ArchiveWriter(path, chunk_rows=512)
    idx = w.add_record(rec)
    w.append(idx, rec)
    w.close()
    _compare(path, _ranges(300, np.random.default_rng(4)), expect_direct=True)


def test_chunk_stored_without_filter_is_copied(tmp_path, monkeypatch):
    """HDF5 stores a chunk as is (filter mask bit set) when the optional filter fails."""
    rec = _record(200, 5)
    path = tmp_path / "a.h5"
    write_records([rec], path, compression="lz4")
    real = ArchiveReader(path)
    raw_of = {}
    for n in layout.REGION_COLUMNS:
        d = real._handles[0].region_ds[n]
        full = d[:]
        c = d.chunks[0]
        padded = np.zeros(((len(full) + c - 1) // c) * c, full.dtype)
        padded[:len(full)] = full
        raw_of[d.name] = (c, padded)
    real.close()

    class Unfiltered:
        def __init__(self, name):
            self.name = name

        def read_direct_chunk(self, offsets, out=None):
            c, padded = raw_of[self.name]
            data = padded[offsets[0]:offsets[0] + c].tobytes()
            calls.append(out is not None)
            if out is None:
                return 1, data
            out[:len(data)] = np.frombuffer(data, np.uint8)
            return 1, memoryview(out)[:len(data)]

    orig_run = _blosc_direct.BloscColumns._run

    def run(self, task):
        d = task[0]

        class D:
            id = Unfiltered(d.name)
        return orig_run(self, (D,) + task[1:])
    calls = []
    monkeypatch.setattr(_blosc_direct.BloscColumns, "_run", run)
    _compare(path, _ranges(200, np.random.default_rng(6)), expect_direct=True)
    assert calls and all(calls)   # the direct path ran, reading into its own buffer
    with ArchiveReader(path) as r:
        assert r._direct_reader().read_many(
            [(r._handles[0].region_ds["start"], 0, 10, np.empty(10, np.uint64))])


def test_failures_fall_back_to_read_direct(tmp_path, monkeypatch):
    rec = _record(200, 7)
    path = tmp_path / "a.h5"
    write_records([rec], path, compression="lz4")

    def broken(self, task):
        raise _blosc_direct._Failed("simulated")
    monkeypatch.setattr(_blosc_direct.BloscColumns, "_run", broken)
    _compare(path, _ranges(200, np.random.default_rng(8)), expect_direct=False)
    monkeypatch.undo()
    monkeypatch.setattr(_blosc_direct, "_load_blosc", lambda: None)
    _compare(path, [(0, 200), (10, 20)])
    with ArchiveReader(path) as r:
        assert not r._direct_reader().usable(r._handles[0].region_ds["start"])


def test_swmr_files_use_read_direct(tmp_path):
    """A file a SWMR writer may still extend: its last chunk can change under a cached
    copy, so the direct path is off (a second process opens it; here the rule)."""
    rec = _record(50, 9)
    path = tmp_path / "a.h5"
    write_records([rec], path, compression="lz4")
    with ArchiveReader(path) as r:
        assert r._direct_reader() is not None
        r.swmr = True
        assert r._direct_reader() is None


def test_reader_registers_only_the_blosc_filter(tmp_path):
    """A fresh process reads lz4/zstd archives without importing hdf5plugin (whose import
    loads a dozen filter libraries), through HDF5's filter and through the direct path."""
    import subprocess
    import sys
    rec = _record(120, 11)
    want = {}
    for comp in ("lz4", "zstd"):
        path = tmp_path / (comp + ".h5")
        write_records([rec], path, compression=comp)
        want[comp] = str(path)
    code = (
        "import sys, numpy as np\n"
        "from damo_pipe.archive.reader import ArchiveReader\n"
        "out = []\n"
        "for p in sys.argv[1:]:\n"
        "    for direct in (True, False):\n"
        "        r = ArchiveReader(p); r.direct_chunks = direct\n"
        "        rec = r.load(0); r.close()\n"
        "        out.append(int(rec.regions.start.sum() % 1000003) + int(rec.regions.age.sum()))\n"
        "print('hdf5plugin' in sys.modules, *out)\n")
    res = subprocess.run([sys.executable, "-c", code, want["lz4"], want["zstd"]],
                         capture_output=True, text=True, check=True)
    got = res.stdout.split()
    expect = str(int(rec.regions.start.sum() % 1000003) + int(rec.regions.age.sum()))
    assert got == ["False"] + [expect] * 4, (got, res.stderr)
