"""The trace tokenizer's fast path (lines that repeat the previous damon_aggregated
line's prefix up to the address range; only the tail is parsed there) against the
pure-Python twin and an independent split()-based reference: every tail that is not
plain ``<start>-<end>: <acc> [<age>|None]`` must be read (or refused, with the same
message and line) exactly as the general path reads it."""
import numpy as np
import pytest

from damo_pipe.errors import RecordFormatError
from damo_pipe.formats import _trace_kernels as K
from damo_pipe.formats._trace_state import TraceState
from damo_pipe.formats.trace_text import ROW_FIELDS, TraceStreamParser, py_trace_scan

PREFIX = "       kdamond.0-1112    [000] .....   265.345206: damon_aggregated: target_id=3 nr_regions=%d "
BASE = 94209503780864


def snapshot(tails):
    """One snapshot whose lines are PREFIX + each tail."""
    return "".join((PREFIX % len(tails)) + t + "\n" for t in tails).encode()


def plain(i, age=True):
    s = BASE + 4096 * i
    return "%d-%d: %d %d" % (s, s + 4096, i % 21, 100 + i) if age else \
        "%d-%d: %d" % (s, s + 4096, i % 21)


def reference_rows(data):
    """Independent reader of well-formed lines: (start, end, acc, age) per line."""
    out = []
    for ln in data.decode().splitlines():
        f = ln.split()
        rng = f[7][:-1]
        s, e = rng.split("-")
        age = -1 if len(f) < 10 or f[9] == "None" else int(f[9])
        out.append((int(s), int(e), int(f[8]), age))
    return out


def scan(engine, data, lenient=False, final=True):
    st = TraceState(lenient)
    fn = K.trace_scan if engine == "cython" else py_trace_scan
    try:
        _, rows = fn(data, st, final)
    except RecordFormatError as e:
        return ("error", str(e), e.line)
    if final:
        try:
            st.end_of_input()
        except RecordFormatError as e:
            return ("error", str(e), e.line)
    keep = ~np.isin(rows["sid"], np.asarray(st.dropped_sids, np.int64))
    return ({f: rows[f][keep].tolist() for f in ROW_FIELDS},
            (st.events, st.dropped_snapshots, st.dropped_lines, st.damaged_lines,
             st.first_damage))


GOOD_TAILS = [
    lambda i: plain(i),
    lambda i: "%d-%d:\t%d \t %d  " % (BASE + 4096 * i, BASE + 4096 * i + 4096, i, i),
    lambda i: "%d-%d: -%d -%d\r" % (BASE + 4096 * i, BASE + 4096 * i + 4096, i, i),
    lambda i: "%d-%d: %d None" % (BASE + 4096 * i, BASE + 4096 * i + 4096, i),
    lambda i: "%d-18446744073709551615: 9223372036854775807 -9223372036854775808" % (
        BASE + 4096 * i),
    lambda i: "0-0000000000000000000001: 0 0",
    # digit runs of 8, 9, 16, 17 and 19 digits (eight at a time, then one by one)
    lambda i: "%d-%d: 1 2" % (12345670 + i, 123456780 + i),
    lambda i: "%d-%d: 1 2" % (1234567890123450 + i, 12345678901234560 + i),
    lambda i: "%d-%d: 1 2" % (9999999999999999990 + i, 10000000000000000000 + i),
]


@pytest.mark.parametrize("k", range(len(GOOD_TAILS)))
def test_good_tails_match_reference(engine, k):
    tails = [plain(i) for i in range(6)]
    tails[3] = GOOD_TAILS[k](3)
    tails[5] = GOOD_TAILS[k](5)
    data = snapshot(tails)
    got = scan(engine, data)
    assert got[0] != "error", got
    ref = reference_rows(data)
    rows = got[0]
    assert list(zip(rows["start"], rows["end"], rows["nr_accesses"], rows["age"])) == ref
    assert rows["end_ns"] == [int(265.345206 * 1e9)] * 6
    assert rows["nr_regions"] == [6] * 6


BAD_TAILS = [
    "%d-%d: 3" % (BASE, BASE + 4096),                   # no age inside a snapshot with ages
    "%d-%d: 3 5 6" % (BASE, BASE + 4096),               # 6 fields
    "%d-%d; 3 5" % (BASE, BASE + 4096),                 # range not ending with ':'
    "%d-%d:3 5" % (BASE, BASE + 4096),                  # no space after ':'
    "%d%d: 3 5" % (BASE, BASE + 4096),                  # no '-'
    "-%d: 3 5" % BASE,                                  # no start
    "%d-: 3 5" % BASE,                                  # no end
    "184467440737095516160-1: 3 5",                     # start beyond 2**64 - 1
    "1-184467440737095516160: 3 5",                     # end beyond 2**64 - 1
    "1-2: 9223372036854775808 5",                       # nr_accesses beyond int64
    "1-2: 3 Nonex",
    "1-2: 3 No",
    "1-2: 3 Nzzz",
    "1-2: 3 NONE",
    "1-2: 3 none",
    "1-2: 3 5x",
    "1-2: 3x 5",
    "1-2: - 5",
    "1-2: 3 -",
    "1-2: +3 5",
    "1-2:",
    "1-2: ",
    "x1-2: 3 5",
    " 1-2: 3 5",                                        # one more space before the range
    "1234567/-12345678: 3 5",                           # bytes next to '0'..'9' in a run
    "1234567:-12345678: 3 5",
    "12345678-1234567/: 3 5",
    "12345678-123456789012345;: 3 5",
    "123456\x00-12345678: 3 5",
    "12345678-12345678\xb0: 3 5",
]


@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize("k", range(len(BAD_TAILS)))
def test_odd_tails_as_the_twin(k, lenient):
    """The compiled engine (fast path taken on the lines around) reads every odd tail,
    inside a snapshot and as its last line, as the Python twin does: same rows and
    counters, or the same error on the same line."""
    for pos in (2, 7):
        tails = [plain(i) for i in range(8)]
        tails[pos] = BAD_TAILS[k]
        data = snapshot(tails) + snapshot([plain(i) for i in range(100, 104)])
        assert scan("cython", data, lenient) == scan("python", data, lenient)


def test_prefix_changes_between_snapshots_and_pieces():
    """Snapshots whose prefixes differ (timestamp, target, nr_regions), streamed in
    pieces cut anywhere: the compiled engine's records equal the twin's."""
    data = b"".join(
        "".join(("       kdamond.0-1112    [00%d] .....   %d.%06d: damon_aggregated: "
                 "target_id=%d nr_regions=%d %s\n") % (t, 265 + s, 345206 + t, t, n,
                                                          plain(i, age=(s % 3 != 1)))
                for i in range(n)).encode()
        for s in range(6) for t in (0, 1) for n in [(s * 7 + t) % 5 + 1])
    out = {}
    for engine in ("cython", "python"):
        for step in (1, 37, 4096, len(data)):
            p = TraceStreamParser(engine=engine)
            chunks = []
            for lo in range(0, len(data), step):
                chunks += p.feed(data[lo:lo + step])
            chunks += p.finish()
            per_key = {}
            for key, c in chunks:     # chunks cut differently per step: join them
                cols = per_key.setdefault(key, [[] for _ in range(6)])
                for col, v in zip(cols, (c.snapshots.end_ns, c.snapshots.nr_regions,
                                         c.regions.start, c.regions.end,
                                         c.regions.nr_accesses, c.regions.age)):
                    col += v.tolist()
            out[(engine, step)] = per_key
    first = out[("python", len(data))]
    assert sorted(first) == [0, 1]
    assert sum(len(c[2]) for c in first.values()) == data.count(b"\n")
    for v in out.values():
        assert v == first


TS_CASES = [
    ["265.345206", "265.345206", "265.345207", "265.345207", "265.345300"],  # kernel-like
    ["999.999998", "999.999999", "1000.000000", "1000.000001", "1000.000001"],  # wider
    ["265.345206", "265.3452061234567890", "265.345207", "265.345207", "265.4"],  # strtod
    ["265.345206", "26a.345206", "265.345207", "265.345207", "265.345208"],   # bad
    ["265.345206", "265.345206", "9300000000.5", "265.3", "265.4"],           # range/order
    ["265.345206", ".5", "7.", "265.345207", "265.345208"],
    ["265.345206", "265.345206:", "265.345207", "265.345207", "265.345208"],  # '::'
]


def snapshot_ts(stamps, target=3, nr=None):
    nr = len(stamps) if nr is None else nr
    return "".join(
        ("       kdamond.0-1112    [000] .....   %s: damon_aggregated: target_id=%d "
         "nr_regions=%d %s\n") % (ts, target, nr, plain(i)) for i, ts in enumerate(stamps)
    ).encode()


@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize("k", range(len(TS_CASES)))
def test_timestamps_within_a_snapshot_as_the_twin(k, lenient):
    """Lines of a snapshot with their own timestamps (as the kernel writes them): the
    fast path parses a changed timestamp itself, or leaves the line to the general
    path; rows (every line's end time) and errors as the twin's."""
    data = snapshot_ts(TS_CASES[k]) + snapshot_ts(["300.1", "300.2"], target=4)
    assert scan("cython", data, lenient) == scan("python", data, lenient)


def test_timestamps_rows_match_reference():
    stamps = ["265.345206", "265.345207", "265.345207", "1265.000001", "1265.000001"]
    got = scan("cython", snapshot_ts(stamps))
    assert got[0]["end_ns"] == [int(float(t) * 1e9) for t in stamps]
    assert got[0]["end_ns"][0] == 265345206000


@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_lines_of_mixed_prefixes_as_the_twin(seed, lenient):
    """Lines whose prefixes (task, CPU, timestamp, event, target, nr_regions) change
    from line to line in a random order: the compiled engine's shortcuts (a line whose
    bytes up to the address range repeat the last line's, or the last full parse's
    prefix) never carry one line's target, nr_regions or time onto another; rows,
    counters and errors as the twin's."""
    rng = np.random.default_rng(seed)
    tasks = ["       kdamond.0-1112    [000] .....   ", "       kdamond.1-1113    [001] d..1.   "]
    stamps = ["265.345206", "265.345207", "1265.000001", "265.3452"]
    lines = []
    for i in range(400):
        task = tasks[rng.integers(len(tasks))]
        ts = stamps[rng.integers(len(stamps))]
        r = rng.random()
        if r < 0.08:
            ev = "damos_before_apply: ctx_idx=0 scheme_idx=%d target_idx=%d nr_regions=%d" % (
                rng.integers(2), rng.integers(2), rng.integers(1, 4))
        elif r < 0.12:
            ev = "damos_esz: ctx_idx=0 scheme_idx=0 esz=%d" % rng.integers(1 << 20)
        else:
            ev = "damon_aggregated: target_id=%d nr_regions=%d" % (rng.integers(2),
                                                                     rng.integers(1, 4))
        tail = plain(int(rng.integers(50)), age=bool(rng.random() < 0.8))
        if rng.random() < 0.03:
            tail = BAD_TAILS[int(rng.integers(len(BAD_TAILS)))]
        lines.append("%s%s: %s %s\n" % (task, ts, ev, tail))
    data = "".join(lines).encode("utf-8", "surrogateescape")
    assert scan("cython", data, lenient) == scan("python", data, lenient)
