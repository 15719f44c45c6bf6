"""Golden tests of the readers and converters against the shared fixtures.

* every input under fixtures/damo/inputs and fixtures/kernel converts to an HDF5
  archive and back with its columns unchanged (both engines);
* each legacy binary decodes to the same records/snapshots/times/regions as damo
  2.0.1's own conversion beside it (``*.by201.jsonc``);
* ``convert_record_format`` cases of cases.tsv give damo 3.4.3's bytes;
* perf.data inputs go through ``perf script`` (skipped without perf).
"""
import shlex
import shutil

import numpy as np
import pytest

from damo_pipe.errors import RecordFormatError
from damo_pipe.sources import detect_format, read_records
from damo_pipe.model import REGION_DTYPES, SNAPSHOT_DTYPES
from tests.golden.conftest import DAMO_FIXTURES, KERNEL_FIXTURES, load_cases
from tests.support.engines import ENGINES

HAVE_PERF = shutil.which("perf") is not None


# Files of fixtures/kernel that describe the kernel (its sysfs tree, the tracepoints'
# format files, the recording's notes) and hold no DAMON trace event: not records.
NOT_RECORDS = ("meta.txt", "sysfs-*.txt", "tracefs-format-*.txt")


def _is_record(path):
    return path.parent != KERNEL_FIXTURES or not any(path.match(g) for g in NOT_RECORDS)


def _inputs(records):
    files = []
    for root in (DAMO_FIXTURES / "inputs", KERNEL_FIXTURES):
        if root.exists():
            files += sorted(p for p in root.rglob("*")
                            if p.is_file() and _is_record(p) == records)
    return files


INPUTS = _inputs(records=True)
INPUT_IDS = [str(p.relative_to(p.parents[1])) for p in INPUTS]
NON_RECORDS = _inputs(records=False)


def assert_same(a, b, *, meta=True):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.target_id == y.target_id
        if meta:
            assert (x.kdamond_idx, x.context_idx, x.scheme_idx, x.intervals, x.scheme_filters,
                    x.data_source) == (y.kdamond_idx, y.context_idx, y.scheme_idx, y.intervals,
                                       y.scheme_filters, y.data_source)
        assert x.first_start_ns == y.first_start_ns
        for f in SNAPSHOT_DTYPES:
            assert np.array_equal(getattr(x.snapshots, f), getattr(y.snapshots, f),
                                  equal_nan=f == "sample_interval_us"), f
        for f in REGION_DTYPES:
            assert np.array_equal(getattr(x.regions, f), getattr(y.regions, f)), f
        assert [x.regions.probe_hits_of(i) for i in range(x.nr_regions)] == \
            [y.regions.probe_hits_of(i) for i in range(y.nr_regions)]


@pytest.mark.parametrize("path", NON_RECORDS, ids=[p.name for p in NON_RECORDS])
def test_text_without_damon_events_is_no_record(path, engine):
    """A kernel text file without any DAMON event (a sysfs dump, a tracepoint format)
    is refused by name, never read as an empty record."""
    with pytest.raises(RecordFormatError, match="not a DAMON record") as exc:
        read_records(path, engine=engine)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("path", INPUTS, ids=INPUT_IDS)
def test_engines_agree(path, shared_dir):
    if detect_format(path) == "perf_data" and not HAVE_PERF:
        pytest.skip("perf is not installed")
    assert_same(read_records(path, engine="python"), read_records(path, engine="cython"))


@pytest.mark.parametrize("path", INPUTS, ids=INPUT_IDS)
def test_hdf5_roundtrip(path, engine, shared_dir, tmp_path):
    from damo_pipe.convert import convert_file
    if detect_format(path) == "perf_data" and not HAVE_PERF:
        pytest.skip("perf is not installed")
    orig = read_records(path, engine=engine)
    out = tmp_path / "a.h5"
    convert_file(path, out, "hdf5", engine=engine, chunk_regions=97)
    back = read_records(out)
    assert_same(orig, back)


@pytest.mark.parametrize("binary", ["legacy/damon.data.v2_real", "syn/bin_v2_2t.data"])
def test_binary_matches_damo_201_conversion(binary, engine, shared_dir):
    src = DAMO_FIXTURES / "inputs" / binary
    ref = DAMO_FIXTURES / "inputs" / (binary + ".by201.jsonc")
    if not ref.exists():
        ref = src.with_name(src.name.replace(".data", ".data.by201.jsonc"))
    ours = read_records(src, engine=engine)
    theirs = read_records(ref, engine="python")
    assert len(ours) == len(theirs) > 0
    for x, y in zip(ours, theirs):
        assert x.target_id == y.target_id
        assert x.nr_snapshots == y.nr_snapshots
        # damo 2.0.1 stored the truncated deduced start
        assert x.snapshots.start_ns.tolist() == y.snapshots.start_ns.tolist()
        assert x.snapshots.end_ns.tolist() == y.snapshots.end_ns.tolist()
        assert x.snapshots.total_bytes.tolist() == y.snapshots.total_bytes.tolist()
        for f in ("start", "end", "nr_accesses", "age"):
            assert getattr(x.regions, f).tolist() == getattr(y.regions, f).tolist()


def _conv_cases():
    return [pytest.param(c, id=c["case"]) for c in load_cases(r"\.(conv_|roundtrip_conv)")]


@pytest.mark.parametrize("case", _conv_cases())
def test_convert_record_format_cases(case, shared_dir, tmp_path):
    """Run the case's damo command lines with our CLI in-process; compare bytes."""
    from damo_pipe.analyze.cli import main
    if "perf.data " in case["command"] + " " and not HAVE_PERF:
        pytest.skip("perf is not installed")
    cmds = [c.strip() for c in case["command"].split("&&")]
    out_text = None
    for cmd in cmds:
        argv = shlex.split(cmd)
        if argv[0] == "cat":
            out_text = (tmp_path / argv[1]).read_bytes()
            continue
        assert argv[0] == "damo"
        argv = argv[1:]
        for i, a in enumerate(argv):
            if a.startswith("inputs/"):
                argv[i] = str(DAMO_FIXTURES / a)
            elif a.startswith("scratch/"):
                (tmp_path / "scratch").mkdir(exist_ok=True)
                argv[i] = str(tmp_path / a)
        assert main(argv) == 0
    want = (DAMO_FIXTURES / case["expected"]).read_bytes()
    assert out_text.rstrip(b"\n") == want.rstrip(b"\n")


def test_perf_data_kernel_capture(engine, kernel_fixtures):
    if not HAVE_PERF:
        pytest.skip("perf is not installed")
    a = read_records(kernel_fixtures / "perf-damon_aggregated.data", engine=engine)
    b = read_records(kernel_fixtures / "perf-script-damon_aggregated.txt", engine=engine)
    assert_same(a, b)
    assert a[0].nr_snapshots > 10 and (a[0].regions.age >= 0).all()


def test_perf_missing_is_external_tool_error(monkeypatch, damo_fixtures):
    from damo_pipe.errors import ExternalToolError
    from damo_pipe.formats import trace_text
    monkeypatch.setattr(trace_text, "PERF_CANDIDATES", ("definitely-not-perf-xyz",))
    with pytest.raises(ExternalToolError, match="perf"):
        read_records(damo_fixtures / "inputs/damo_test/perf.data")


def test_perf_failing_is_external_tool_error(tmp_path):
    from damo_pipe.errors import ExternalToolError
    if not HAVE_PERF:
        pytest.skip("perf is not installed")
    import struct
    p = tmp_path / "bad.data"
    # a header whose sections lie inside the file (it passes our check), one attr of
    # garbage: perf itself refuses it
    p.write_bytes(b"PERFILE2" + struct.pack("<QQ", 104, 136)
                  + struct.pack("<6Q", 104, 136, 240, 0, 0, 0) + bytes(32) + b"\xff" * 136)
    with pytest.raises(ExternalToolError, match="perf"):
        read_records(p)


def test_perf_data_sections_outside_the_file_are_refused_before_perf(tmp_path):
    """perf can spin forever on a damaged section table: such a file is refused with
    the byte offset of the bad field, without running perf."""
    import struct
    p = tmp_path / "cut.data"
    p.write_bytes(b"PERFILE2" + struct.pack("<QQ", 104, 136)
                  + struct.pack("<6Q", 104, 136, 240, 5000, 0, 0) + bytes(32) + b"\0" * 136)
    with pytest.raises(RecordFormatError, match="data section") as exc:
        read_records(p, input_type="perf_data")
    assert exc.value.offset == 40 and str(p) in str(exc.value)
    p.write_bytes(b"PERFILE2" + b"\xff" * 200)
    with pytest.raises(RecordFormatError, match="header size") as exc:
        read_records(p, input_type="perf_data")
    assert exc.value.offset == 8


def test_trace_pipe_capture(kernel_fixtures):
    r = read_records(kernel_fixtures / "trace_pipe-damon_aggregated.txt")[0]
    text = (kernel_fixtures / "trace_pipe-damon_aggregated.txt").read_text().splitlines()
    first = text[0].split()
    ts_idx = 2 if first[2].endswith(":") else 3
    assert r.snapshots.end_ns[0] == int(float(first[ts_idx][:-1]) * 1e9)
    assert r.nr_regions == sum(1 for l in text if "damon_aggregated:" in l)


def test_hostile_truncations_of_fixtures(shared_dir, tmp_path):
    """Every fixture cut in the middle either reads or raises RecordFormatError."""
    for src in INPUTS:
        fmt = detect_format(src)
        if fmt == "perf_data":
            continue
        data = src.read_bytes()
        for frac in (0.3, 0.77):
            p = tmp_path / "cut"
            p.write_bytes(data[: int(len(data) * frac)])
            for engine in ENGINES:
                try:
                    read_records(p, input_type=fmt, engine=engine)
                except RecordFormatError as e:
                    assert str(p) in str(e)
                    assert (e.offset is not None or e.line is not None
                            or fmt == "json_compressed"
                            or "not a DAMON record" in str(e)), e


def _opt(col):
    return None if col is None else [None if v != v else v for v in col.tolist()]


def test_hdf5_roundtrip_stated_columns(damo_fixtures, tmp_path):
    from damo_pipe.convert import convert_file
    src = damo_fixtures / "inputs" / "damonstat.jsonc"
    orig = read_records(src)[0]
    assert orig.regions.age_usec is not None
    convert_file(src, tmp_path / "a.h5", "hdf5")
    back = read_records(tmp_path / "a.h5")[0]
    assert _opt(back.regions.age_usec) == _opt(orig.regions.age_usec)
    assert _opt(back.regions.nr_accesses_percent) == _opt(orig.regions.nr_accesses_percent)
