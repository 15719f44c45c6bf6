"""The live tracer's zero-copy read path (TraceStreamer.read_from: text read into a
reused buffer and parsed there in place, the partial last line kept at its front) must
give exactly what ``TraceStreamer.feed(bytes)`` gives, for every way the reads cut the
text (mid-line, mid-number, right after a newline), with [LOST N EVENTS] lines, damaged
lines (same error or damage message, same line number), damos_before_apply lines, the
other DAMON events (side tables), unknown DAMON events and snapshots streamed while open;
a line longer than the buffer still works (or is refused with a clear error). Nothing
may keep a reference into the buffer: every test scribbles over its free part after each
read and checks that nothing still holds a view of it."""
import os
import random

import numpy as np
import pytest

from damo_pipe.archive import ArchiveWriter, read_archive_records
from damo_pipe.archive.sidetables import read_side_table
from damo_pipe.collect.tracing.streamer import TraceStreamer
from damo_pipe.errors import RecordFormatError
from damo_pipe.formats.trace_text import SnapshotPiece, TraceStreamParser

PAGE = 4096
PREFIX = "  kdamond.0-77  [001] .....  %d.%06d: "


def event(ts_us, text):
    return (PREFIX % (ts_us // 1000000, ts_us % 1000000)) + text + "\n"


def aggregated(ts_us, tid, nr, i, k=0):
    s = (1 << 40) + (k << 24) + i * PAGE
    return event(ts_us, "damon_aggregated: target_id=%d nr_regions=%d %d-%d: %d %d"
                 % (tid, nr, s, s + PAGE, (i + k) % 7, 100 + i + k))


def before_apply(ts_us, tidx, nr, i, k=0):
    s = (1 << 41) + (k << 24) + i * PAGE
    return event(ts_us, "damos_before_apply: ctx_idx=0 scheme_idx=1 target_idx=%d "
                 "nr_regions=%d %d-%d: %d %d" % (tidx, nr, s, s + PAGE, i % 5, 7 + i))


def snapshot(ts_us, tid, nr, k, line=aggregated):
    return [line(ts_us + i, tid, nr, i, k) for i in range(nr)]


LOST = "CPU:1 [LOST 1234 EVENTS]\n"
ESZ = event(5_000_100, "damos_esz: ctx_idx=0 scheme_idx=1 esz=8192")
TUNE = event(5_000_200, "damon_monitor_intervals_tune: sample_us=5000")
UNKNOWN = event(5_000_300, "damon_brand_new_event: foo=1 bar=2")


def text(*parts):
    return "".join("".join(p) if isinstance(p, list) else p for p in parts).encode()


INPUTS = {
    # two targets in turn, a [LOST] line, side events, an unknown DAMON event
    "plain": text(snapshot(1_000_000, 0, 3, 0), LOST, snapshot(1_100_000, 1, 2, 1), ESZ,
                  snapshot(5_100_000, 0, 3, 2), TUNE, UNKNOWN, snapshot(5_200_000, 1, 1, 3)),
    # the last line without its newline
    "unterminated": text(snapshot(1_000_000, 0, 2, 0), snapshot(1_100_000, 0, 2, 1))[:-1],
    # a garbled line in the second snapshot, a garbled side line, then more snapshots
    "damaged": text(snapshot(1_000_000, 0, 2, 0),
                    snapshot(1_100_000, 0, 3, 1)[:2],
                    event(1_100_002, "damon_aggregated: target_id=0 nr_regions=3 12x-: 1 2"),
                    event(1_100_003, "damos_esz: ctx_idx=0 scheme_idx=1 esz=x"),
                    snapshot(1_200_000, 0, 2, 2), LOST, snapshot(1_300_000, 0, 2, 3)),
    # damos_before_apply lines between the snapshots (their own parser and records)
    "damos": text(snapshot(1_000_000, 0, 2, 0),
                  snapshot(1_050_000, 0, 2, 0, before_apply),
                  snapshot(1_100_000, 0, 3, 1), LOST,
                  snapshot(1_150_000, 0, 1, 1, before_apply), ESZ,
                  snapshot(5_200_000, 0, 2, 2)),
    # snapshots longer than open_regions (streamed while open), one cut short (dropped)
    "open": text(snapshot(1_000_000, 0, 5, 0), snapshot(1_100_000, 0, 6, 1)[:4],
                 snapshot(1_200_000, 0, 5, 2), snapshot(1_300_000, 1, 4, 3),
                 snapshot(1_400_000, 0, 3, 4)),
}

#: input -> (parser options, with a damos_before_apply parser)
SETUPS = {"plain": ({}, False), "unterminated": ({}, False), "damaged": ({}, False),
          "damos": ({}, True), "open": ({"open_regions": 2}, False)}


# ------------------------------------------------------------ a writer that keeps all

class Table:
    def __init__(self):
        self.cols = {}

    def extend(self, **cols):
        for k, v in cols.items():
            self.cols.setdefault(k, []).extend(np.asarray(v).tolist())


class KeepingWriter:
    """An ArchiveWriter stand-in keeping what an archive would end up holding: per
    record the complete snapshots (chunks, and streamed pieces once ended), the side
    table rows, the first starts."""

    def __init__(self):
        self.metas = []
        self.snapshots = {}     # record -> [(start_ns, end_ns, regions as tuples)]
        self.open = {}          # record -> region tuples of its open snapshot
        self.tables = {}
        self.first_starts = {}

    def add_record(self, meta):
        self.metas.append(meta.target_id)
        return len(self.metas) - 1

    def append(self, idx, chunk):
        assert idx not in self.open, "a chunk while a snapshot is open"
        r = chunk.regions
        cols = list(zip(r.start.tolist(), r.end.tolist(), r.nr_accesses.tolist(),
                        r.age.tolist()))
        for k in range(chunk.nr_snapshots):
            lo, hi = chunk.region_bounds(k)
            self.snapshots.setdefault(idx, []).append(
                (int(chunk.snapshots.start_ns[k]), int(chunk.snapshots.end_ns[k]),
                 cols[lo:hi]))

    def append_piece(self, idx, piece):
        assert isinstance(piece, SnapshotPiece)
        if piece.kind == "rows":
            r = piece.regions
            self.open.setdefault(idx, []).extend(zip(
                r.start.tolist(), r.end.tolist(), r.nr_accesses.tolist(), r.age.tolist()))
        elif piece.kind == "end":
            rows = self.open.pop(idx, [])
            assert len(rows) == piece.nr_regions
            self.snapshots.setdefault(idx, []).append((piece.start_ns, piece.end_ns, rows))
        else:
            self.open.pop(idx, None)

    def add_side_table(self, name, columns, attrs=None):
        return self.tables.setdefault(name, Table())

    def set_first_start(self, idx, value):
        self.first_starts[idx] = value

    def flush(self):
        pass


def make_streamer(name, engine, writer=None, lenient=True, **kw):
    opts, damos = SETUPS[name]
    return TraceStreamer(
        writer if writer is not None else KeepingWriter(), {},
        parser=TraceStreamParser(engine=engine, lenient=lenient, **opts),
        damos_parser=TraceStreamParser(engine=engine, lenient=lenient) if damos else None,
        **kw)


def outcome(s, error=None):
    """Everything the streamer produced: the writer's content and every counter."""
    w = s.writer
    p = s.parser
    got = {"error": error, "bytes_in": s.bytes_in, "regions": s.regions_out,
           "snapshots": s.snapshots_out, "dropped_regions": s.dropped_regions,
           "lost": s.lost_events, "side_rows": s.side_rows, "unknown": s.unknown_events(),
           "damage": [q.damage_message() for q in (p, s.damos_parser) if q is not None],
           "state": [(q.state.line_no, q.state.events, q.state.dropped_snapshots,
                      q.state.dropped_lines, q.state.damaged_lines, q.state.first_damage)
                     for q in (p, s.damos_parser) if q is not None]}
    if isinstance(w, KeepingWriter):
        got.update(records=w.metas, snapshots_by_record=w.snapshots, open=w.open,
                   tables={k: t.cols for k, t in w.tables.items()},
                   first_starts=w.first_starts)
    return got


def run_fed(s, data, cuts):
    """feed(bytes) in the pieces cut at ``cuts``, then finish (the reference)."""
    try:
        pos = 0
        for c in list(cuts) + [len(data)]:
            s.feed(data[pos:c])
            pos = c
        s.finish()
    except RecordFormatError as e:
        return outcome(s, (str(e), e.line))
    return outcome(s)


def check_no_view_kept(s):
    """Nothing holds a view of the read buffer, and its free part is garbage (what the
    next read would write there)."""
    rb = s._reader
    if rb is None:
        return
    rb.data[rb.filled:] = b"\xff" * (len(rb.data) - rb.filled)
    rb.data.append(0)        # BufferError if a view of it is still alive
    del rb.data[-1]


def run_read(s, data, cuts):
    """read_from a pipe written in the pieces cut at ``cuts``, then finish."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        pos = 0
        for c in list(cuts) + [len(data)]:
            if c > pos:
                assert os.write(w, data[pos:c]) == c - pos
            _, n, eof = s.read_from(r)
            assert (n, eof) == (c - pos, False)
            check_no_view_kept(s)
            pos = c
        os.close(w)
        w = None
        assert s.read_from(r)[1:] == (0, True)
        s.finish()
    except RecordFormatError as e:
        return outcome(s, (str(e), e.line))
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
    return outcome(s)


def lines_of(data):
    return data.decode().splitlines()


def independent_snapshots(data):
    """{target: [regions]} of the damon_aggregated lines of a well-formed text, read
    with str.split (no damo_pipe code)."""
    out = {}
    for ln in lines_of(data):
        f = ln.split()
        if len(f) > 5 and f[4] == "damon_aggregated:":
            a, b = f[7][:-1].split("-")
            out.setdefault(int(f[5].split("=")[1]), []).append(
                (int(a), int(b), int(f[8]), int(f[9])))
    return out


# ------------------------------------------------------------ every cut

@pytest.mark.parametrize("read_buffer", [1 << 13, 40])
@pytest.mark.parametrize("name", sorted(INPUTS))
def test_every_cut_reads_as_feed(name, read_buffer, engine):
    """Every single cut point (and the text in one read); an 8 KiB buffer holds all the
    text, a 40-byte one fills mid-line and grows for the lines longer than it."""
    data = INPUTS[name]
    want = run_fed(make_streamer(name, engine), data, [])
    assert want["error"] is None
    assert run_fed(make_streamer(name, engine), data, [len(data) // 3]) == want
    for c in range(0, len(data) + 1):
        got = run_read(make_streamer(name, engine, read_buffer=read_buffer), data, [c])
        assert got == want, "cut at %d: %r" % (c, data[max(0, c - 20):c])


def test_inputs_read_as_the_text_says():
    """The reference itself, against the text read with str.split: every region once,
    the [LOST] counts, the side and unknown lines."""
    data = INPUTS["plain"]
    want = run_fed(make_streamer("plain", "cython"), data, [])
    text_snaps = independent_snapshots(data)
    got = {want["records"][r]: [x for snap in snaps for x in snap[2]]
           for r, snaps in want["snapshots_by_record"].items()}
    assert got == text_snaps
    assert want["lost"] == 1234 and want["bytes_in"] == len(data)
    assert want["tables"]["trace_damos_esz"]["esz"] == [8192]
    assert want["tables"]["trace_intervals_tune"]["sample_us"] == [5000]
    line = lines_of(data).index(UNKNOWN.rstrip("\n")) + 1
    assert want["unknown"] == (1, (line, UNKNOWN.strip()))
    # open: the snapshot cut short is dropped, the others complete
    want = run_fed(make_streamer("open", "cython"), INPUTS["open"], [])
    assert [len(s[2]) for s in want["snapshots_by_record"][0]] == [5, 5, 3]
    assert [len(s[2]) for s in want["snapshots_by_record"][1]] == [4]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", sorted(INPUTS))
def test_many_cuts_read_as_feed_with_the_same_cuts(name, seed, engine):
    data = INPUTS[name]
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(data)), min(len(data) - 1, 3 + 10 * seed)))
    want = run_fed(make_streamer(name, engine), data, cuts)
    for rb in (1 << 13, 64, 150):
        assert run_read(make_streamer(name, engine, read_buffer=rb), data, cuts) == want


@pytest.mark.parametrize("name", ["damaged", "plain", "damos"])
def test_strict_reading_fails_at_the_same_line(name, engine):
    """Strict parsers: the same error (message and line) at every cut."""
    data = INPUTS[name]
    if name != "damaged":
        # a damaged line in the middle of the second snapshot
        lines = data.split(b"\n")
        k = next(i for i, ln in enumerate(lines) if b"nr_regions=2" in ln)
        lines[k] = lines[k].replace(b"nr_regions=2", b"nr_regions=2x")
        data = b"\n".join(lines)
    want = run_fed(make_streamer(name, engine, lenient=False), data, [])
    assert want["error"] is not None and want["error"][1] is not None
    for c in range(0, len(data) + 1, 3):
        got = run_read(make_streamer(name, engine, lenient=False, read_buffer=48), data, [c])
        assert got["error"] == want["error"], "cut at %d" % c


def test_damaged_lines_same_damage_message_and_line(engine):
    data = INPUTS["damaged"]
    want = run_fed(make_streamer("damaged", engine), data, [])
    garbled = next(i for i, ln in enumerate(lines_of(data)) if "12x-" in ln) + 1
    assert want["damage"][0].endswith("first damage at line %d" % garbled)
    for c in range(0, len(data) + 1, 5):
        assert run_read(make_streamer("damaged", engine, read_buffer=40), data, [c]) == want


# ------------------------------------------------------------ long lines, files, mixing

def test_line_longer_than_the_buffer(engine):
    """A 5000-byte line (not a DAMON event) with a 64-byte buffer: the buffer grows and
    the result is that of feed(); beyond max_line a clear error naming the line."""
    long_line = "x" * 5000 + "\n"
    data = text(snapshot(1_000_000, 0, 2, 0), long_line, snapshot(1_100_000, 0, 3, 1))
    want = run_fed(make_streamer("plain", engine), data, [])
    cuts = list(range(700, len(data), 700))
    assert run_read(make_streamer("plain", engine, read_buffer=64), data, cuts) == want
    got = run_read(make_streamer("plain", engine, read_buffer=64, max_line=1000), data, cuts)
    assert got["error"] is not None and "longer than 1000 bytes" in got["error"][0]
    assert got["error"][1] == 3      # the long line's number


def test_no_newline_at_all_is_an_error_not_a_hang(engine):
    s = make_streamer("plain", engine, read_buffer=16, max_line=256)
    got = run_read(s, b"y" * 200, [100])
    assert got["error"] is None and got["regions"] == 0     # fits: read at finish
    got = run_read(make_streamer("plain", engine, read_buffer=16, max_line=256),
                   b"y" * 300, [100, 200])
    assert "longer than 256 bytes" in got["error"][0] and got["error"][1] == 1


def trace_file(n_snapshots, nr):
    return text(*[snapshot(1_000_000 + 100_000 * k, k % 2, nr, k) for k in range(n_snapshots)])


def test_regular_file_read_to_eof(tmp_path, engine):
    """A file as the benchmark reads it (read_from until EOF), larger than the buffer."""
    data = trace_file(40, 700)
    path = tmp_path / "t.txt"
    path.write_bytes(data)
    want = run_fed(make_streamer("open", engine), data, [])
    s = make_streamer("open", engine, read_buffer=1 << 16)
    fd = os.open(path, os.O_RDONLY)
    try:
        eof = False
        reads = []
        while not eof:
            _, n, eof = s.read_from(fd, limit=1 << 17)
            check_no_view_kept(s)
            reads.append(n)
        s.finish()
    finally:
        os.close(fd)
    # the limit is kept (less one buffer); the last call reads nothing: EOF
    assert max(reads) <= (1 << 17) + (1 << 16) and reads[-1] == 0 and sum(reads) == len(data)
    assert outcome(s) == want
    assert sum(len(x[2]) for v in want["snapshots_by_record"].values() for x in v) == 40 * 700


@pytest.mark.parametrize("name", ["plain", "damos"])
def test_feed_and_read_from_mixed(name, engine):
    """Pieces alternately fed as bytes and read from a pipe: the text in order."""
    data = INPUTS[name]
    want = run_fed(make_streamer(name, engine), data, [])
    for step in (1, 7, 61, 200):
        s = make_streamer(name, engine, read_buffer=50)
        r, w = os.pipe()
        os.set_blocking(r, False)
        try:
            for i, pos in enumerate(range(0, len(data), step)):
                piece = data[pos:pos + step]
                if i % 2:
                    s.feed(piece)
                else:
                    os.write(w, piece)
                    s.read_from(r)
                    check_no_view_kept(s)
            s.finish()
        finally:
            os.close(r)
            os.close(w)
        assert outcome(s) == want, step


# ------------------------------------------------------------ into a real archive

#: small gzip chunks (the lz4 writer fails to read back a raw-stored chunk of a few
#: rows when a dropped streamed snapshot rewinds into it; not the reads' business)
ARCHIVES = {"lz4": {}, "gzip, 4-row chunks": {"chunk_rows": 4, "compression": "gzip"}}


@pytest.mark.parametrize("archive_kw", sorted(ARCHIVES))
@pytest.mark.parametrize("name", ["plain", "damos", "open"])
def test_archive_content_as_feed(tmp_path, name, archive_kw, engine):
    data = INPUTS[name]
    cuts = list(range(37, len(data), 211))

    def archive(path, run):
        w = ArchiveWriter(path, **ARCHIVES[archive_kw])
        s = make_streamer(name, engine, writer=w, read_buffer=100)
        run(s, data, cuts)
        w.close()
        recs = read_archive_records(path)
        out = [(r.target_id, r.snapshots.start_ns.tolist(), r.snapshots.end_ns.tolist(),
                r.regions.start.tolist(), r.regions.nr_accesses.tolist(),
                r.regions.age.tolist()) for r in recs]
        tables = {t: read_side_table(path, t)
                  for t in ("trace_damos_esz", "trace_damos_before_apply")}
        return out, {t: v if v is None else {c: a.tolist() for c, a in v.items()}
                     for t, v in tables.items()}
    want = archive(tmp_path / "fed.h5", run_fed)
    assert archive(tmp_path / "read.h5", run_read) == want
    assert sum(len(r[3]) for r in want[0]) == data.count(b"nr_regions=") - (
        4 if name == "open" else 0)
