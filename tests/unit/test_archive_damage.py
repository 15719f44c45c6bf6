"""A damaged HDF5 archive is an error naming the file, the dataset and the row or
chunk: an inconsistent snapshot table (checked on open) or a chunk that cannot be read
or decompressed, through ``info``, ``report wss`` and ``convert`` alike; never a
traceback, never a record with the wrong number of regions. The archives are damaged
here, from ones written by the writer."""
import shutil

import h5py
import numpy as np
import pytest

from benchmarks.gen import make_record
from damo_pipe.analyze.cli import main
from damo_pipe.archive import ArchiveReader, write_records
from damo_pipe.archive.reader import check_snapshot_index
from damo_pipe.errors import ArchiveError

SNAPS = "/records/000000/snapshots/"


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """(lz4, gzip) archives of 3 chunks of region rows each."""
    d = tmp_path_factory.mktemp("arch")
    rec = make_record(200, 1000, seed=11)      # 200000 regions: 4 chunks of 65536 rows
    out = {}
    for comp in ("lz4", "gzip"):
        out[comp] = d / ("%s.h5" % comp)
        write_records([rec], out[comp], compression=comp)
    return out


def damaged(tmp_path, src, change):
    p = tmp_path / "damaged.h5"
    shutil.copy(src, p)
    with h5py.File(p, "r+") as f:
        change(f)
    return p


def cli_error(capsys, *args):
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, (rc, err)
    return err[0]


def commands(path, tmp_path):
    return [("info", path), ("report", "wss", "--input", path),
            ("convert", path, tmp_path / "out.json"), ("convert", path, tmp_path / "out.h5")]


def set_row(column, row, value):
    def change(f):
        d = f[SNAPS + column]
        d[row if row >= 0 else int(f["records/000000/committed"][0]) + row] = value
    return change


def shift(column, row, by):
    def change(f):
        d = f[SNAPS + column]
        d[row] = d[row] + by
    return change


@pytest.mark.parametrize("change,want", [
    (set_row("nr_regions", 3, 1 << 40),
     "dataset %snr_regions, row 3: 1099511627776 regions from offset 3000, but "
     "region_offset row 4 is 4000 (not contiguous)" % SNAPS),
    (set_row("nr_regions", 7, -5), "dataset %snr_regions, row 7: negative region count -5"
     % SNAPS),
    (shift("region_offset", 5, 1), "dataset %snr_regions, row 4: 1000 regions from offset "
     "4000, but region_offset row 5 is 5001 (not contiguous)" % SNAPS),
    (set_row("region_offset", 0, 10), "dataset %sregion_offset, row 0: first offset 10, not 0"
     % SNAPS),
    (set_row("nr_regions", -1, 1010), "dataset %snr_regions, row 199: regions 199000-200009, "
     "beyond the 200000 rows of the region columns" % SNAPS),
    (set_row("nr_regions", -1, 1 << 40), "dataset %snr_regions, row 199: regions "
     "199000-1099511826775, beyond the 200000 rows" % SNAPS),
])
def test_an_inconsistent_snapshot_table_is_an_error(tmp_path, capsys, archives, change, want):
    p = damaged(tmp_path, archives["lz4"], change)
    for args in commands(p, tmp_path):
        line = cli_error(capsys, *args)
        assert line.startswith("damo-analyze: error: %s: %s" % (p, want)), line
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("comp", ["lz4", "gzip"])
@pytest.mark.parametrize("direct", [True, False])
def test_a_corrupt_chunk_names_the_dataset_and_chunk(tmp_path, capsys, archives, monkeypatch,
                                                     comp, direct):
    monkeypatch.setattr(ArchiveReader, "direct_chunks", direct)
    p = tmp_path / "chunk.h5"
    shutil.copy(archives[comp], p)
    with h5py.File(p, "r") as f:
        info = f["records/000000/regions/end"].id.get_chunk_info(2)
    with open(p, "r+b") as fh:                  # the middle of chunk 2 of the end column
        fh.seek(info.byte_offset + 8)
        fh.write(b"\xff" * min(4096, info.size - 16))
    want = ("damo-analyze: error: %s: dataset /records/000000/regions/end, chunk 2 "
            "(rows 131072-196607): damaged, cannot be read (" % p)
    for args in commands(p, tmp_path)[1:]:
        assert cli_error(capsys, *args).startswith(want)
    assert main(["info", str(p)]) == 0          # info reads the snapshot table only
    capsys.readouterr()


def test_the_check_itself():
    o = np.array([0, 3, 5, 9], np.int64)
    c = np.array([3, 2, 4, 1], np.int64)
    assert check_snapshot_index("f", "/r", o, c, 10) == 4
    # a SWMR writer's snapshots beyond the durable regions are dropped, not an error
    assert check_snapshot_index("f", "/r", o, c, 9, swmr=True) == 3
    with pytest.raises(ArchiveError, match="row 3: regions 9-9, beyond the 9 rows"):
        check_snapshot_index("f", "/r", o, c, 9)
    c2 = c.copy()
    c2[3] = np.iinfo(np.int64).max
    with pytest.raises(ArchiveError, match="row 3: region count .* out of range"):
        check_snapshot_index("f", "/r", o, c2, 10)
    assert check_snapshot_index("f", "/r", o[:0], c[:0], 0) == 0


def test_the_frozen_v1_archive_and_sample_still_read():
    from pathlib import Path

    from damo_pipe.data import sample_path
    for p in (Path(__file__).parents[1] / "data" / "archive-v1.h5", sample_path()):
        with ArchiveReader(p) as r:
            for i in range(len(r)):
                rec = r.load(i)
                assert len(rec.regions) == r.nr_regions(i)


@pytest.mark.parametrize("which,by", [(0, 1), (1, 1), (1, -1), (1, 1 << 40)])
def test_committed_counts_must_match_the_snapshot_table(tmp_path, capsys, archives, which, by):
    def change(f):
        c = f["records/000000/committed"]
        v = c[...]
        v[which] += by
        c[...] = v
    p = damaged(tmp_path, archives["lz4"], change)
    for args in commands(p, tmp_path):
        line = cli_error(capsys, *args)
        assert "dataset /records/000000/" in line and str(p) in line, line


def _zero_free_object(path):
    """Damage the first global heap collection (where h5py keeps variable-length
    strings) as the fuzzer did: a free-space object of size 0, on which libhdf5's
    parser loops forever. Returns the collection's byte offset."""
    data = bytearray(path.read_bytes())
    at = data.index(b"GCOL")
    size = int.from_bytes(data[at + 8:at + 16], "little")
    p = at + 16
    while p + 16 <= at + size:          # walk to the free-space object (index 0)
        idx = int.from_bytes(data[p:p + 2], "little")
        obj = int.from_bytes(data[p + 8:p + 16], "little")
        if idx == 0:
            break
        p += 16 + ((obj + 7) & ~7)
    assert p + 16 <= at + size, "no free-space object in the collection"
    data[p + 8:p + 16] = bytes(8)
    path.write_bytes(bytes(data))
    return at


def _grow_collection(path):
    """Damage the first collection's size as the fuzzer did (seed 8): 46 bytes more than
    its 4 KiB, so that libhdf5 reads the first 4 KiB, then only the tail (its metadata
    accumulator holds the rest), and walks on into what follows: here an object, then
    a free-space object of size 0. Returns the collection's offset."""
    data = bytearray(path.read_bytes())
    at = data.index(b"GCOL")
    size = int.from_bytes(data[at + 8:at + 16], "little")
    assert size == 4096
    data[at + 8:at + 16] = (size + 46).to_bytes(8, "little")
    tail = at + size        # what follows, now inside: an object, then a free one of size 0
    data[tail:tail + 24] = (1).to_bytes(2, "little") + bytes(6) + (8).to_bytes(8, "little") \
        + bytes(8)
    data[tail + 24:tail + 40] = bytes(16)
    path.write_bytes(bytes(data))
    return at


@pytest.mark.parametrize("damage", [_zero_free_object, _grow_collection])
def test_a_damaged_global_heap_is_an_error_not_a_hang(tmp_path, damage):
    """Run in a child with a time limit: without the guard libhdf5 never returns."""
    import subprocess
    import sys
    src = tmp_path / "a.h5"
    write_records([make_record(3, 10, seed=1)], src)
    at = damage(src)
    for args in (["info", str(src)], ["report", "wss", "--input", str(src)]):
        r = subprocess.run([sys.executable, "-m", "damo_pipe.analyze.cli"] + args,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(src) in lines[0], lines
        assert "global heap collection at byte %d" % at in lines[0]


def test_the_global_heap_check_accepts_what_hdf5_writes(tmp_path):
    from damo_pipe.archive._guarded_file import check_global_heap
    src = tmp_path / "a.h5"
    write_records([make_record(3, 10, seed=1)], src)
    data = src.read_bytes()
    at = data.index(b"GCOL")
    assert check_global_heap(memoryview(data)[at:], at) is None
