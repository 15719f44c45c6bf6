"""Snapshots too big to hold are streamed (TraceStreamParser ``open_regions``,
ArchiveWriter.append_open/end_open/drop_open, the live tracer's TraceStreamer): the
snapshots, counters and errors must be those of the plain parser for every input and
every way of cutting it into pieces, the rows held must stay bounded, and the archive
must hold exactly the complete snapshots (an open one is never committed, a dropped one
leaves nothing)."""
import random

import h5py
import numpy as np
import pytest

from damo_pipe.archive import ArchiveWriter, read_archive_records
from damo_pipe.collect.tracing import streamer
from damo_pipe.collect.tracing.streamer import TraceStreamer
from damo_pipe.errors import ArchiveError, RecordFormatError
from damo_pipe.formats.trace_text import SnapshotPiece, TraceStreamParser
from damo_pipe.model import Record, RegionColumns

PAGE = 4096


def start_of(k, i):
    """Region i of snapshot k (every snapshot has its own addresses and values)."""
    return (1 << 40) + (k << 32) + i * PAGE


def line(ts_us, tid, nr, i, k=0, age=True):
    s = start_of(k, i)
    tail = "%d-%d: %d %d" % (s, s + PAGE, (i + k) % 7, (i + 3 * k) % 300) if age else \
        "%d-%d: %d" % (s, s + PAGE, (i + k) % 7)
    return "  kdamond.0-77  [001] .....  %d.%06d: damon_aggregated: target_id=%d " \
           "nr_regions=%d %s\n" % (ts_us // 1000000, ts_us % 1000000, tid, nr, tail)


def snapshots(spec, interleave=False):
    """spec: [(target, nr_regions)] per snapshot, in order; interleave: the lines of
    consecutive snapshot pairs alternate (two targets written together)."""
    out = []
    t = 100_000_000
    for k, (tid, nr) in enumerate(spec):
        out.append([line(t + i // 16, tid, nr, i, k) for i in range(nr)])
        t += 100_000
    if not interleave:
        return "".join("".join(s) for s in out).encode()
    text = []
    for a, b in zip(out[::2], out[1::2]):
        k = max(len(a), len(b))
        for i in range(k):
            text += a[i:i + 1] + b[i:i + 1]
    if len(out) % 2:
        text += out[-1]
    return "".join(text).encode()


def snapshot_rows(per_key, key, start_ns, end_ns, regions):
    """Add one snapshot (its columns as the plain parser's chunks give them)."""
    cols = per_key.setdefault(key, [[] for _ in range(8)])
    sizes = [int(e) - int(s) for s, e in zip(regions[0], regions[1])]
    for col, v in zip(cols, ([start_ns], [end_ns], [len(regions[0])],
                             [sum(sizes) & ((1 << 64) - 1)]) + tuple(regions)):
        col += list(v)


def run(data, cuts, open_regions, engine="cython", lenient=True, watch=None):
    """Parse ``data`` fed in pieces cut at ``cuts``; the snapshots per record key (from
    chunks and SnapshotPieces alike), first starts and damage counters, or the error."""
    p = TraceStreamParser(engine=engine, lenient=lenient, open_regions=open_regions)
    per_key = {}
    open_rows = {}
    ends = []

    def take(items):
        for key, c in items:
            if isinstance(c, SnapshotPiece):
                assert open_regions, "a SnapshotPiece from a parser without open_regions"
                rows = open_rows.setdefault(key, [[], [], [], []])
                if c.kind == "rows":
                    for col, v in zip(rows, (c.regions.start, c.regions.end,
                                             c.regions.nr_accesses, c.regions.age)):
                        col += v.tolist()
                elif c.kind == "end":
                    assert len(rows[0]) == c.nr_regions
                    snapshot_rows(per_key, key, c.start_ns, c.end_ns, rows)
                    del open_rows[key]
                    ends.append(key)
                else:
                    assert c.kind == "drop"
                    del open_rows[key]
                continue
            assert key not in open_rows, "a chunk while a snapshot of its record is open"
            for k in range(c.nr_snapshots):
                lo, hi = c.region_bounds(k)
                snapshot_rows(per_key, key, int(c.snapshots.start_ns[k]),
                              int(c.snapshots.end_ns[k]),
                              [c.regions.start[lo:hi].tolist(), c.regions.end[lo:hi].tolist(),
                               c.regions.nr_accesses[lo:hi].tolist(),
                               c.regions.age[lo:hi].tolist()])
    try:
        pos = 0
        for c in cuts:
            take(p.feed(data[pos:c]))
            if watch is not None:
                watch(p, c - pos)
            pos = c
        take(p.feed(data[pos:]))
        take(p.finish())
    except RecordFormatError as e:
        return ("error", str(e), e.line)
    assert not open_rows
    st = p.state
    return (per_key, p.first_starts, st.dropped_snapshots, st.dropped_lines,
            st.damaged_lines, st.first_damage)


def damage(data, seed):
    """Drop one line, duplicate one, garble one."""
    rnd = random.Random(seed)
    lines = data.split(b"\n")[:-1]
    i = rnd.randrange(len(lines))
    del lines[i]
    j = rnd.randrange(len(lines))
    lines.insert(j, lines[j])
    k = rnd.randrange(len(lines))
    lines[k] = lines[k][:rnd.randrange(20, len(lines[k]))]
    return b"\n".join(lines) + b"\n"


CASES = {
    "one target, big snapshots": snapshots([(0, 3000), (0, 2500), (0, 1), (0, 4000)]),
    "two targets in turn": snapshots([(0, 2000), (1, 50), (0, 2000), (1, 3), (0, 7)]),
    "two targets interleaved": snapshots([(0, 1500), (1, 1500), (0, 900), (1, 1000)],
                                         interleave=True),
    "small snapshots": snapshots([(i % 3, 1 + i % 5) for i in range(200)]),
    "fake last snapshot": snapshots([(0, 3000), (0, 2000)])
    + b"  kdamond.0-77  [001] .....  100.900000: damon_aggregated: target_id=0 "
      b"nr_regions=1 0-0: -1 -1\n",
    "truncated": snapshots([(0, 3000), (0, 2500)])[:-20000],
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("step", [333, 4096, 65536, 1 << 20])
@pytest.mark.parametrize("open_regions", [1, 700])
def test_same_snapshots_as_the_plain_parser(name, step, open_regions, engine):
    data = CASES[name]
    cuts = list(range(step, len(data), step))
    want = run(data, cuts, 0, engine=engine)
    assert run(data, cuts, open_regions, engine=engine) == want
    if name not in ("truncated", "fake last snapshot"):
        # independent check of the regions: every line once, in order per target
        regions = sum(len(v[4]) for v in want[0].values())
        assert regions == data.count(b"\n")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("lenient", [True, False])
def test_damaged_input_as_the_plain_parser(seed, lenient, engine):
    data = damage(CASES["one target, big snapshots"] + CASES["two targets in turn"], seed)
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(data), 7), 40))
    want = run(data, cuts, 0, engine=engine, lenient=lenient)
    assert run(data, cuts, 300, engine=engine, lenient=lenient) == want


def test_streamed_rows_held_are_bounded():
    """A 60k-region snapshot fed in 4 KiB pieces: the parser never holds more than
    open_regions rows plus one piece's, and hands the rows out before the snapshot ends."""
    n, limit = 60000, 5000
    data = snapshots([(0, n), (0, n)])
    most = []
    streamed_before_end = []

    def watch(p, size):
        most.append(p.held_rows)
        assert p.held_rows <= limit + size // 40     # a line is > 40 bytes
    p = TraceStreamParser(lenient=True, open_regions=limit)
    first = []
    for pos in range(0, len(data), 4096):
        for key, c in p.feed(data[pos:pos + 4096]):
            first.append(c)
        watch(p, 4096)
        if pos < len(data) // 4:
            streamed_before_end.append(sum(c.nr_rows for c in first
                                           if isinstance(c, SnapshotPiece)))
    first += [c for _, c in p.finish()]
    assert max(most) > 0 and streamed_before_end[-1] > n // 8
    kinds = [c.kind for c in first]
    assert kinds.count("end") == 2 and "drop" not in kinds
    got = np.concatenate([c.regions.start for c in first if c.kind == "rows"])
    assert got.tolist() == [start_of(i // n, i % n) for i in range(2 * n)]


def test_open_rows_kept_as_pieces_until_the_snapshot_completes():
    """Without open_regions the rows of an open snapshot are kept as the pieces they
    came in (joined once at its end), not joined again at every piece."""
    n = 20000
    data = snapshots([(0, n), (0, 3)])
    p = TraceStreamParser(lenient=True)
    half = data.index(b"\n", len(data) // 2) + 1
    for pos in range(0, half, 4096):
        assert p.feed(data[pos:min(pos + 4096, half)]) == []
    assert len(p._carry) > 10 and p.held_rows == data[:half].count(b"\n")
    out = p.feed(data[half:]) + p.finish()
    got = np.concatenate([c.regions.start for _, c in out])
    assert got.tolist() == [start_of(i // n, i % n) for i in range(n)] + \
        [start_of(1, i) for i in range(3)]


# ------------------------------------------------------------ into the archive

def text_regions(data):
    """{target: [(start, end, nr_accesses, age)]} of every line (the text itself)."""
    want = {}
    for ln in data.decode().splitlines():
        f = ln.split()
        a, b = f[7][:-1].split("-")
        want.setdefault(int(f[5].split("=")[1]), []).append(
            (int(a), int(b), int(f[8]), int(f[9])))
    return want


def archive_regions(rec):
    return list(zip(rec.regions.start.tolist(), rec.regions.end.tolist(),
                    rec.regions.nr_accesses.tolist(), rec.regions.age.tolist()))


WRITERS = {"lz4 (direct chunks)": {}, "gzip": {"compression": "gzip"},
           "swmr": {"swmr": True}}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_streamer_archive_matches_the_lines(tmp_path, writer, monkeypatch):
    """TraceStreamer -> ArchiveWriter with snapshots streamed in pieces: the archive
    holds every line of the big snapshots (checked against the text itself), in small
    region chunks so that pieces cross chunk boundaries."""
    monkeypatch.setattr(streamer, "OPEN_REGIONS", 3000)
    data = snapshots([(0, 30000), (0, 30000), (1, 10), (0, 5)])
    w = ArchiveWriter(tmp_path / "a.h5", chunk_rows=4096, **WRITERS[writer])
    s = TraceStreamer(w, {0: w.add_record(Record(target_id=0)),
                          1: w.add_record(Record(target_id=1))})
    for pos in range(0, len(data), 1 << 16):
        s.feed(data[pos:pos + (1 << 16)])
        s.maybe_flush(force=True)
    s.finish()
    w.close()
    assert s.regions_out == 60015
    recs = read_archive_records(tmp_path / "a.h5")
    want = text_regions(data)
    for r, tid in zip(recs, (0, 1)):
        assert archive_regions(r) == want[tid]
    assert recs[0].snapshots.nr_regions.tolist() == [30000, 30000, 5]
    assert recs[0].snapshots.total_bytes.tolist() == [30000 * PAGE, 30000 * PAGE, 5 * PAGE]
    ends = recs[0].snapshots.end_ns
    assert recs[0].snapshots.start_ns[1:].tolist() == ends[:-1].tolist()


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_dropped_streamed_snapshot_leaves_nothing(tmp_path, writer, monkeypatch):
    """A streamed snapshot cut short (a lost line: lenient reading drops it) is taken
    back from the archive: the archive equals the plain parser's snapshots."""
    monkeypatch.setattr(streamer, "OPEN_REGIONS", 2000)
    good = snapshots([(0, 9000), (0, 9000), (0, 9000)])
    lines = good.split(b"\n")
    del lines[9000 + 7000]                       # the second snapshot loses a line
    data = b"\n".join(lines)
    w = ArchiveWriter(tmp_path / "a.h5", chunk_rows=4096, **WRITERS[writer])
    s = TraceStreamer(w, {0: w.add_record(Record(target_id=0))})
    for pos in range(0, len(data), 20000):
        s.feed(data[pos:pos + 20000])
    s.finish()
    w.close()
    rec = read_archive_records(tmp_path / "a.h5")[0]
    want = run(data, [], 0)[0][0]
    assert rec.snapshots.nr_regions.tolist() == want[2] == [9000, 9000]
    assert rec.regions.start.tolist() == want[4]
    assert rec.regions.age.tolist() == want[7]
    assert s.regions_out == 18000 and s.parser.state.dropped_snapshots == 1


def regions(k, n):
    s = np.array([start_of(k, i) for i in range(n)], np.uint64)
    return RegionColumns(s, s + PAGE, np.full(n, k, np.int64), np.arange(n, dtype=np.int64))


def chunk_of(k, n, end_ns):
    from damo_pipe.formats._assemble import build_chunk
    r = regions(k, n)
    return build_chunk(Record(target_id=0), np.array([end_ns - 10], np.int64),
                       np.array([end_ns], np.int64), [n], r.start, r.end, r.nr_accesses,
                       r.age)


def test_open_snapshot_is_not_committed(tmp_path):
    """Flushed in the middle of an open snapshot, then the writer dies (abort): the
    archive holds the complete snapshots only."""
    path = tmp_path / "a.h5"
    w = ArchiveWriter(path, chunk_rows=1000)
    idx = w.add_record(Record(target_id=0))
    w.append(idx, chunk_of(0, 1500, 100))
    w.append_open(idx, regions(1, 2500))
    w.flush()
    w.append_open(idx, regions(2, 700))
    w.flush()
    w.abort()
    with h5py.File(path, "r") as f:
        assert f["records/%s/regions/start" % next(iter(f["records"]))].shape[0] >= 3200
    rec = read_archive_records(path)[0]
    assert rec.snapshots.nr_regions.tolist() == [1500]
    assert rec.regions.start.tolist() == regions(0, 1500).start.tolist()


@pytest.mark.parametrize("compression", ["lz4", "gzip"])
@pytest.mark.parametrize("cut", [0, 1, 999, 1000, 1001, 2500])
def test_drop_open_rewinds_to_any_row(tmp_path, compression, cut):
    """drop_open takes the region columns back wherever the snapshot started (inside a
    chunk, on a chunk boundary, in a chunk already compressed and stored)."""
    path = tmp_path / "a.h5"
    w = ArchiveWriter(path, chunk_rows=1000, compression=compression)
    idx = w.add_record(Record(target_id=0))
    if cut:
        w.append(idx, chunk_of(0, cut, 100))
    w.append_open(idx, regions(1, 1700))
    w.flush()
    w.append_open(idx, regions(1, 900))
    w.drop_open(idx)
    w.append_open(idx, regions(2, 1234))
    w.end_open(idx, 150, 200)
    w.append(idx, chunk_of(3, 10, 300))
    w.close()
    rec = read_archive_records(path)[0]
    want = (regions(0, cut).start.tolist() if cut else []) + \
        regions(2, 1234).start.tolist() + regions(3, 10).start.tolist()
    assert rec.regions.start.tolist() == want
    assert rec.regions.nr_accesses.tolist() == [0] * cut + [2] * 1234 + [3] * 10
    assert rec.snapshots.nr_regions.tolist() == ([cut] if cut else []) + [1234, 10]
    assert rec.snapshots.total_bytes.tolist() == ([cut * PAGE] if cut else []) + \
        [1234 * PAGE, 10 * PAGE]


def test_chunk_while_open_is_refused(tmp_path):
    w = ArchiveWriter(tmp_path / "a.h5")
    idx = w.add_record(Record(target_id=0))
    w.append_open(idx, regions(0, 10))
    with pytest.raises(ArchiveError, match="open"):
        w.append(idx, chunk_of(1, 5, 100))
    with pytest.warns(RuntimeWarning, match="open snapshot"):
        w.close()
    assert read_archive_records(tmp_path / "a.h5")[0].nr_snapshots == 0


def test_streamed_piece_buffers_reused_only_when_let_go():
    """The parser fills a streamed piece's column buffers again only once its consumer
    holds nothing of them: pieces kept (or views of them) keep their values; pieces let
    go give their buffers back (bounded fresh memory)."""
    data = snapshots([(0, 40), (0, 40), (0, 40)])
    lines = data.splitlines(keepends=True)

    def pieces(keep):
        p = TraceStreamParser(open_regions=4)
        kept, bases, views = [], set(), []
        for ln in lines:
            for _, c in p.feed(ln):
                if isinstance(c, SnapshotPiece) and c.kind == "rows":
                    bases.add(id(c.regions.start.base))
                    if keep == "pieces":
                        kept.append((c, c.regions.start.copy(), c.regions.age.copy()))
                    elif keep == "views":
                        views.append((c.regions.start[1:], c.regions.start[1:].copy()))
        p.finish()
        return kept, views, bases

    kept, _, bases = pieces("pieces")
    assert kept and len(bases) == len(kept)          # every kept piece has its own buffers
    for c, start, age in kept:
        assert np.array_equal(c.regions.start, start) and np.array_equal(c.regions.age, age)
    _, views, _ = pieces("views")
    for v, want in views:
        assert np.array_equal(v, want)
    _, _, bases = pieces("nothing")
    assert len(bases) <= 2                           # let go: the same buffers again
