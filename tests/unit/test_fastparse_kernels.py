"""The Cython kernels against their pure-Python twins, at the kernel level."""
import json
import struct

import numpy as np
import pytest

fp = pytest.importorskip("damo_pipe._fastparse")

from damo_pipe.formats import binary, trace_text  # noqa: E402
from damo_pipe.formats.damo_json import regions_from_dicts as _regions  # noqa: E402


def test_binary_scan_matches_reference():
    data = b"damon_recfmt_ver" + struct.pack("<i", 2)
    for k in range(20):
        data += struct.pack("<qqI", 100 + k, 5, 2)
        for tid in (7, 2**64 - 1):
            n = k % 4
            data += struct.pack("<QI", tid, n)
            for i in range(n):
                data += struct.pack("<QQI", i, i + 4096, (i * k) % 2**32)
    for step in (1, 3, 1000):
        pos, outs = 20, []
        while len(data) - pos >= 16:
            a = binary.py_binary_scan(data, pos, 2, step)
            b = fp.binary_scan(data, pos, 2, step)
            assert a[:5] == b[:5]
            for x, y in zip(a[5:], b[5:]):
                assert x.tolist() == y.tolist()
            pos = a[0]
            outs.append(a)
        assert pos == len(data)


def test_trace_scan_rows_match_reference():
    text = b""
    for k in range(30):
        for i in range(3):
            text += (b"  kdamond.0  1 [000] %d.%06d: damon:damon_aggregated: target_id=%d nr_regions=3 %d-%d: %d %s\n"
                     % (10 + k, k * 31, k % 2, i, i + 1, k, b"None" if i == 1 else b"5"))
        text += b"CPU 1 is empty\nshort line\n"
    st_a, st_b = trace_text.TraceState(), trace_text.TraceState()
    pos = 0
    while pos < len(text):
        chunk = text[pos:pos + 333]
        ca, ra = trace_text.py_trace_scan(chunk, st_a, False)
        cb, rb = fp.trace_scan(chunk, st_b, False)
        assert ca == cb
        for f in trace_text.ROW_FIELDS:
            assert ra[f].tolist() == rb[f].tolist(), f
        pos += ca if ca else 333
        if ca == 0:
            break
    assert st_a.__dict__ == st_b.__dict__


REGION = {"start": "94,827,419,009,024", "end": "94,827,423,150,080",
          "nr_accesses": {"samples": 5, "percent": None},
          "age": {"usec": None, "aggr_intervals": "1,234"},
          "probe_hits": [], "sz_filter_passed": "0 B"}


def scan_all(data, cap=64):
    """Drive json_regions_scan over ``data`` fed in growing prefixes (worst case)."""
    out = [np.empty(cap, np.uint64), np.empty(cap, np.uint64), np.empty(cap, np.int64),
           np.empty(cap, np.int64), np.empty(cap, np.uint64)]
    pos, count, mode = data.index(b"[") + 1, 0, 1
    for end in range(pos, len(data) + 1):
        st, pos, count, mode = fp.json_regions_scan(data[:end], pos, count, *out, mode)
        if st == 0:
            return out, count
        assert st == 1, st
    raise AssertionError("never finished")


def test_json_regions_every_split_point():
    regions = [dict(REGION, start=str(i * 4096), end="{:,}".format(i * 4096 + 4096)) for i in range(4)]
    data = json.dumps(regions, indent=4).encode()
    out, n = scan_all(data)
    ref = _regions(regions, "x")
    assert n == 4
    assert out[0][:n].tolist() == ref.start.tolist()
    assert out[1][:n].tolist() == ref.end.tolist()
    assert out[2][:n].tolist() == ref.nr_accesses.tolist()
    assert out[3][:n].tolist() == ref.age.tolist()
    assert out[4][:n].tolist() == ref.sz_filter_passed.tolist()


@pytest.mark.parametrize("variant", [
    {"sz_filter_passed": "1.500 KiB"}, {"probe_hits": [1]}, {"start": 1.5},
    {"age": {"usec": None, "aggr_intervals": "5 B"}}, {"junk": 1}, {"start": "a\\\"b"},
    {"nr_accesses": {"samples": 3.5, "percent": None}},
])
def test_json_unusual_regions_reported(variant):
    data = json.dumps([REGION, dict(REGION, **variant)]).encode()
    out = [np.empty(8, np.uint64), np.empty(8, np.uint64), np.empty(8, np.int64),
           np.empty(8, np.int64), np.empty(8, np.uint64)]
    st, pos, count, mode = fp.json_regions_scan(data, 1, 0, *out, 1)
    assert st == 2 and count == 1
    assert data[pos:pos + 1] == b"{"


def test_json_full_output():
    data = json.dumps([REGION] * 5).encode()
    out = [np.empty(2, np.uint64), np.empty(2, np.uint64), np.empty(2, np.int64),
           np.empty(2, np.int64), np.empty(2, np.uint64)]
    st, pos, count, mode = fp.json_regions_scan(data, 1, 0, *out, 1)
    assert (st, count) == (3, 2)
    st, pos, count, mode = fp.json_regions_scan(data, pos, 0, *out, mode)
    assert (st, count) == (3, 2)
    st, pos, count, mode = fp.json_regions_scan(data, pos, 0, *out, mode)
    assert (st, count, pos) == (0, 1, len(data))


def test_json_bad_arguments():
    out = [np.empty(2, np.uint64)] * 2 + [np.empty(2, np.int64)] * 2 + [np.empty(1, np.uint64)]
    with pytest.raises(ValueError):
        fp.json_regions_scan(b"[]", 1, 0, *out, 1)


def test_json_regions_text_matches_json_dumps():
    start = np.array([0, 999, 1000, 2**64 - 1], np.uint64)
    end = np.array([1, 1000, 123456789, 2**64 - 1], np.uint64)
    acc = np.array([0, -1, 2**63 - 1, -(2**63)], np.int64)
    age = np.array([-1, 0, 1234, 10**15], np.int64)
    passed = np.array([0, 1024, 1536, 7], np.uint64)
    got = fp.json_regions_text(start, end, acc, age, passed, [None, None, "1.500 KiB", None])
    objs = []
    for i in range(4):
        objs.append({"start": "{:,}".format(int(start[i])), "end": "{:,}".format(int(end[i])),
                     "nr_accesses": {"samples": int(acc[i]), "percent": None},
                     "age": {"usec": None,
                             "aggr_intervals": None if age[i] == -1 else "{:,}".format(int(age[i]))},
                     "probe_hits": [],
                     "sz_filter_passed": "1.500 KiB" if i == 2 else "%d B" % int(passed[i])})
    want = json.dumps([[[[[o for o in objs]]]]], indent=4)
    # the objects sit at 20 spaces inside damo's document: cut them out of the nesting
    body = want.split("\n", 5)[5].rsplit("\n", 5)[0]
    assert got.decode() == body
    assert fp.json_regions_text(start[:0], end[:0], acc[:0], age[:0], passed[:0]) == b""
    with pytest.raises(ValueError):
        fp.json_regions_text(start, end[:2], acc, age, passed)


def _big_trace(nlines=16000):
    out = []
    for k in range(nlines):
        out.append(b"  kdamond.0  1 [000] %d.%06d: damon:damon_aggregated: target_id=%d nr_regions=4 %d-%d: %d 3\n"
                   % (100 + k // 8, (k // 8) * 7 % 1000000, (k // 4) % 2, k, k + 1, k % 5))
    return b"".join(out)


def test_trace_scan_two_threads_match_reference():
    data = _big_trace()
    assert len(data) > (1 << 20)   # the split path
    st_a, st_b = trace_text.TraceState(), trace_text.TraceState()
    ca, ra = trace_text.py_trace_scan(data, st_a, True)
    cb, rb = fp.trace_scan(data, st_b, True)
    assert ca == cb == len(data)
    for f in trace_text.ROW_FIELDS:
        assert ra[f].tolist() == rb[f].tolist(), f
    assert st_a.__dict__ == st_b.__dict__


@pytest.mark.parametrize("where", [0.25, 0.75])
@pytest.mark.parametrize("bad", [b"target_id=0 nr_regions=4 x-1: 1 1", b"UNSORTED"])
def test_trace_scan_two_threads_error_lines(where, bad):
    lines = _big_trace().split(b"\n")
    i = int(len(lines) * where)
    if bad == b"UNSORTED":
        lines[i] = b"  kdamond.0  1 [000] 1.000000: damon:damon_aggregated: target_id=0 nr_regions=4 0-1: 1 3"
    else:
        lines[i] = b"  kdamond.0  1 [000] 999999.000000: damon:damon_aggregated: " + bad
    data = b"\n".join(lines)
    errs = []
    for scan in (trace_text.py_trace_scan, fp.trace_scan):
        with pytest.raises(trace_text.RecordFormatError) as ei:
            scan(data, trace_text.TraceState(), True, "x")
        errs.append(ei.value.line)
    assert errs[0] == errs[1] == i + 1
