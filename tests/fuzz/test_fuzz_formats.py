"""Fuzz every reader: for any bytes, either records or RecordFormatError — never another
exception, never a hang — and both engines agree (same records or both errors)."""
import json
import struct
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damo_pipe.errors import RecordFormatError
from damo_pipe.formats import read_records
from damo_pipe.formats.trace_text import parse_trace_bytes

SETTINGS = settings(max_examples=150, deadline=2000,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def outcome(fn):
    try:
        recs = fn()
    except RecordFormatError as e:
        assert e.offset is not None or e.line is not None or e.path is not None
        return "error"
    return [(r.target_id, r.snapshots.end_ns.tolist(), r.snapshots.start_ns.tolist(),
             r.regions.start.tolist(), r.regions.end.tolist(), r.regions.nr_accesses.tolist(),
             r.regions.age.tolist(), r.regions.sz_filter_passed.tolist(), r.first_start_ns,
             _opt(r.regions.age_usec), _opt(r.regions.nr_accesses_percent))
            for r in recs]


def _opt(col):
    return None if col is None else [None if v != v else v for v in col.tolist()]


def both(tmp_path, data, fmt):
    p = tmp_path / "fuzz.data"
    p.write_bytes(data)
    a = outcome(lambda: read_records(p, input_type=fmt, engine="python"))
    b = outcome(lambda: read_records(p, input_type=fmt, engine="cython"))
    assert a == b
    return a


# ---------------------------------------------------------------- binary

MAGIC = b"damon_recfmt_ver"


@st.composite
def binary_files(draw):
    version = draw(st.sampled_from([0, 1, 2, 3]))
    out = b"" if version == 0 else MAGIC + struct.pack("<i", version)
    for _ in range(draw(st.integers(0, 4))):
        out += struct.pack("<qq", draw(st.integers(0, 2**40)), draw(st.integers(0, 10**9)))
        nt = draw(st.integers(0, 3))
        out += struct.pack("<I", nt)
        for _ in range(nt):
            out += struct.pack("<i" if version == 1 else "<Q",
                               draw(st.integers(0, 3)))
            nr = draw(st.integers(0, 4))
            out += struct.pack("<I", nr)
            for _ in range(nr):
                out += struct.pack("<QQI", draw(st.integers(0, 2**64 - 1)),
                                   draw(st.integers(0, 2**64 - 1)), draw(st.integers(0, 2**32 - 1)))
    # corruption: cut, flip, or append
    mode = draw(st.sampled_from(["keep", "cut", "flip", "append"]))
    if mode == "cut" and out:
        out = out[: draw(st.integers(0, len(out)))]
    elif mode == "flip" and out:
        i = draw(st.integers(0, len(out) - 1))
        out = out[:i] + bytes([draw(st.integers(0, 255))]) + out[i + 1:]
    elif mode == "append":
        out += draw(st.binary(max_size=40))
    return out


@SETTINGS
@given(data=binary_files())
def test_fuzz_binary(tmp_path, data):
    both(tmp_path, data, "record")


@SETTINGS
@given(data=st.binary(max_size=300))
def test_fuzz_binary_raw_bytes(tmp_path, data):
    both(tmp_path, data, "record")


# ---------------------------------------------------------------- trace text

TOKENS = ["kdamond.0", "4452", "[001]", ".....", "1000.100140:", "1000.2:", "5:", "x:",
          "damon:damon_aggregated:", "damon_aggregated:", "damon:damos_before_apply:",
          "damon:damon_monitor_intervals_tune:", "target_id=0", "target_id=1",
          "target_id=18446744073709551615", "target_id=18446744073709551616", "nr_regions=1",
          "nr_regions=2", "nr_regions=0", "ctx_idx=0", "scheme_idx=0", "target_idx=1",
          "0-4096:", "4096-8192:", "0-0:", "1-:", "-", "0", "3", "-1", "None", "9" * 25, "CPU",
          "is", "empty", "sample_us=5000", "=", ":", "", "\t", "1e5:", "inf:", "nan:", "\xe9"]


@st.composite
def trace_texts(draw):
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):
            ts = "%d.%06d:" % (draw(st.integers(0, 3000)), draw(st.integers(0, 999999)))
            n = draw(st.integers(1, 3))
            lines.append("kdamond.0 4452 [001] %s damon:damon_aggregated: target_id=%d nr_regions=%d %d-%d: %d %s"
                         % (ts, draw(st.integers(0, 2)), n, draw(st.integers(0, 2**64 - 1)),
                            draw(st.integers(0, 2**64 - 1)), draw(st.integers(-2, 30)),
                            draw(st.sampled_from(["1", "None", "-1", "7"]))))
        else:
            lines.append(" ".join(draw(st.lists(st.sampled_from(TOKENS), max_size=12))))
    sep = draw(st.sampled_from(["\n", "\r\n"]))
    return sep.join(lines).encode("utf-8")


@SETTINGS
@given(data=trace_texts())
def test_fuzz_trace(data):
    a = outcome(lambda: parse_trace_bytes(data, engine="python", path="fuzz.txt"))
    b = outcome(lambda: parse_trace_bytes(data, engine="cython", path="fuzz.txt"))
    assert a == b


@SETTINGS
@given(data=st.binary(max_size=400))
def test_fuzz_trace_raw_bytes(data):
    a = outcome(lambda: parse_trace_bytes(data, engine="python", path="fuzz.txt"))
    b = outcome(lambda: parse_trace_bytes(data, engine="cython", path="fuzz.txt"))
    assert a == b


# ---------------------------------------------------------------- json

SCALARS = st.one_of(st.none(), st.integers(-5, 2**65), st.sampled_from(
    ["0", "1,234", "94,827,419,009,024", "0 B", "1.500 KiB", "8 K", "1 s 500 ms", "max", "min",
     "x", "", "-3", "1.5", "12 B", "\u00e9"]), st.floats(allow_nan=False, allow_infinity=False))


@st.composite
def json_docs(draw):
    def region():
        r = {}
        for k in draw(st.lists(st.sampled_from(["start", "end", "nr_accesses", "age", "probe_hits",
                                                "sz_filter_passed", "junk"]), max_size=7, unique=True)):
            if k == "nr_accesses":
                r[k] = {"samples": draw(SCALARS), "percent": draw(SCALARS)}
            elif k == "age":
                r[k] = draw(st.sampled_from([{"usec": None, "aggr_intervals": draw(SCALARS)},
                                             {"aggr_intervals": 3}, {}]))
            elif k == "probe_hits":
                r[k] = draw(st.lists(st.integers(0, 5), max_size=3))
            else:
                r[k] = draw(SCALARS)
        if draw(st.booleans()):
            r.setdefault("start", "4,096")
            r.setdefault("end", "8,192")
        return r

    recs = []
    for _ in range(draw(st.integers(0, 2))):
        snaps = [{"start_time": draw(SCALARS), "end_time": draw(SCALARS),
                  "regions": [region() for _ in range(draw(st.integers(0, 3)))],
                  "total_bytes": draw(st.sampled_from([None, "100", "x"]))}
                 for _ in range(draw(st.integers(0, 2)))]
        rec = {"target_id": draw(SCALARS), "snapshots": snaps}
        if draw(st.booleans()):
            rec["data_source"] = "damon_stat"
        recs.append(rec)
    text = json.dumps(recs, indent=draw(st.sampled_from([None, 4])))
    mode = draw(st.sampled_from(["keep", "keep", "cut", "flip"]))
    raw = text.encode()
    if mode == "cut" and raw:
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif mode == "flip" and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1:]
    return raw, draw(st.booleans())


@SETTINGS
@given(doc=json_docs())
def test_fuzz_json(tmp_path, doc):
    raw, compress = doc
    if compress:
        both(tmp_path, zlib.compress(raw), "json_compressed")
    else:
        both(tmp_path, raw, "json")


@SETTINGS
@given(data=st.binary(max_size=300))
def test_fuzz_json_compressed_raw(tmp_path, data):
    both(tmp_path, b"\x78\x9c" + data, "json_compressed")
    both(tmp_path, data, "json")


def test_outcome_helper_detects_difference():
    """The fuzz assertions can fail: different records compare unequal."""
    a = outcome(lambda: parse_trace_bytes(b"k 1 [0] 1.0: damon:damon_aggregated: target_id=0 nr_regions=1 0-1: 1 1"))
    b = outcome(lambda: parse_trace_bytes(b"k 1 [0] 1.0: damon:damon_aggregated: target_id=0 nr_regions=1 0-2: 1 1"))
    assert a != b and isinstance(a, list) and np.array(a[0][3]).tolist() == [0]
