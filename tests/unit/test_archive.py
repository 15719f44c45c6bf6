"""HDF5 archive v1: round trips, appends, SWMR readers, SIGKILL durability, bad files."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damo_pipe.archive import ArchiveReader, ArchiveWriter, layout, read_archive_records, write_records
from damo_pipe.errors import ArchiveError, RecordFormatError
from damo_pipe.sources import read_records
from damo_pipe.model import (AGE_UNKNOWN, Intervals, IntervalsGoal, Record, RecordBuilder,
                             RegionColumns)
from tests.support.archive_proc import chunk_for, snapshot_for, times_for

PROC = Path(__file__).resolve().parents[1] / "support" / "archive_proc.py"


def assert_same_record(a: Record, b: Record):
    assert a.meta_dict() == b.meta_dict()
    for name in a.snapshots.__slots__:
        np.testing.assert_array_equal(getattr(a.snapshots, name), getattr(b.snapshots, name),
                                      err_msg=name)
    for name in ("start", "end", "nr_accesses", "age", "sz_filter_passed"):
        np.testing.assert_array_equal(getattr(a.regions, name), getattr(b.regions, name), err_msg=name)
    for i in range(len(a.regions)):
        assert a.regions.probe_hits_of(i) == b.regions.probe_hits_of(i)


u64 = st.integers(0, 2 ** 64 - 1)


@st.composite
def records(draw):
    with_intervals = draw(st.booleans())
    goal = None
    if with_intervals and draw(st.booleans()):
        goal = IntervalsGoal(draw(st.integers(0, 10000)), draw(st.integers(0, 100)),
                             draw(st.integers(0, 10 ** 6)), draw(st.floats(0, 1e6)))
    meta = Record(
        target_id=draw(u64),
        kdamond_idx=draw(st.none() | st.integers(0, 16)),
        context_idx=draw(st.none() | st.integers(0, 16)),
        scheme_idx=draw(st.none() | st.integers(0, 16)),
        intervals=Intervals(draw(st.integers(1, 10 ** 6)), draw(st.integers(1, 10 ** 7)),
                            draw(st.integers(0, 10 ** 7) | st.floats(0, 1e7)), goal)
        if with_intervals else None,
        scheme_filters=draw(st.lists(st.fixed_dictionaries(
            {"filter_type": st.sampled_from(["anon", "memcg", "addr"]), "matching": st.booleans()}),
            max_size=2)),
        data_source=draw(st.sampled_from(["unknown", "damon_stat"])),
        first_start_ns=draw(st.none() | st.floats(-1e12, 1e15, allow_nan=False)),
    )
    b = RecordBuilder(meta)
    t = draw(st.integers(0, 10 ** 15))
    with_probes = draw(st.booleans())
    for _ in range(draw(st.integers(0, 6))):
        n = draw(st.integers(0, 8))
        starts = np.array(draw(st.lists(u64, min_size=n, max_size=n)), np.uint64)
        ends = np.array(draw(st.lists(u64, min_size=n, max_size=n)), np.uint64)
        po = ph = None
        if with_probes:
            counts = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
            po = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
            ph = np.array(draw(st.lists(st.integers(0, 99), min_size=int(po[-1]), max_size=int(po[-1]))),
                          np.int64)
        regions = RegionColumns(starts, ends,
                                np.array(draw(st.lists(st.integers(0, 2 ** 32), min_size=n, max_size=n)), np.int64),
                                np.array(draw(st.lists(st.integers(AGE_UNKNOWN, 2 ** 32), min_size=n, max_size=n)), np.int64),
                                np.array(draw(st.lists(u64, min_size=n, max_size=n)), np.uint64), po, ph)
        d = draw(st.integers(1, 10 ** 10))
        stats = draw(st.none() | st.fixed_dictionaries({"nr_tried": st.integers(0, 2 ** 40),
                                                        "sz_applied": st.integers(0, 2 ** 63)}))
        b.add_snapshot(t, t + d, regions, total_bytes=draw(st.none() | u64),
                       sample_interval_us=draw(st.none() | st.floats(1, 1e6)), damos_stats=stats)
        t += d
    rec = b.build()
    if rec.first_start_ns is not None and rec.nr_snapshots:
        rec.snapshots.start_ns[0] = int(rec.first_start_ns)  # the model's contract
    return rec


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=st.lists(records(), min_size=0, max_size=3), compression=st.sampled_from(layout.COMPRESSIONS))
def test_round_trip_random_records(tmp_path, recs, compression):
    path = tmp_path / "r.h5"
    write_records(recs, path, source_format="test", compression=compression)
    back = read_archive_records(path)
    assert len(back) == len(recs)
    for a, b in zip(recs, back):
        assert_same_record(a, b)


def test_write_is_atomic_and_leaves_no_temp_on_error(tmp_path):
    class Boom(Exception):
        pass

    def bad_records():
        yield Record(target_id=1)
        raise Boom()

    with pytest.raises(Boom):
        write_records(bad_records(), tmp_path / "x.h5")
    assert list(tmp_path.iterdir()) == []


def test_append_in_batches_then_reopen(tmp_path):
    path = tmp_path / "a.h5"
    meta = Record(target_id=7, intervals=Intervals(5000, 100000, 1000000))
    with ArchiveWriter(path) as w:
        i = w.add_record(meta)
        for k0 in range(0, 50, 10):
            w.append(i, chunk_for(meta, 0, k0, k0 + 10))
            w.flush()
    expect = chunk_for(meta, 0, 0, 50)
    with ArchiveReader(path) as r:
        assert r.nr_snapshots(0) == 50
        assert_same_record(expect, r.load(0))
        chunks = list(r.iter_chunks(0, regions_per_chunk=100))
        assert sum(c.nr_snapshots for c in chunks) == 50
        assert all(c.nr_regions <= 100 or c.nr_snapshots == 1 for c in chunks)
        # time selection reads only overlapping snapshots
        sub = r.load(0, time_range=(times_for(10)[0] + 1, times_for(19)[1]))
        assert list(sub.snapshots.start_ns) == [times_for(k)[0] for k in range(10, 20)]
        assert_same_record(expect.slice_snapshots(10, 20), sub)
        # address selection keeps every snapshot and only overlapping regions
        lo, hi = 0x10000000 + 4096 * 100, 0x10000000 + 4096 * 5000
        sel = r.load(0, address_range=(lo, hi))
        assert sel.nr_snapshots == 50
        keep = (expect.regions.end > lo) & (expect.regions.start < hi)
        np.testing.assert_array_equal(sel.regions.start, expect.regions.start[keep])


def test_time_index_written(tmp_path):
    path = tmp_path / "t.h5"
    meta = Record(target_id=1)
    n = layout.TIME_INDEX_STRIDE * 3 + 5
    b = RecordBuilder(meta)
    for k in range(n):
        b.add_snapshot(k * 10, k * 10 + 10, RegionColumns(np.array([1], np.uint64), np.array([2], np.uint64)))
    with ArchiveWriter(path) as w:
        w.append(w.add_record(meta), b.build())
    with h5py.File(path) as f:
        ti = f["records/000000"][layout.TIME_INDEX][:]
    assert list(ti) == [k * 10 + 10 for k in range(0, n, layout.TIME_INDEX_STRIDE)]


def test_swmr_reader_sees_appends_of_writer_process(tmp_path):
    """A reader follows a SWMR writer commit by commit (the writer waits for each ack)."""
    path = tmp_path / "s.h5"
    ack = Path(str(path) + ".ack")
    proc = subprocess.Popen([sys.executable, str(PROC), str(path), "swmr"], stdout=subprocess.PIPE,
                            text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("committed")
        reader = ArchiveReader(path)
        seen = []
        for expected in range(7, 71, 7):
            deadline = time.monotonic() + 60
            reader.refresh()
            while reader.nr_snapshots(0) < expected and time.monotonic() < deadline:
                time.sleep(0.01)
                reader.refresh()
            seen.append(reader.nr_snapshots(0))
            assert seen[-1] == expected, seen
            assert_same_record(chunk_for(reader.records[0], 0, 0, expected), reader.load(0))
            ack.write_text(str(expected))
        reader.close()
    finally:
        assert proc.wait(timeout=60) == 0


def kill_writer(path, mode, until, pause):
    """Run archive_proc's writer in ``mode``, SIGKILL it ``pause`` s after it printed a
    commit of ``until`` snapshots or more (a random point of its next batch); returns
    the snapshots it had committed."""
    proc = subprocess.Popen([sys.executable, str(PROC), str(path), mode],
                            stdout=subprocess.PIPE, text=True)
    committed = 0
    for line in proc.stdout:
        committed = int(line.split()[1])
        if committed >= until:
            break
    time.sleep(pause)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return committed


@pytest.mark.parametrize("trial", range(6))
def test_sigkill_mid_append_keeps_every_flushed_snapshot(tmp_path, trial):
    path = tmp_path / ("k%d.h5" % trial)
    rnd = random.Random(trial)
    committed = kill_writer(path, "kill", rnd.randint(2, 25) * 7, rnd.random() * 0.05)
    with ArchiveReader(path) as r:
        for i in range(2):
            n = r.nr_snapshots(i)
            assert n >= committed
            assert_same_record(chunk_for(r.records[i], i, 0, n), r.load(i))
            assert r.stored_guide(i) is None      # written only by close()


@pytest.mark.parametrize("trial", range(4))
def test_sigkill_mid_append_of_page_sized_snapshots(tmp_path, trial):
    """As above with record 0's snapshots of 70-90k regions (its region columns get the
    wide chunks of a closed archive in this SWMR file, record 1's stay small): every
    flushed snapshot is there, exactly."""
    path = tmp_path / ("b%d.h5" % trial)
    rnd = random.Random(trial)
    committed = kill_writer(path, "killbig", rnd.randint(1, 6) * 2, rnd.random() * 0.2)
    with h5py.File(path, "r", swmr=True) as f:
        assert f["records/000000/regions/start"].chunks == (layout.REGION_CHUNK_ROWS,)
        assert f["records/000001/regions/start"].chunks == (layout.SWMR_REGION_CHUNK_ROWS,)
    with ArchiveReader(path) as r:
        for i in range(2):
            n = r.nr_snapshots(i)
            assert n >= committed
            assert_same_record(chunk_for(r.records[i], i, 0, n, big=True), r.load(i))


def _regions(n, seed):
    from damo_pipe.model import RegionColumns
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 64, n).astype(np.uint64) * np.uint64(4096)
    ends = np.uint64(1 << 40) + np.cumsum(sizes)
    return RegionColumns(ends - sizes, ends, rng.integers(0, 21, n), rng.integers(0, 1000, n))


def _one_snapshot(meta, k, regions):
    b = RecordBuilder(meta)
    b.add_snapshot(k * 1000, k * 1000 + 1000, regions)
    return b.build()


def test_swmr_chunks_widen_for_page_sized_snapshots_only(tmp_path):
    """A SWMR archive keeps small region chunks (a live recording's flushes rewrite the
    last chunk) unless a record's first snapshot is page-granularity sized; records and
    their content stay as written either way, streamed snapshots included."""
    big = layout.SWMR_WIDE_MIN_REGIONS
    path = tmp_path / "w.h5"
    metas = [Record(target_id=i) for i in range(4)]
    expect = {}
    with ArchiveWriter(path, swmr=True) as w:
        for m in metas:
            w.add_record(m)
        first = {0: _regions(big, 0), 1: _regions(big - 1, 1), 2: _regions(10, 2)}
        for i, regs in first.items():
            w.append(i, _one_snapshot(metas[i], 0, regs))
            expect[i] = [regs]
        streamed = _regions(3 * 1000, 3)
        w.append_open(3, streamed.take(0, 1000))       # record 3: a snapshot streamed
        w.append_open(3, streamed.take(1000, 3000))
        w.end_open(3, 0, 1000)
        expect[3] = [streamed]
        w.flush()
        # after the first write SWMR mode has started: chunks stay as they are
        later = _regions(big + 5, 9)
        w.append(2, _one_snapshot(metas[2], 1, later))
        expect[2].append(later)
        w.flush()
        # as a live reader sees them (closing compacts the file, which chunks anew)
        with h5py.File(path, "r", swmr=True) as f:
            chunks = {i: f["records/%06d/regions/start" % i].chunks[0] for i in range(4)}
    assert chunks == {0: layout.REGION_CHUNK_ROWS, 1: layout.SWMR_REGION_CHUNK_ROWS,
                      2: layout.SWMR_REGION_CHUNK_ROWS, 3: layout.REGION_CHUNK_ROWS}
    with ArchiveReader(path) as r:
        for i, parts in expect.items():
            rec = r.load(i)
            assert rec.nr_snapshots == len(parts)
            for k, regs in enumerate(parts):
                got = rec.snapshot_regions(k)
                for col in ("start", "end", "nr_accesses", "age"):
                    np.testing.assert_array_equal(getattr(got, col), getattr(regs, col))


def test_not_hdf5(tmp_path):
    p = tmp_path / "x.h5"
    p.write_bytes(b"this is not hdf5")
    with pytest.raises(ArchiveError) as e:
        ArchiveReader(p)
    assert str(p) in str(e.value) and "byte offset 0" in str(e.value)
    assert isinstance(e.value, RecordFormatError)


def test_wrong_version_and_foreign_hdf5(tmp_path):
    p = tmp_path / "v.h5"
    write_records([Record(target_id=1)], p)
    with h5py.File(p, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(ArchiveError, match="format_version 99"):
        ArchiveReader(p)
    q = tmp_path / "foreign.h5"
    with h5py.File(q, "w") as f:
        f["x"] = [1, 2, 3]
    with pytest.raises(ArchiveError, match="not a damo-pipe archive"):
        ArchiveReader(q)


def test_truncated_file(tmp_path):
    p = tmp_path / "t.h5"
    meta = Record(target_id=1)
    write_records([chunk_for(meta, 0, 0, 200)], p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError) as e:
        read_archive_records(p)
    assert str(p) in str(e.value)


def test_read_records_dispatches_hdf5(tmp_path):
    from damo_pipe import formats
    p = tmp_path / "d.h5"
    meta = Record(target_id=3)
    rec = chunk_for(meta, 0, 0, 5)
    write_records([rec], p)
    [back] = read_records(p)
    assert_same_record(rec, back)
    # damo_pipe.formats knows damo's formats only (it imports nothing from the archive)
    with pytest.raises(RecordFormatError, match="damo_pipe.sources"):
        formats.read_records(p)


def test_cli_info_describes_archive(tmp_path, capsys):
    from damo_pipe.analyze.cli import main

    p = tmp_path / "i.h5"
    meta = Record(target_id=3, intervals=Intervals(5000, 100000, 1000000))
    write_records([chunk_for(meta, 0, 0, 12)], p, source_format="test")
    assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    nr = sum(len(snapshot_for(0, k)) for k in range(12))
    assert "records: 1, snapshots: 12, regions: %d" % nr in out
    assert "sample 5000 us, aggr 100000 us" in out
    assert main(["info", "--json", str(p)]) == 0
    import json
    desc = json.loads(capsys.readouterr().out)
    assert desc["records"][0]["duration_ns"] == times_for(11)[1] - times_for(0)[0]
    assert desc["compression_ratio"] > 0
    assert main(["info", str(tmp_path / "missing.h5")]) == 1
    err = capsys.readouterr().err
    assert "missing.h5" in err and err.count("\n") == 1


# ---------------------------------------------------------------- guide summary, columns
def assert_guide_matches_scan(sg, rec):
    """The stored summary against damo's guide computed by the pure-Python engine."""
    from damo_pipe.analyze.heatmap import compute_guides
    g, = compute_guides([rec], engine="python", with_heats=True)
    assert sg is not None
    assert (sg["lowest_addr"], sg["highest_addr"], sg["gaps"]) == (g.lowest_addr, g.highest_addr, g.gaps)
    lo, hi = rec.region_bounds(0)
    assert sg["first_max_age"] == max(0, int(rec.regions.age[lo:hi].max()) if hi > lo else 0)
    if sg["heats"] is not None:
        assert sg["heats"] == [h or 0 for h in g.heats]


def _record_with_gaps(nsnap, seed):
    rng = np.random.default_rng(seed)
    b = RecordBuilder(Record(target_id=3, intervals=Intervals(5000, 100000, 1000000)))
    for k in range(nsnap):
        starts, ends = [], []
        for base in (0x1000_0000, 0x5000_0000, 0x9000_0000):
            cuts = np.sort(rng.choice(np.arange(1, 4000), size=6, replace=False)).astype(np.uint64)
            edges = np.uint64(base) + cuts * np.uint64(4096)
            starts += list(edges[:-1])
            ends += list(edges[1:])
        n = len(starts)
        b.add_snapshot(k * 100_000_000, (k + 1) * 100_000_000, RegionColumns(
            np.array(starts, np.uint64), np.array(ends, np.uint64), rng.integers(0, 30, n),
            rng.integers(0, 50, n), rng.integers(0, 1 << 20, n).astype(np.uint64)))
    return b.build()


@pytest.mark.parametrize("seed", range(4))
def test_guide_summary_written_at_close(tmp_path, seed):
    rec = _record_with_gaps(40 + seed * 13, seed)
    path = tmp_path / "g.h5"
    from damo_pipe.analyze.heatmap import GuideBuilder
    with ArchiveWriter(path, summariser=GuideBuilder) as w:
        idx = w.add_record(rec.meta())
        for lo in range(0, rec.nr_snapshots, 7 + seed):   # several batches
            w.append(idx, rec.slice_snapshots(lo, lo + 7 + seed))
            if seed % 2:
                w.flush()
    with ArchiveReader(path) as r:
        sg = r.stored_guide(0)
        assert sg["heats"] is not None
        assert len(sg["gaps"]) == 2
        assert_guide_matches_scan(sg, rec)


def test_guide_summary_ignored_when_stale_or_absent(tmp_path):
    from damo_pipe.analyze.heatmap import GuideBuilder
    rec = _record_with_gaps(20, 9)
    path = tmp_path / "g.h5"
    write_records([rec], path, summariser=GuideBuilder)
    with ArchiveReader(path) as r:
        assert r.stored_guide(0) is not None
    with h5py.File(path, "r+") as f:
        f["records/000000/guide/covered"][0] = 19     # covers fewer snapshots than stored
    with ArchiveReader(path) as r:
        assert r.stored_guide(0) is None
    with h5py.File(path, "r+") as f:
        del f["records/000000/guide"]                  # an archive of an older writer
    with ArchiveReader(path) as r:
        assert r.stored_guide(0) is None
        assert_same_record(rec, r.load(0))


class _CountingSummariser:
    """A summariser that records what it is fed (no analyze/ code involved)."""

    def __init__(self):
        self.nr_snapshots = 0
        self.lowest = self.highest = None

    def feed(self, chunk):
        self.nr_snapshots += chunk.nr_snapshots
        lo, hi = int(chunk.regions.start.min()), int(chunk.regions.end.max())
        self.lowest = lo if self.lowest is None else min(self.lowest, lo)
        self.highest = hi if self.highest is None else max(self.highest, hi)

    def summary(self):
        return {"lowest_addr": self.lowest, "highest_addr": self.highest, "gaps": [[5, 9]],
                "heats": [1, -(1 << 100)], "first_max_age": 7, "nr_snapshots": self.nr_snapshots}


def test_summariser_is_injected(tmp_path):
    """The writer stores whatever its summariser summarises, and nothing without one."""
    rec = _record_with_gaps(12, 1)
    with_, without = tmp_path / "s.h5", tmp_path / "n.h5"
    write_records([rec, rec], with_, summariser=_CountingSummariser)
    write_records([rec], without)
    with ArchiveReader(with_) as r:
        for i in range(2):
            assert r.stored_guide(i) == {
                "lowest_addr": int(rec.regions.start.min()),
                "highest_addr": int(rec.regions.end.max()), "gaps": [[5, 9]],
                "heats": [1, -(1 << 100)], "first_max_age": 7}
    with ArchiveReader(without) as r:
        assert r.stored_guide(0) is None
        assert_same_record(rec, r.load(0))


@pytest.mark.parametrize("where", ["factory", "feed", "summary"])
def test_failing_summariser_warns_and_archive_stays_valid(tmp_path, where):
    class Broken(_CountingSummariser):
        def __init__(self):
            if where == "factory":
                raise RuntimeError("boom")
            super().__init__()

        def feed(self, chunk):
            if where == "feed":
                raise ValueError("boom")
            super().feed(chunk)

        def summary(self):
            if where == "summary":
                raise ValueError("boom")
            return super().summary()

    rec = _record_with_gaps(10, 2)
    path = tmp_path / "b.h5"
    with pytest.warns(RuntimeWarning, match="guide summary of record 0 not stored.*boom"):
        write_records([rec], path, summariser=Broken)
    with ArchiveReader(path) as r:
        assert r.stored_guide(0) is None
        assert_same_record(rec, r.load(0))


def test_update_record_meta_replaces_every_field(tmp_path):
    rec = _record_with_gaps(5, 3)
    path = tmp_path / "m.h5"
    late = Record(target_id=9, kdamond_idx=1, data_source="vaddr", ops="vaddr", pid=77,
                  intervals=Intervals(10, 20, 30, IntervalsGoal(4, 5, 6, 7)))
    with ArchiveWriter(path) as w:
        w.add_record(rec.meta())
        w.append(0, rec)
        w.update_record_meta(0, late)
        w.add_record(late)
        w.update_record_meta(1, Record(target_id=2))
    with ArchiveReader(path) as r:
        assert r.records[0].meta_dict() == late.meta_dict()
        assert r.records[1].meta_dict() == Record(target_id=2).meta_dict()
        assert r.first_start(0) is None
        np.testing.assert_array_equal(r.load(0).regions.start, rec.regions.start)


def test_update_record_meta_refused_once_swmr_appending(tmp_path):
    rec = _record_with_gaps(3, 3)
    with ArchiveWriter(tmp_path / "w.h5", swmr=True) as w:
        w.add_record(rec.meta())
        w.append(0, rec)
        w.flush()
        with pytest.raises(ArchiveError):
            w.update_record_meta(0, Record(target_id=1))


def test_iter_chunks_reads_only_requested_columns(tmp_path):
    rec = _record_with_gaps(30, 4)
    path = tmp_path / "c.h5"
    write_records([rec], path)
    with ArchiveReader(path) as r:
        chunks = list(r.iter_chunks(0, snapshots_per_chunk=8, columns=("nr_accesses",)))
    assert sum(c.nr_snapshots for c in chunks) == rec.nr_snapshots
    got_start = np.concatenate([c.regions.start for c in chunks])
    got_end = np.concatenate([c.regions.end for c in chunks])
    got_acc = np.concatenate([c.regions.nr_accesses for c in chunks])
    assert np.array_equal(got_start, rec.regions.start) and np.array_equal(got_end, rec.regions.end)
    assert np.array_equal(got_acc, rec.regions.nr_accesses)
    for c in chunks:                       # columns not asked for keep their defaults
        assert (c.regions.age == AGE_UNKNOWN).all() and not c.regions.sz_filter_passed.any()


def test_iter_chunks_reuse_buffers_ring(tmp_path):
    """With reuse_buffers=n, chunk k's arrays stay intact until chunk k + n is read."""
    rec = _record_with_gaps(40, 5)
    path = tmp_path / "c.h5"
    write_records([rec], path)
    n = 3
    with ArchiveReader(path) as r:
        want = [(c.regions.start.copy(), c.regions.age.copy())
                for c in r.iter_chunks(0, snapshots_per_chunk=4)]
        it = r.iter_chunks(0, snapshots_per_chunk=4, reuse_buffers=n,
                           columns=("start", "end", "age"))
        window = []
        for k, c in enumerate(it):
            window.append((k, c))
            window = window[-n:]
            for j, old in window:      # the last n chunks are all still valid
                assert np.array_equal(old.regions.start, want[j][0])
                assert np.array_equal(old.regions.age, want[j][1])
        assert k == len(want) - 1
