"""Damaged input never reads as a different valid record (issue 13), both engines.

Trace text: one lost, added or garbled line, or a file cut inside a snapshot, is a
RecordFormatError naming the file and the line (strict reading, the default); lenient
reading drops the incomplete snapshot, counts it, and keeps every other snapshot exactly
(no shift).  Legacy binary: bytes after the last block, a bad nanoseconds field, no
snapshot at all.  JSON: nesting too deep, zlib damage, with byte offsets.  A text file
that holds no record is an error.  Expected records are built in the test (the
snapshots of the undamaged text, minus the damaged one), never by the code under test.
"""
import logging
import random
import struct
import zlib
from pathlib import Path

import pytest

from damo_pipe.errors import RecordFormatError
from damo_pipe.formats import read_records
from damo_pipe.formats.trace_text import TraceStreamParser, parse_trace_bytes

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
PERF = ("       kdamond.0  4452 [001] {ts}: damon:damon_aggregated: target_id={t} "
        "nr_regions={n} {s}-{e}: {a} {age}\n")
PIPE = ("       kdamond.0-207     [000] .....    {ts}: damon_aggregated: target_id={t} "
        "nr_regions={n} {s}-{e}: {a} {age}\n")


def kernel_like(nsnap=8, seed=1, targets=(0,), nr=None):
    """[(target, ts text, [(start, end, acc, age)])] in time order: regions ascending
    and contiguous from one base per target (as the kernel emits them)."""
    rng = random.Random(seed)
    out = []
    for k in range(nsnap):
        ts = "%d.%06d" % (100 + k, rng.randint(0, 999999))
        for t in targets:
            n = nr if nr is not None else rng.randint(2, 6)
            a = 0x7F0000000000 + t * (1 << 36)
            regs = []
            for _ in range(n):
                b = a + rng.randint(1, 64) * 4096
                regs.append((a, b, rng.randint(0, 20), rng.randint(0, 99)))
                a = b
            out.append((t, ts, regs))
    return out


def text_lines(snaps, fmt=PERF):
    return [fmt.format(ts=ts, t=t, n=len(regs), s=s, e=e, a=a, age=g)
            for t, ts, regs in snaps for s, e, a, g in regs]


def line_owner(snaps):
    """Snapshot index of each line."""
    return [i for i, (_, _, regs) in enumerate(snaps) for _ in regs]


def as_snapshots(records):
    """{target: [(end_ns, [(start, end, acc, age)])]} of records read."""
    out = {}
    for r in records:
        S, R = r.snapshots, r.regions
        snaps = []
        for k in range(r.nr_snapshots):
            lo, n = int(S.region_offset[k]), int(S.nr_regions[k])
            snaps.append((int(S.end_ns[k]), [
                (int(R.start[i]), int(R.end[i]), int(R.nr_accesses[i]), int(R.age[i]))
                for i in range(lo, lo + n)]))
        out[r.target_id] = snaps
    return out


def expected(snaps, skip=()):
    out = {}
    for i, (t, ts, regs) in enumerate(snaps):
        out.setdefault(t, [])
        if i not in skip:
            out[t].append((int(float(ts) * 1e9), list(regs)))
    return out


def read_text(data, engine, lenient=False):
    return parse_trace_bytes(data, engine=engine, path="rec.txt", lenient=lenient)


# ------------------------------------------------------------------ trace text

def test_sed_5d_is_an_error_not_a_shift(engine):
    """The issue's reproducer: every snapshot has the same nr_regions, so dropping line
    5 used to move one region of every later snapshot into the one before."""
    snaps = kernel_like(nsnap=20, nr=5)
    lines = text_lines(snaps)
    data = "".join(lines[:4] + lines[5:]).encode()
    with pytest.raises(RecordFormatError) as ei:
        read_text(data, engine)
    e = ei.value
    assert e.path == "rec.txt" and e.line == len(lines) - 1
    assert "incomplete snapshot" in str(e) and "line 5" in str(e)
    # lenient: exactly the damaged snapshot is dropped, nothing shifts
    got = as_snapshots(read_text(data, engine, lenient=True))
    assert got == expected(snaps, skip={0})


@pytest.mark.parametrize("fmt", [PERF, PIPE])
def test_every_single_line_drop_or_duplicate(engine, fmt):
    """Each line dropped or repeated: strict -> error naming a line of the file;
    lenient -> the snapshots minus (at most) the damaged one, all others intact."""
    snaps = kernel_like(nsnap=6, seed=3, targets=(0, 1))
    lines = text_lines(snaps, fmt)
    owner = line_owner(snaps)
    for i in range(len(lines)):
        for damaged in (lines[:i] + lines[i + 1:], lines[:i + 1] + lines[i:]):
            data = "".join(damaged).encode()
            with pytest.raises(RecordFormatError) as ei:
                read_text(data, engine)
            assert 1 <= ei.value.line <= len(damaged)
            got = as_snapshots(read_text(data, engine, lenient=True))
            assert got in (expected(snaps, skip={owner[i]}), expected(snaps)), i


def test_nr_regions_mismatch_names_the_line(engine):
    snaps = [(0, "1.000001", [(0, 4096, 1, 1), (4096, 8192, 2, 2), (8192, 9000, 3, 3)]),
             (0, "1.100001", [(0, 4096, 1, 1), (4096, 9000, 2, 2)])]
    lines = text_lines(snaps)
    del lines[1]
    with pytest.raises(RecordFormatError, match="2 of its 3 regions, then a line with "
                       "nr_regions=2") as ei:
        read_text("".join(lines).encode(), engine)
    assert ei.value.line == 3


def test_truncation_anywhere(engine):
    """A file cut anywhere: an error naming a line, or (cut at a snapshot boundary, or
    inside the last number of a snapshot's last line) the snapshots before the cut."""
    snaps = kernel_like(nsnap=4, seed=5, targets=(0, 1))
    data = "".join(text_lines(snaps)).encode()
    want = expected(snaps)
    ok = 0
    for cut in range(1, len(data)):
        try:
            got = as_snapshots(read_text(data[:cut], engine))
        except RecordFormatError as e:
            assert e.path == "rec.txt"
            assert e.line is not None or "not a DAMON record" in str(e)
            continue
        ok += 1
        for t, snaps_t in got.items():
            w = want[t][:len(snaps_t)]
            assert snaps_t[:-1] == w[:-1]
            end, regs = snaps_t[-1]
            if (end, regs) != w[-1]:
                # only the last value of a last line without its newline may be cut short
                assert not data[:cut].endswith(b"\n")
                assert end == w[-1][0] and regs[:-1] == w[-1][1][:-1]
                assert regs[-1][:3] == w[-1][1][-1][:3]
                assert str(w[-1][1][-1][3]).startswith(str(regs[-1][3]))
    assert ok >= len(snaps) - 1   # at least the cuts at snapshot boundaries


@pytest.mark.parametrize("text", [b"hello\n", b"cpus=2\nCPU 0 is empty\n", b"\n\n",
                                  b"k 1 [0] 1.0: sched:sched_switch: a b c\n"])
def test_text_without_record_is_an_error(tmp_path, engine, text):
    p = tmp_path / "hello.txt"
    p.write_bytes(text)
    with pytest.raises(RecordFormatError, match="not a DAMON record") as ei:
        read_records(p, engine=engine)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("fields,msg", [
    ("target_id=0 nr_regions=1 0-4096:", "damon_aggregated line with 3 fields"),
    ("target_id=0 nr_regions=1 0-4096: 1 2 3", "damon_aggregated line with 6 fields"),
    ("target_id=0 nr_regions=0 0-4096: 1 2", "nr_regions=0"),
])
def test_garbled_event_lines(engine, fields, msg):
    good = "".join(text_lines(kernel_like(nsnap=2, nr=2)))
    bad = "       kdamond.0  4452 [001] 200.000000: damon:damon_aggregated: %s\n" % fields
    with pytest.raises(RecordFormatError, match=msg) as ei:
        read_text((good + bad).encode(), engine)
    assert ei.value.line == 5
    got = read_text((good + bad).encode(), engine, lenient=True)
    assert sum(r.nr_snapshots for r in got) == 2


def test_damos_before_apply_field_count(engine):
    bad = ("       kdamond.0 47293 [000] 1.0: damon:damos_before_apply: ctx_idx=0 "
           "scheme_idx=1 target_idx=0 nr_regions=1 0-4096:\n")
    with pytest.raises(RecordFormatError, match="damos_before_apply line with 5 fields"):
        read_text(bad.encode(), engine)


def test_lenient_counts_and_warns(engine, caplog):
    snaps = kernel_like(nsnap=10, seed=7, nr=4)
    lines = text_lines(snaps)
    lines[9] = lines[9].replace("nr_regions=4", "nr_regions=z")
    del lines[22]
    p = TraceStreamParser(engine=engine, path="rec.txt", chunk_regions=1 << 40, lenient=True)
    with caplog.at_level(logging.WARNING, logger="damo_pipe.formats.trace_text"):
        p.feed("".join(lines).encode())
        p.finish()
    st = p.state
    assert (st.dropped_snapshots, st.damaged_lines, st.first_damage) == (2, 1, 10)
    assert st.dropped_lines == 3 + 3
    assert "rec.txt: dropped 2 incomplete snapshots (6 event lines) and skipped 1 damaged " \
           "event line; first damage at line 10" in caplog.text


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_stream_lenient_capture_starting_and_ending_mid_snapshot(engine, seed):
    """A live capture (the collector's lenient parser) starts and stops anywhere and
    loses a line; fed in pieces split anywhere, it gives exactly the snapshots whose
    lines are all there."""
    snaps = kernel_like(nsnap=12, seed=seed, targets=(0, 1))
    lines = text_lines(snaps)
    owner = line_owner(snaps)
    rng = random.Random(seed)
    lo, hi = rng.randint(0, 8), len(lines) - rng.randint(0, 8)
    lost = rng.randint(lo + 1, hi - 2)
    present = set(range(lo, hi)) - {lost}
    data = "".join(lines[i] for i in sorted(present)).encode()
    partial = {owner[i] for i in present} - {k for k in range(len(snaps))
                                              if all(i in present for i, o in enumerate(owner)
                                                     if o == k)}
    absent = set(range(len(snaps))) - {owner[i] for i in present}
    p = TraceStreamParser(engine=engine, lenient=True)
    got = {}
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 400)
        for key, ch in p.feed(data[pos:pos + step]):
            got.setdefault(key, []).append(ch)
        pos += step
    for key, ch in p.finish():
        got.setdefault(key, []).append(ch)
    out = {}
    for key, chunks in got.items():
        for ch in chunks:
            for t, s in as_snapshots([ch]).items():
                out.setdefault(t, []).extend(s)
    assert out == expected(snaps, skip=partial | absent)
    assert p.state.dropped_snapshots == len(partial)


def test_lenient_backwards_time(engine):
    snaps = kernel_like(nsnap=4, seed=13, nr=3)
    lines = text_lines(snaps)
    lines[4] = lines[4].replace(snaps[1][1], "050.000000")
    with pytest.raises(RecordFormatError, match="time-sorted") as ei:
        read_text("".join(lines).encode(), engine)
    assert ei.value.line == 5
    got = as_snapshots(read_text("".join(lines).encode(), engine, lenient=True))
    assert got == expected(snaps, skip={1})


def test_big_buffers_two_threads_same_errors(engine):
    """Buffers over 1 MiB are tokenized by two threads (Cython): the error and the
    lenient counts are the same as the Python engine's."""
    snaps = kernel_like(nsnap=4000, seed=17, nr=5)
    lines = text_lines(snaps)
    del lines[7003]
    data = "".join(lines).encode()
    assert len(data) > 1 << 20
    with pytest.raises(RecordFormatError) as ei:
        read_text(data, engine)
    # the next snapshot's first region (now line 7005) is the first out of order
    assert ei.value.line == len(lines) and "order at line 7005" in str(ei.value)
    got = read_text(data, engine, lenient=True)
    assert got[0].nr_snapshots == 3999


@pytest.mark.skipif(not (FIXTURES / "kernel").is_dir(), reason="needs ../shared/fixtures")
@pytest.mark.parametrize("name", ["perf-script-damon_aggregated.txt",
                                  "trace_pipe-damon_aggregated.txt"])
def test_real_captures_lost_line(tmp_path, engine, name):
    """The real kernel captures: read whole; a line lost anywhere is an error, and
    lenient reading gives every snapshot but the damaged one."""
    src = (FIXTURES / "kernel" / name).read_bytes()
    whole = as_snapshots(read_text(src, engine))
    lines = src.splitlines(keepends=True)
    flat = [(t, s) for t in sorted(whole) for s in whole[t]]
    events = [i for i, ln in enumerate(lines) if b"damon_aggregated:" in ln]
    for i in events[::7]:
        data = b"".join(lines[:i] + lines[i + 1:])
        with pytest.raises(RecordFormatError):
            read_text(data, engine)
        got = as_snapshots(read_text(data, engine, lenient=True))
        kept = [(t, s) for t in sorted(got) for s in got[t]]
        assert len(kept) == len(flat) - 1 and all(k in flat for k in kept)


# ------------------------------------------------------------------ legacy binary

def _block(end_ns, tid, regions):
    out = struct.pack("<qqI", end_ns // 10**9, end_ns % 10**9, 1)
    out += struct.pack("<QI", tid, len(regions))
    for s, e, a in regions:
        out += struct.pack("<QQI", s, e, a)
    return out


def test_binary_bad_nanoseconds(tmp_path, engine):
    data = b"damon_recfmt_ver" + struct.pack("<i", 2) + _block(5 * 10**9, 1, [(0, 4096, 1)])
    bad = data[:28] + struct.pack("<q", 10**9) + data[36:]
    p = tmp_path / "b.data"
    p.write_bytes(bad)
    with pytest.raises(RecordFormatError, match="nanoseconds field 1000000000") as ei:
        read_records(p, engine=engine)
    assert ei.value.offset == 28


def test_binary_v0_without_snapshot(tmp_path, engine):
    p = tmp_path / "zeros.data"
    p.write_bytes(b"\0" * 40)      # two empty blocks: no target, no snapshot
    with pytest.raises(RecordFormatError, match="not a DAMON record"):
        read_records(p, engine=engine)
    hdr = tmp_path / "hdr.data"    # a v2 header alone: a record file of no snapshot
    hdr.write_bytes(b"damon_recfmt_ver" + struct.pack("<i", 2))
    assert read_records(hdr, engine=engine) == []


# ------------------------------------------------------------------ json

@pytest.mark.parametrize("doc", [b"[" * 100000, b"[{\"target_id\": 0, \"snapshots\": ["
                                 + b"{\"a\":" * 5000 + b"1" + b"}" * 5000 + b"]}]"])
def test_json_nested_too_deeply(tmp_path, engine, doc):
    for name, data in (("deep.json", doc), ("deep.jsonc", zlib.compress(doc))):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(RecordFormatError, match="nested too deeply") as ei:
            read_records(p, engine=engine)
        assert ei.value.offset is not None and 400 <= ei.value.offset <= 4000


def test_json_scheme_filters_too_deep(tmp_path, engine):
    p = tmp_path / "f.json"
    p.write_text('[{"target_id": 0, "snapshots": [], "scheme_filters": %s1%s}]'
                 % ("[" * 100, "]" * 100))
    with pytest.raises(RecordFormatError, match="scheme_filters nested deeper than 64"):
        read_records(p, engine=engine)


def test_zlib_damage_offsets(tmp_path, engine):
    doc = b'[{"target_id": 0, "snapshots": []}]' * 1
    raw = zlib.compress(doc)
    p = tmp_path / "d.jsonc"
    p.write_bytes(raw + b"junk")
    with pytest.raises(RecordFormatError, match="after the end of the zlib stream") as ei:
        read_records(p, engine=engine)
    assert ei.value.offset == len(raw)
    p.write_bytes(raw[:-5])
    with pytest.raises(RecordFormatError, match="truncated zlib stream") as ei:
        read_records(p, engine=engine)
    assert ei.value.offset == len(raw) - 5
    bad = bytearray(raw)
    bad[-1] ^= 0xFF                  # the Adler-32 check value
    p.write_bytes(bytes(bad))
    with pytest.raises(RecordFormatError, match="corrupt zlib stream") as ei:
        read_records(p, engine=engine)
    assert len(raw) - 4 <= ei.value.offset < len(raw)


def test_json_errors_name_an_offset(tmp_path, engine):
    """Record-level errors of the streaming engine name the record's offset."""
    p = tmp_path / "r.json"
    doc = '[{"target_id": 0, "snapshots": []}, {"snapshots": []}]'
    p.write_text(doc)
    with pytest.raises(RecordFormatError, match="record 1") as ei:
        read_records(p, engine=engine)
    if engine == "cython":
        assert ei.value.offset == doc.index('{"snapshots"')
