"""The parsing kernels (formats/_binary_kernels, _trace_kernels, _json_kernels) against
their pure-Python twins, at the kernel level; the _fastparse facade; the .pyi stubs of
every extension module; engine selection of the format readers."""
import ast
import importlib
import inspect
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

bk = pytest.importorskip("damo_pipe.formats._binary_kernels")
tk = pytest.importorskip("damo_pipe.formats._trace_kernels")
jk = pytest.importorskip("damo_pipe.formats._json_kernels")

import damo_pipe  # noqa: E402
from damo_pipe.errors import EngineError  # noqa: E402
from damo_pipe.formats import binary, json_fast, trace_text  # noqa: E402
from damo_pipe.formats.damo_json import regions_from_dicts as _regions  # noqa: E402


def _state(st):
    """A TraceState's fields, without the compiled engine's cached typed copy."""
    return {k: v for k, v in vars(st).items() if k != "kernel_group"}


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
            b = bk.binary_scan(data, pos, 2, step)
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
        cb, rb = tk.trace_scan(chunk, st_b, False)
        assert ca == cb
        for f in trace_text.ROW_FIELDS:
            assert ra[f].tolist() == rb[f].tolist(), f
        pos += ca if ca else 333
        if ca == 0:
            break
    assert _state(st_a) == _state(st_b)


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
        st, pos, count, mode = jk.json_regions_scan(data[:end], pos, count, *out, mode)
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
    st, pos, count, mode = jk.json_regions_scan(data, 1, 0, *out, 1)
    assert st == 2 and count == 1
    assert data[pos:pos + 1] == b"{"


def test_json_full_output():
    data = json.dumps([REGION] * 5).encode()
    out = [np.empty(2, np.uint64), np.empty(2, np.uint64), np.empty(2, np.int64),
           np.empty(2, np.int64), np.empty(2, np.uint64)]
    st, pos, count, mode = jk.json_regions_scan(data, 1, 0, *out, 1)
    assert (st, count) == (3, 2)
    st, pos, count, mode = jk.json_regions_scan(data, pos, 0, *out, mode)
    assert (st, count) == (3, 2)
    st, pos, count, mode = jk.json_regions_scan(data, pos, 0, *out, mode)
    assert (st, count, pos) == (0, 1, len(data))


def test_json_bad_arguments():
    out = [np.empty(2, np.uint64)] * 2 + [np.empty(2, np.int64)] * 2 + [np.empty(1, np.uint64)]
    with pytest.raises(ValueError):
        jk.json_regions_scan(b"[]", 1, 0, *out, 1)


def test_json_regions_text_matches_json_dumps():
    start = np.array([0, 999, 1000, 2**64 - 1], np.uint64)
    end = np.array([1, 1000, 123456789, 2**64 - 1], np.uint64)
    acc = np.array([0, -1, 2**63 - 1, -(2**63)], np.int64)
    age = np.array([-1, 0, 1234, 10**15], np.int64)
    passed = np.array([0, 1024, 1536, 7], np.uint64)
    got = jk.json_regions_text(start, end, acc, age, passed, [None, None, "1.500 KiB", None])
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
    assert jk.json_regions_text(start[:0], end[:0], acc[:0], age[:0], passed[:0]) == b""
    with pytest.raises(ValueError):
        jk.json_regions_text(start, end[:2], acc, age, passed)


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
    cb, rb = tk.trace_scan(data, st_b, True)
    assert ca == cb == len(data)
    for f in trace_text.ROW_FIELDS:
        assert ra[f].tolist() == rb[f].tolist(), f
    assert _state(st_a) == _state(st_b)


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
    for scan in (trace_text.py_trace_scan, tk.trace_scan):
        with pytest.raises(trace_text.RecordFormatError) as ei:
            scan(data, trace_text.TraceState(), True, "x")
        errs.append(ei.value.line)
    assert errs[0] == errs[1] == i + 1


# ---------------------------------------------------------------- added with the split

def test_trace_scan_last_line_without_newline():
    """A final chunk whose last line has no newline: same rows, state and errors."""
    text = b"".join(b"  kdamond.0  1 [000] %d.000000: damon:damon_aggregated: target_id=0 "
                    b"nr_regions=2 %d-%d: 3 7\n" % (10 + k // 2, k, k + 1) for k in range(6))
    for data in (text[:-1], text[:-1] + b"   ", text + b"x y z w", b"a b c d"):
        st_a, st_b = trace_text.TraceState(), trace_text.TraceState()
        ca, ra = trace_text.py_trace_scan(data, st_a, True)
        cb, rb = tk.trace_scan(data, st_b, True)
        assert ca == cb == len(data)
        for f in trace_text.ROW_FIELDS:
            assert ra[f].tolist() == rb[f].tolist(), f
        assert _state(st_a) == _state(st_b)
    bad = text + b"  kdamond.0  1 [000] 99.0: damon:damon_aggregated: target_id=0 nr_regions=2 5-x: 1 1"
    errs = []
    for scan in (trace_text.py_trace_scan, tk.trace_scan):
        with pytest.raises(trace_text.RecordFormatError) as ei:
            scan(bad, trace_text.TraceState(), True, "x")
        errs.append((ei.value.line, str(ei.value)))
    assert errs[0] == errs[1] and errs[0][0] == 7


def test_trace_rows_need_a_newline_sentinel():
    rows = tk._Rows(4)
    with pytest.raises(ValueError):
        rows.run(b"a b c d", 0, 7)
    with pytest.raises(ValueError):
        rows.run(b"a b c d\n", 0, 9)
    rows.run(b"a b c d\n", 0, 8)
    assert (rows.n, rows.nlines) == (0, 1)


def test_binary_scan_errors_match_reference_and_reject_negative_pos():
    head = b"damon_recfmt_ver" + struct.pack("<i", 2)
    good = struct.pack("<qqI", 5, 0, 1) + struct.pack("<QI", 1, 2) + struct.pack("<QQI", 0, 1, 1) * 2
    cases = [good[:18], good[:26], good[:40], struct.pack("<qqI", 2**62, 0, 0)]
    for body in cases:
        msgs = []
        for scan in (binary.py_binary_scan, bk.binary_scan):
            with pytest.raises(binary.RecordFormatError) as ei:
                scan(head + body, 20, 2, 1 << 20, "f")
            msgs.append(str(ei.value))
        assert msgs[0] == msgs[1]
    with pytest.raises(ValueError):
        bk.binary_scan(head + good, -1, 2, 10)


def test_error_code_tables_cover_every_code():
    """Each numeric error code of a kernel has its message (codes 1..N, no gaps)."""
    for table in (bk._ERRORS, tk._ERRORS):
        assert sorted(table) == list(range(1, len(table) + 1))
        assert all(isinstance(m, str) and m for m in table.values())


def test_json_status_enum_values():
    assert [int(x) for x in (jk.JsonScan.J_DONE, jk.JsonScan.J_MORE, jk.JsonScan.J_UNUSUAL,
                             jk.JsonScan.J_FULL)] == [0, 1, 2, 3]


@pytest.mark.parametrize("sz", ["0 B", "1,024 B", "7", "18,446,744,073,709,551,615 B"])
def test_json_compact_regions_every_split_point(sz):
    """The generic (non-template) region parser, at every prefix of compact JSON."""
    regions = [dict(REGION, start=str(i * 4096), end="{:,}".format(i * 4096 + 4096),
                    sz_filter_passed=sz) for i in range(3)]
    data = json.dumps(regions).encode()
    out, n = scan_all(data)
    ref = _regions(regions, "x")
    assert n == 3
    assert out[0][:n].tolist() == ref.start.tolist()
    assert out[1][:n].tolist() == ref.end.tolist()
    assert out[4][:n].tolist() == ref.sz_filter_passed.tolist()


@pytest.mark.parametrize("value", ['"12 Bx"', '"18,446,744,073,709,551,616"', '"1 2"', '""',
                                   '"12 B', '12', '"\\u0031"'])
def test_json_compact_unusual_numbers(value):
    """Start values the fast paths do not take: reported, or more data asked for."""
    data = b'[{"start": ' + value.encode() + b', "end": "4,096"}]'
    out = [np.empty(4, np.uint64), np.empty(4, np.uint64), np.empty(4, np.int64),
           np.empty(4, np.int64), np.empty(4, np.uint64)]
    st, pos, count, mode = jk.json_regions_scan(data, 1, 0, *out, 1)
    if value == '12':      # a JSON integer is fine
        assert (st, count, out[0][0]) == (jk.JsonScan.J_DONE, 1, 12)
    else:
        assert (st, count, pos) == (jk.JsonScan.J_UNUSUAL, 0, 1)


def test_json_regions_text_longest_region_fits():
    """The per-region size bound of the writer holds for the longest possible region."""
    one = [np.array([2**64 - 1], np.uint64), np.array([2**64 - 1], np.uint64),
           np.array([-(2**63)], np.int64), np.array([2**63 - 1], np.int64),
           np.array([2**64 - 1], np.uint64)]
    text = jk.json_regions_text(*one, ["x" * 40])
    assert b'"sz_filter_passed": "' + b"x" * 40 + b'"' in text
    many = [np.repeat(c, 50) for c in one]
    assert jk.json_regions_text(*many, ["x" * 40] * 50) == b",\n".join([text] * 50)
    with pytest.raises(ValueError):
        jk.json_regions_text(*one, ["x" * 41])


# ---------------------------------------------------------------- layout and stubs

KERNEL_MODULES = ["damo_pipe._fastparse", "damo_pipe.formats._binary_kernels",
                  "damo_pipe.formats._trace_kernels", "damo_pipe.formats._json_kernels",
                  "damo_pipe.analyze._report_kernels", "damo_pipe.analyze._access_kernels",
                  "damo_pipe.collect._tried_regions"]
PKG = Path(damo_pipe.__file__).parent


def test_every_pyx_is_listed_and_short():
    pyx = sorted(str(p.relative_to(PKG.parent))[:-4].replace("/", ".") for p in PKG.rglob("*.pyx"))
    assert pyx == sorted(KERNEL_MODULES)
    for p in list(PKG.rglob("*.pyx")) + list(PKG.rglob("*.pxi")) + list(PKG.rglob("*.pxd")):
        assert len(p.read_text().splitlines()) <= 900, p


def test_facade_reexports_the_per_format_kernels():
    fp = importlib.import_module("damo_pipe._fastparse")
    assert fp.binary_scan is bk.binary_scan
    assert fp.trace_scan is tk.trace_scan
    assert fp.json_regions_scan is jk.json_regions_scan
    assert fp.json_regions_text is jk.json_regions_text


def test_nothing_in_the_package_imports_the_facade():
    pat = re.compile(r"(from\s+damo_pipe\s+import\s+.*\b_fastparse\b|damo_pipe\._fastparse|"
                     r"from\s+damo_pipe\._fastparse|\.\s*_fastparse\s+import)")
    for p in PKG.rglob("*.py*"):
        if p.name.startswith("_fastparse.") or p.suffix in (".so", ".c", ".pyc"):
            continue
        for line in p.read_text(errors="replace").splitlines():
            code = line.split("#")[0]
            assert not pat.search(code) or "``" in line or ":func:" in line, (p, line)


def _stub_names(path):
    tree = ast.parse(path.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names[node.name] = [a.arg for a in node.args.args]
        elif isinstance(node, ast.ClassDef):
            names[node.name] = None
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                names[a.asname or a.name] = "import"
    return names


@pytest.mark.parametrize("modname", KERNEL_MODULES)
def test_stubs_cover_every_def(modname):
    mod = importlib.import_module(modname)
    stub = Path(mod.__file__.split(".cpython")[0] + ".pyi")
    names = _stub_names(stub)
    public = {n for n, v in vars(mod).items()
              if not n.startswith("__") and (callable(v) and not inspect.ismodule(v))
              and getattr(v, "__module__", modname) == modname or n in getattr(mod, "__all__", ())}
    public -= {n for n, v in vars(mod).items() if isinstance(v, type) and issubclass(v, Exception)}
    assert public <= set(names), public - set(names)
    for n, params in names.items():
        if params in (None, "import") or n.startswith("__"):
            continue
        sig = inspect.signature(getattr(mod, n))
        assert list(sig.parameters) == params, n


# ---------------------------------------------------------------- engine selection

def test_reader_engines_use_select_engine(monkeypatch):
    assert binary._engine("python") is binary.py_binary_scan
    assert binary._engine("cython") is bk.binary_scan
    assert trace_text._engine_scan("python") is trace_text.py_trace_scan
    assert trace_text._engine_scan("auto") is tk.trace_scan
    assert json_fast.available()
    for bad in ("bogus", "", None):
        with pytest.raises(EngineError):
            binary._engine(bad)
        with pytest.raises(EngineError):
            trace_text._engine_scan(bad)
    # not built: "auto" falls back to the twin, "cython" is a usage error
    monkeypatch.setattr(binary, "KERNELS", "damo_pipe.formats._not_built")
    monkeypatch.setattr(trace_text, "KERNELS", "damo_pipe.formats._not_built")
    monkeypatch.setattr(json_fast, "KERNELS", "damo_pipe.formats._not_built")
    assert binary._engine("auto") is binary.py_binary_scan
    assert trace_text._engine_scan("auto") is trace_text.py_trace_scan
    assert not json_fast.available()
    with pytest.raises(EngineError) as ei:
        binary._engine("cython")
    assert ei.value.exit_code == 2
    with pytest.raises(EngineError):
        trace_text._engine_scan("cython")
