"""The live tracer's parser holds the rows of an open snapshot in place
(collect/tracing/streamer._OpenRows): the chunks, counters and errors must be those of
the plain TraceStreamParser for every input and every way of cutting it into pieces,
and a big snapshot must be held (not carried and copied at every piece)."""
import random
import weakref

import numpy as np
import pytest

from damo_pipe.archive import ArchiveWriter, read_archive_records
from damo_pipe.collect.tracing.streamer import TraceStreamer, _hold_open_rows
from damo_pipe.errors import RecordFormatError
from damo_pipe.formats.trace_text import TraceStreamParser
from damo_pipe.model import Record

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


def run(data, cuts, hold, engine="cython", lenient=True):
    p = TraceStreamParser(engine=engine, lenient=lenient)
    if hold:
        p = _hold_open_rows(p)
    chunks = []
    try:
        pos = 0
        for c in cuts:
            chunks += p.feed(data[pos:c])
            pos = c
        chunks += p.feed(data[pos:])
        chunks += p.finish()
    except RecordFormatError as e:
        return ("error", str(e), e.line)
    per_key = {}
    for key, c in chunks:
        cols = per_key.setdefault(key, [[] for _ in range(8)])
        for col, v in zip(cols, (c.snapshots.start_ns, c.snapshots.end_ns,
                                 c.snapshots.nr_regions, c.snapshots.total_bytes,
                                 c.regions.start, c.regions.end, c.regions.nr_accesses,
                                 c.regions.age)):
            col += v.tolist()
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
    "truncated": snapshots([(0, 3000), (0, 2500)])[:-20000],
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("step", [333, 4096, 65536, 1 << 20])
def test_same_chunks_as_the_plain_parser(name, step, engine):
    data = CASES[name]
    cuts = list(range(step, len(data), step))
    want = run(data, cuts, hold=False, engine=engine)
    assert run(data, cuts, hold=True, engine=engine) == want
    if name != "truncated":
        # independent check of the regions: every line once, in order per target
        regions = sum(len(v[4]) for v in want[0].values())
        assert regions == data.count(b"\n")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("lenient", [True, False])
def test_damaged_input_as_the_plain_parser(seed, lenient):
    data = damage(CASES["one target, big snapshots"] + CASES["two targets in turn"], seed)
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(data)), 40))
    assert run(data, cuts, True, lenient=lenient) == run(data, cuts, False, lenient=lenient)


def test_a_big_snapshot_is_held_not_carried():
    n = 20000
    data = snapshots([(0, n), (0, n)])
    p = _hold_open_rows(TraceStreamParser(lenient=True))
    half = data.index(b"\n", len(data) // 4) + 1
    pos = 0
    for end in range(4096, half, 4096):
        assert p.feed(data[pos:end]) == []
        pos = end
    holder = p._scan
    assert holder.held is not None and holder.rows_held > n // 3
    assert p._carry is None or len(p._carry["sid"]) == 0
    out = p.feed(data[pos:]) + p.finish()
    got = np.concatenate([c.regions.start for _, c in out])
    assert got.tolist() == [start_of(i // n, i % n) for i in range(2 * n)]


def test_streamer_archive_matches_the_lines(tmp_path):
    """TraceStreamer -> ArchiveWriter: the archive holds every line of the big
    snapshots (checked against the text itself)."""
    data = snapshots([(0, 30000), (0, 30000), (1, 10), (0, 5)])
    w = ArchiveWriter(tmp_path / "a.h5")
    s = TraceStreamer(w, {0: w.add_record(Record(target_id=0)),
                          1: w.add_record(Record(target_id=1))})
    for pos in range(0, len(data), 1 << 16):
        s.feed(data[pos:pos + (1 << 16)])
    s.finish()
    w.close()
    recs = read_archive_records(tmp_path / "a.h5")
    want = {0: [], 1: []}
    for ln in data.decode().splitlines():
        f = ln.split()
        a, b = f[7][:-1].split("-")
        want[int(f[5].split("=")[1])].append((int(a), int(b), int(f[8]), int(f[9])))
    for r, tid in zip(recs, (0, 1)):
        got = list(zip(r.regions.start.tolist(), r.regions.end.tolist(),
                       r.regions.nr_accesses.tolist(), r.regions.age.tolist()))
        assert got == want[tid]
    assert recs[0].snapshots.nr_regions.tolist() == [30000, 30000, 5]


@pytest.mark.parametrize("name", sorted(CASES))
def test_spare_columns_never_reused_while_a_chunk_holds_them(name, monkeypatch):
    """Every held snapshot's columns become spare (SPARE_MIN 1); the chunks are all kept
    until the end, so none may be parsed into again: same chunks as the plain parser."""
    from damo_pipe.collect.tracing import streamer
    monkeypatch.setattr(streamer._OpenRows, "SPARE_MIN", 1)
    data = CASES[name]
    cuts = list(range(1000, len(data), 1000))
    assert run(data, cuts, hold=True) == run(data, cuts, hold=False)


def test_spare_columns_reused_once_the_chunk_is_gone():
    n = 70000
    data = snapshots([(0, n), (0, n), (0, n)])
    p = _hold_open_rows(TraceStreamParser(lenient=True))
    holder = p._scan
    bases = []          # the arrays of each period of holding
    starts = []
    was_held = False
    for pos in range(0, len(data), 1 << 20):
        for _, c in p.feed(data[pos:pos + (1 << 20)]):
            starts.append(c.regions.start.copy())
            del c                                  # as the archive writer drops it
        if holder.held is not None and not was_held:
            bases.append(weakref.ref(holder.held["base"]["start"]))   # (no reference)
        was_held = holder.held is not None
    for _, c in p.finish():
        starts.append(c.regions.start.copy())
    assert len(bases) == 3 and bases[0]() is not None
    assert bases[0]() is bases[1]() is bases[2]()
    assert [s.tolist() for s in starts] == [[start_of(k, i) for i in range(n)]
                                            for k in range(3)]
