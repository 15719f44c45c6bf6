"""Legacy binary record format v0/v1/v2 (FORMATS.md §2), both engines.

Files are built here with ``struct`` from the format description, and expected values
are computed independently (mean-length deduction written out in the test).
"""
import struct

import numpy as np
import pytest

from damo_pipe.errors import RecordFormatError
from damo_pipe.formats import detect_format, iter_record_chunks, read_records

MAGIC = b"damon_recfmt_ver"


def block(end_ns, targets, version=2):
    """targets: list of (tid, [(start, end, nr_accesses), ...])"""
    out = struct.pack("<qqI", end_ns // 10**9, end_ns % 10**9, len(targets))
    for tid, regions in targets:
        out += struct.pack("<i" if version == 1 else "<Q", tid)
        out += struct.pack("<I", len(regions))
        for s, e, a in regions:
            out += struct.pack("<QQI", s, e, a)
    return out


def header(version):
    return b"" if version == 0 else MAGIC + struct.pack("<i", version)


def sample(version=2, multi=False):
    """3 snapshots; one target, or two targets per block (kernel recorder style)."""
    ends = [1_000_100_000_000, 1_000_200_000_000, 1_000_300_500_000]
    data = header(version)
    for k, t in enumerate(ends):
        targets = [(42, [(4096, 8192, k), (8192, 16384, 2 * k)])]
        if multi:
            targets.append((7, [(0, 4096 * (k + 1), 5)]))
        data += block(t, targets, version)
    return data, ends


@pytest.fixture
def write(tmp_path):
    def w(data, name="damon.data"):
        p = tmp_path / name
        p.write_bytes(data)
        return p
    return w


@pytest.mark.parametrize("version", [0, 1, 2])
def test_versions(write, engine, version):
    data, ends = sample(version)
    p = write(data)
    if version:
        assert detect_format(p) == "record"
    recs = read_records(p, input_type="record", engine=engine)
    assert len(recs) == 1
    r = recs[0]
    assert r.target_id == 42
    assert r.intervals is None and r.kdamond_idx is None
    assert r.snapshots.end_ns.tolist() == ends
    span = float(ends[-1] - ends[0]) / 2
    assert r.first_start_ns == ends[0] - span
    assert r.snapshots.start_ns.tolist() == [int(ends[0] - span), ends[0], ends[1]]
    assert r.regions.start.tolist() == [4096, 8192] * 3
    assert r.regions.nr_accesses.tolist() == [0, 0, 1, 2, 2, 4]
    assert (r.regions.age == -1).all()
    assert r.snapshots.total_bytes.tolist() == [12288] * 3


def test_multi_target_blocks(write, engine):
    data, ends = sample(2, multi=True)
    recs = read_records(write(data), engine=engine)
    assert [r.target_id for r in recs] == [42, 7]
    assert recs[1].snapshots.end_ns.tolist() == ends
    assert recs[1].regions.end.tolist() == [4096, 8192, 12288]
    assert recs[1].snapshots.total_bytes.tolist() == [4096, 8192, 12288]


def test_v0_detected_by_content(write, engine):
    data, _ = sample(0)
    p = write(data)
    assert detect_format(p) == "record"
    assert read_records(p, engine=engine)[0].nr_snapshots == 3


@pytest.mark.parametrize("extra", [1, 15])
def test_trailing_bytes_below_16_are_an_error(write, engine, extra):
    """A file cut inside the next block header (issue 13: damo <= 2.0.1 and our old
    reader ignored up to 15 such bytes, hiding the truncation)."""
    data, _ = sample(2)
    with pytest.raises(RecordFormatError, match="truncated block header") as ei:
        read_records(write(data + b"\x01" * extra), engine=engine)
    assert ei.value.offset == len(data)


def test_truncation_everywhere(write, engine):
    data, _ = sample(2, multi=True)
    for cut in range(21, len(data)):
        trunc = data[:cut]
        try:
            recs = read_records(write(trunc), input_type="record", engine=engine)
        except RecordFormatError as e:
            assert e.offset is not None and 0 <= e.offset <= cut
            assert "damon.data" in str(e)
            continue
        # only a cut exactly at a block boundary (+ < 16 bytes) may parse
        assert sum(r.nr_snapshots for r in recs) in (0, 2, 4, 6)


def test_huge_count_is_an_error_not_an_allocation(write, engine):
    data = header(2) + struct.pack("<qqI", 1, 0, 1) + struct.pack("<QI", 5, 2**32 - 1)
    data += b"\0" * (1024 - len(data))
    with pytest.raises(RecordFormatError) as ei:
        read_records(write(data), engine=engine)
    assert ei.value.offset == len(header(2)) + 20 + 12
    data = header(2) + struct.pack("<qqI", 1, 0, 2**32 - 1) + b"\0" * 1000
    with pytest.raises(RecordFormatError):
        read_records(write(data), engine=engine)


def test_unsorted(write, engine):
    data = header(2) + block(2 * 10**9, [(1, [(0, 4096, 1)])]) + block(10**9, [(1, [(0, 4096, 1)])])
    with pytest.raises(RecordFormatError, match="not sorted") as ei:
        read_records(write(data), engine=engine)
    assert ei.value.offset == 20 + 20 + 12 + 20


def test_time_overflow(write, engine):
    data = header(2) + struct.pack("<qqI", 2**62, 0, 0)
    with pytest.raises(RecordFormatError, match="range"):
        read_records(write(data), engine=engine)


def test_single_snapshot_record(write, engine):
    data = header(2) + block(5 * 10**9, [(3, [(0, 4096, 1)])])
    r = read_records(write(data), engine=engine)[0]
    assert r.nr_snapshots == 1
    assert r.first_start_ns is None
    assert r.snapshots.start_ns.tolist() == [5 * 10**9]


def test_chunked_stream_equals_whole(write, engine):
    data = header(2)
    ends = []
    for k in range(50):
        t = 10**12 + k * 10**8 + k * 7
        ends.append(t)
        data += block(t, [(9, [(i * 4096, (i + 1) * 4096, (i + k) % 20) for i in range(k % 5 + 1)]),
                          (8, [(0, 4096, k)])])
    p = write(data)
    whole = read_records(p, engine=engine)
    st = iter_record_chunks(p, chunk_regions=7, engine=engine)
    parts = {}
    for ri, ch in st:
        parts.setdefault(ri, []).append(ch)
    assert [m.target_id for m in st.records] == [9, 8]
    for ri, rec in enumerate(whole):
        cat = np.concatenate([c.snapshots.end_ns for c in parts[ri]])
        assert cat.tolist() == rec.snapshots.end_ns.tolist()
        starts = np.concatenate([c.snapshots.start_ns for c in parts[ri]])
        assert starts[1:].tolist() == rec.snapshots.start_ns[1:].tolist()
        assert st.first_starts[ri] == rec.first_start_ns
        regs = np.concatenate([c.regions.nr_accesses for c in parts[ri]])
        assert regs.tolist() == rec.regions.nr_accesses.tolist()
