"""The archive's direct Blosc chunk writer (archive/_blosc_direct.BloscChunkWriter):
what it stores is read back by plain h5py + hdf5plugin (HDF5's own filter), whole
chunks are the very bytes HDF5's filter stores, partly filled chunks are rewritten at
each flush, incompressible chunks are stored raw."""
import h5py
import hdf5plugin
import numpy as np
import pytest

from damo_pipe.archive._blosc_direct import BloscChunkWriter
from damo_pipe.archive.writer import ArchiveWriter
from damo_pipe.model import Record, RegionColumns, SnapshotColumns

CHUNK = 1000

FILTERS = {
    "lz4": lambda: hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE),
    "zstd": lambda: hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE),
}


def _dataset(f, name, dtype, comp):
    return f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(CHUNK,),
                            **FILTERS[comp]())


def _pieces(rng, total):
    """Piece lengths (some 0, some several chunks, most not chunk-aligned)."""
    out, n = [], 0
    while n < total:
        k = int(rng.choice([0, 1, 7, 999, 1000, 1001, 2500, 4321]))
        k = min(k, total - n)
        out.append(k)
        n += k
    return out


@pytest.mark.parametrize("comp", ["lz4", "zstd"])
@pytest.mark.parametrize("workers", [1, 3])
def test_appends_and_flushes_read_back_by_hdf5(tmp_path, comp, workers):
    rng = np.random.default_rng(5)
    total = 23_456
    ref = {"u": np.cumsum(rng.integers(0, 9, total, dtype=np.uint64)),
           "i": rng.integers(-5, 30, total, dtype=np.int64),
           "s": rng.integers(0, 3, total).astype(np.int32)}
    path = tmp_path / "a.h5"
    w = BloscChunkWriter(workers=workers)
    with h5py.File(path, "w") as f:
        ds = {k: _dataset(f, k, v.dtype, comp) for k, v in ref.items()}
        assert all(w.usable(d) for d in ds.values())
        pos = 0
        for j, k in enumerate(_pieces(rng, total)):
            for name, d in ds.items():
                d.resize((pos + k,))
                w.append(d, ref[name][pos:pos + k])
            w.wait()
            pos += k
            if j % 5 == 0:      # a flush: the partial chunk stored, then rewritten later
                w.write_tails()
        w.write_tails()
        w.close()
    with h5py.File(path, "r") as f:   # plain HDF5 filter path
        for name, v in ref.items():
            np.testing.assert_array_equal(f[name][:], v)


def test_whole_chunks_are_the_filters_bytes(tmp_path):
    rng = np.random.default_rng(1)
    v = np.cumsum(rng.integers(0, 5000, 5 * CHUNK, dtype=np.uint64))
    with h5py.File(tmp_path / "a.h5", "w") as f:
        mine, hdf5 = _dataset(f, "mine", v.dtype, "lz4"), _dataset(f, "hdf5", v.dtype, "lz4")
        w = BloscChunkWriter(workers=2)
        assert w.usable(mine)
        mine.resize((len(v),))
        w.append(mine, v)
        w.write_tails()
        w.close()
        hdf5.resize((len(v),))
        hdf5[:] = v
        for c in range(5):
            assert mine.id.read_direct_chunk((c * CHUNK,)) == \
                hdf5.id.read_direct_chunk((c * CHUNK,))


def test_incompressible_chunk_stored_raw(tmp_path):
    rng = np.random.default_rng(2)
    v = rng.integers(0, 2**63, 2 * CHUNK + 10, dtype=np.uint64)   # random bits
    with h5py.File(tmp_path / "a.h5", "w") as f:
        d = _dataset(f, "r", v.dtype, "lz4")
        w = BloscChunkWriter(workers=2)
        assert w.usable(d)
        d.resize((len(v),))
        w.append(d, v)
        w.write_tails()
        w.close()
        mask, raw = d.id.read_direct_chunk((0,))
        assert mask & 1 and len(raw) == CHUNK * 8
    with h5py.File(tmp_path / "a.h5", "r") as f:
        np.testing.assert_array_equal(f["r"][:], v)


def test_not_usable_for_other_filters_or_rows(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        g = f.create_dataset("g", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(CHUNK,),
                             compression="gzip")
        n = _dataset(f, "n", np.int64, "lz4")
        n.resize((3,))
        w = BloscChunkWriter()
        assert not w.usable(g)
        assert not w.usable(n)    # rows written another way before
        w.close()


def _chunk(lo, nsnap, per, rng):
    n = nsnap * per
    sizes = rng.integers(1, 50, n).astype(np.uint64) * 4096
    ends = np.uint64(1 << 40) + np.cumsum(sizes.reshape(nsnap, per), axis=1, dtype=np.uint64)
    starts = ends - sizes.reshape(nsnap, per)
    end_ns = (np.arange(lo, lo + nsnap, dtype=np.int64) + 1) * 100_000_000
    snaps = SnapshotColumns(start_ns=end_ns - 100_000_000, end_ns=end_ns,
                            region_offset=np.arange(nsnap, dtype=np.int64) * per,
                            nr_regions=np.full(nsnap, per, np.int64),
                            total_bytes=sizes.reshape(nsnap, per).sum(axis=1, dtype=np.uint64))
    return Record(target_id=0, snapshots=snaps,
                  regions=RegionColumns(starts.ravel(), ends.ravel(),
                                        rng.integers(0, 20, n, dtype=np.int64),
                                        rng.integers(0, 99, n, dtype=np.int64)))


@pytest.mark.parametrize("comp", ["lz4", "zstd", "gzip"])
def test_archive_writer_region_columns(tmp_path, comp):
    """Appends of uneven sizes with flushes between them, more rows than a chunk:
    every column read back by plain h5py equals the appended rows."""
    rng = np.random.default_rng(7)
    path = tmp_path / "a.h5"
    chunks, lo = [], 0
    with ArchiveWriter(path, compression=comp, chunk_rows=CHUNK) as w:
        w.add_record(Record(target_id=0))
        for j, nsnap in enumerate([3, 1, 40, 7, 25, 2, 60]):
            c = _chunk(lo, nsnap, 97, rng)
            lo += nsnap
            chunks.append(c)
            w.append(0, c)
            if j % 2:
                w.flush()
    with h5py.File(path, "r") as f:
        (g,) = f["records"].values()
        r = g["regions"]
        for name in ("start", "end", "nr_accesses", "age"):
            np.testing.assert_array_equal(
                r[name][:], np.concatenate([getattr(c.regions, name) for c in chunks]))
        assert r["start"].chunks == (CHUNK,)
        assert (r["probe_count"][:] == 0).all()
        assert len(r["probe_count"]) == sum(c.nr_regions for c in chunks)


def _page_regions(k, n, random_bytes=False):
    rng = np.random.default_rng(k)
    s = (np.arange(n, dtype=np.uint64) * 4096 + (1 << 40) + (k << 32)).astype(np.uint64)
    acc = rng.integers(0, 1 << 62, n) if random_bytes else np.full(n, k, np.int64)
    return RegionColumns(s, s + 4096, acc.astype(np.int64), np.arange(n, dtype=np.int64))


@pytest.mark.parametrize("chunk_rows, first, dropped, flush", [
    (4, 5, 4, False), (4, 5, 4, True), (4, 5, 3, False), (8, 9, 8, False),
    (4, 8, 6, False), (1000, 1001, 1000, False), (1000, 1500, 600, True)])
@pytest.mark.parametrize("comp", ["lz4", "zstd", "gzip"])
def test_dropped_streamed_snapshot_over_raw_chunks(tmp_path, comp, chunk_rows, first, dropped,
                                                   flush):
    """A streamed snapshot dropped back into a chunk stored raw (too small or too random
    for Blosc to shrink): libhdf5 cannot read such a chunk back before the file is
    closed, so the writer must not need to; the committed snapshot stays intact, and the
    next snapshot continues after it."""
    path = tmp_path / "a.h5"
    w = ArchiveWriter(path, chunk_rows=chunk_rows, compression=comp)
    idx = w.add_record(Record(target_id=0))
    keep = _page_regions(1, first, random_bytes=True)
    w.append_open(idx, keep)
    w.end_open(idx, 100, 200)
    if flush:
        w.flush()
    w.append_open(idx, _page_regions(2, dropped, random_bytes=True))
    w.drop_open(idx)
    w.flush()
    again = _page_regions(3, 3)
    w.append_open(idx, again)
    w.end_open(idx, 200, 300)
    w.close()
    with h5py.File(path, "r") as f:
        reg = next(iter(f["records"].values()))["regions"]
        for name in ("start", "nr_accesses"):
            want = np.concatenate([getattr(keep, name), getattr(again, name)])
            assert np.array_equal(reg[name][:], want), name
