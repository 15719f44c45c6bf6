"""Small archives are not bigger than their data (issue 14): a closed 1-minute recording
is at most its compressed columns + 64 KiB, and compaction keeps every value."""
import os

import h5py
import numpy as np
import pytest

from damo_pipe.analyze.heatmap import GuideBuilder
from damo_pipe.archive import layout
from damo_pipe.archive.reader import ArchiveReader
from damo_pipe.archive.sidetables import read_side_table
from damo_pipe.archive.writer import ArchiveWriter, compact
from damo_pipe.collect.footprints import FOOTPRINT_COLUMNS, MEMINFO_COLUMNS
from damo_pipe.collect.recorder import DAMOS_STATS_COLUMNS
from damo_pipe.model import Intervals, Record, RecordBuilder, RegionColumns

AGGR_NS = 100_000_000            # damo's default aggregation interval: 10 snapshots/s
T0 = 1_795_960_730_000_000_000
OVERHEAD = 64 << 10


def _regions(rng, bounds, k):
    b = np.concatenate([[0], bounds, [1 << 28]]).astype(np.uint64) + np.uint64(0x7f0000000000)
    n = len(b) - 1
    return RegionColumns(b[:-1], b[1:], rng.integers(0, 21, n), np.minimum(k, rng.integers(0, 60, n)))


def record_minute(path, nr_regions=70, seconds=60, flush_every=10, **writer_kw):
    """What ``damo-collect record`` writes in ``seconds``: one snapshot per 100 ms
    aggregation of a drifting layout, footprints/meminfo/DAMOS stats each second, a
    SWMR flush each second (its default --flush_interval), then close."""
    rng = np.random.default_rng(7)
    meta = Record(target_id=0, kdamond_idx=0, context_idx=0, scheme_idx=0,
                  intervals=Intervals(5000, 100000, 1000000), data_source="damon_sysfs",
                  ops="vaddr", pid=4242)
    bounds = np.sort(rng.choice(np.arange(1, 1 << 16), nr_regions - 1, replace=False)) << 12
    with ArchiveWriter(path, swmr=True, summariser=GuideBuilder, **writer_kw) as w:
        idx = w.add_record(meta)
        foot = w.add_side_table("footprints", FOOTPRINT_COLUMNS)
        mem = w.add_side_table("meminfo", MEMINFO_COLUMNS)
        stats = w.add_side_table("damos_stats", DAMOS_STATS_COLUMNS)
        w.flush()
        for k in range(seconds * 10):
            if k % 5 == 0:         # a region boundary moves now and then
                j = int(rng.integers(0, nr_regions - 1))
                bounds[j] = max(4096, int(bounds[j]) + 4096 * int(rng.integers(-3, 4)))
                bounds.sort()
            b = RecordBuilder(meta)
            t = T0 + k * (AGGR_NS + 1_000_000)
            b.add_snapshot(t, t + AGGR_NS, _regions(rng, bounds, k))
            w.append(idx, b.build())
            if k % 10 == 9:
                foot.append(time_ns=t, pid=4242, **{c: int(rng.integers(1, 1 << 30)) & ~4095
                                                    for c in FOOTPRINT_COLUMNS if c.endswith("bytes")})
                mem.append(time_ns=t, **{c: int(rng.integers(1, 1 << 34)) & ~1023
                                         for c in MEMINFO_COLUMNS if c != "time_ns"})
                stats.append(time_ns=t, scheme_idx=0, nr_tried=k, sz_tried=k << 12)
            if (k + 1) % flush_every == 0:
                w.flush()
    return path


def _columns(path):
    """Every data column of an archive: region and snapshot columns of each record,
    every side-table column (counters, indexes and metadata are not data)."""
    with h5py.File(path, "r") as f:
        for g in f[layout.RECORDS_GROUP].values():
            for sub, names in (("regions", layout.REGION_COLUMNS),
                               ("snapshots", layout.SNAPSHOT_COLUMNS)):
                for n in names:
                    yield g[sub][n][()]
        for t in f.get("collect", {}).values():
            if isinstance(t, h5py.Group):
                for c in str(t.attrs["columns"]).split(","):
                    yield t[c][()]


def column_bytes(path):
    """The lz4 columns: each column's values compressed with the archive's default
    compression (Blosc lz4 + shuffle) in pieces of at most 65,536 rows (a conversion's
    region chunks), in a memory file of their own -- whatever chunks the archive uses."""
    total = 0
    with h5py.File("columns.h5", "w", driver="core", backing_store=False) as mem:
        for i, values in enumerate(_columns(path)):
            if len(values):
                d = mem.create_dataset("c%d" % i, data=values,
                                       chunks=(min(len(values), layout.REGION_CHUNK_ROWS),),
                                       **layout.compression_kwargs("lz4"))
                total += d.id.get_storage_size()
    return total


@pytest.mark.parametrize("nr_regions", [70, 1000])
def test_one_minute_recording_is_its_columns_plus_64k(tmp_path, nr_regions):
    path = record_minute(tmp_path / "rec.h5", nr_regions)
    size = os.path.getsize(path)
    cols = column_bytes(path)
    assert size <= cols + OVERHEAD, "%d bytes for %d bytes of columns" % (size, cols)
    raw = 600 * nr_regions * sum(np.dtype(d).itemsize for d, _ in layout.REGION_COLUMNS.values())
    assert cols < raw / 2            # the columns are compressed (lz4), not padded chunks


def test_compaction_keeps_every_value(tmp_path):
    a = record_minute(tmp_path / "a.h5", 50, seconds=30)
    b = record_minute(tmp_path / "b.h5", 50, seconds=30, compact_on_close=False)
    assert os.path.getsize(a) * 2 < os.path.getsize(b)
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        seen = []

        def same(name, obj):
            if not isinstance(obj, h5py.Dataset):
                assert dict(fa[name].attrs) == dict(obj.attrs), name
                return
            da = fa[name]
            seen.append(name)
            assert (da.dtype, da.shape, dict(da.attrs)) == (obj.dtype, obj.shape, dict(obj.attrs)), name
            assert (da.compression, da.compression_opts, da.shuffle) == \
                (obj.compression, obj.compression_opts, obj.shuffle), name
            np.testing.assert_array_equal(da[()], obj[()], err_msg=name)
            if da.shape and da.shape[0]:
                assert da.maxshape == da.shape, name            # final size, no growth index
            if da.chunks and da.shape[0]:
                assert da.chunks[0] <= da.shape[0], name         # no chunk of padding
        fb.visititems(same)
        assert len(seen) > 60
    with ArchiveReader(a) as ra, ArchiveReader(b) as rb:
        x, y = ra.load(0), rb.load(0)
        for n in ("start", "end", "nr_accesses", "age", "sz_filter_passed"):
            np.testing.assert_array_equal(getattr(x.regions, n), getattr(y.regions, n))
        np.testing.assert_array_equal(x.snapshots.end_ns, y.snapshots.end_ns)
        assert ra.stored_guide(0) == rb.stored_guide(0) is not None
    assert read_side_table(a, "meminfo")["MemFree"].tolist() == \
        read_side_table(b, "meminfo")["MemFree"].tolist()


def test_compaction_of_a_big_column_keeps_chunked_reads(tmp_path):
    """More rows than one chunk: region chunks as convert writes them (65,536 rows), the
    reader's direct Blosc reads still apply, values identical."""
    p = tmp_path / "big.h5"
    record_minute(p, 300, seconds=30, compact_on_close=False)     # 90,000 regions
    with ArchiveReader(p) as r:
        before = r.load(0)
    compact(p)
    with h5py.File(p, "r") as f:
        d = f["records/000000/regions/start"]
        assert d.chunks == (layout.REGION_CHUNK_ROWS,) and d.maxshape == d.shape == (90000,)
    with ArchiveReader(p) as r:
        after = r.load(0)
    for n in ("start", "end", "nr_accesses", "age"):
        np.testing.assert_array_equal(getattr(before.regions, n), getattr(after.regions, n))


def test_small_conversion_is_compacted(tmp_path):
    """A non-SWMR archive whose regions fit in one chunk is compacted on close too."""
    from damo_pipe.archive.writer import write_records
    rng = np.random.default_rng(1)
    meta = Record(target_id=1, intervals=Intervals(5000, 100000, 1000000))
    b = RecordBuilder(meta)
    bounds = np.arange(1, 40) << 12
    for k in range(200):
        b.add_snapshot(T0 + k * AGGR_NS, T0 + (k + 1) * AGGR_NS, _regions(rng, bounds, k))
    write_records([b.build()], tmp_path / "c.h5")
    size = os.path.getsize(tmp_path / "c.h5")
    assert size <= column_bytes(tmp_path / "c.h5") + OVERHEAD
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f["records/000000/regions/start"].chunks == (200 * 40,)
