"""`report access` against damo 3.4.3's recorded outputs (fixtures read from ../shared).

Every single-command ``damo report access`` case (acc.*, damo_test.snapshot_*,
*access_raw*) runs in-process on both engines (Cython kernels and the pure-Python
twins); stdout must equal damo's bytes exactly (including the pager newline rule, AQ1)
and the exit code must match. The same cases are re-run on an HDF5 archive made from
the input, which must print the same bytes.
"""
from __future__ import annotations

import os
import shlex

import pytest

from tests.golden.conftest import DAMO_FIXTURES, load_cases, require_shared

CASE_RE = r"^acc\.|snapshot_|access_raw"



def _single_access_cases():
    out = []
    for row in load_cases(CASE_RE):
        cmd = row["command"]
        if "&&" in cmd or "|" in cmd or not cmd.startswith("damo report access"):
            continue
        out.append(pytest.param(row, id=row["case"]))
    return out


CASES = _single_access_cases()


def _run(argv, capsys):
    from damo_pipe.analyze.cli import main
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out.encode()


def _argv(row, engine):
    words = shlex.split(row["command"])
    assert words[:3] == ["damo", "report", "access"]
    return ["report", "access"] + words[3:] + ["--engine", engine]


@pytest.mark.parametrize("row", CASES)
def test_access_case(row, engine, capsys, monkeypatch):
    require_shared(DAMO_FIXTURES)
    if engine == "cython":
        pytest.importorskip("damo_pipe.analyze._access_kernels")
    monkeypatch.chdir(DAMO_FIXTURES)
    rc, out = _run(_argv(row, engine), capsys)
    want = row["expected_path"].read_bytes()
    assert rc == int(row["exit_code"])
    assert out == want


def _hdf5_cases():
    """One case per input file (single --input, exit 0): rerun on an HDF5 archive of it."""
    out = []
    seen = set()
    for p in CASES:
        row = p.values[0]
        words = shlex.split(row["command"])
        if words.count("--input") != 1 or row["exit_code"] != "0" or "--ls_region_format_keywords" in words:
            continue
        if row["expected_path"].read_bytes().startswith(b"No record in"):
            continue    # the message names the input file
        key = (words[words.index("--input") + 1], "--raw_form" in words)
        if key in seen:
            continue
        seen.add(key)
        out.append(p)
    return out


@pytest.mark.parametrize("row", _hdf5_cases())
def test_access_case_on_hdf5(row, capsys, monkeypatch, tmp_path):
    require_shared(DAMO_FIXTURES)
    pytest.importorskip("h5py")
    from damo_pipe.archive import write_records
    from damo_pipe.formats import read_records
    words = shlex.split(row["command"])
    i = words.index("--input")
    src = DAMO_FIXTURES / words[i + 1]
    h5 = tmp_path / "record.h5"
    write_records(read_records(src), h5)
    words[i + 1] = str(h5)
    monkeypatch.chdir(DAMO_FIXTURES)
    rc, out = _run(["report", "access"] + words[3:], capsys)
    want = row["expected_path"].read_bytes()
    assert rc == int(row["exit_code"])
    assert out == want


def test_cases_present():
    require_shared(DAMO_FIXTURES)
    assert len(CASES) >= 120, "the access case set shrank: %d cases" % len(CASES)
    assert os.path.isdir(DAMO_FIXTURES / "inputs")


#: option sets beyond the recorded cases: both engines must print the same bytes
VARIANTS = [
    [],
    ["--style", "temperature-percentiles", "--percentiles_range", "0", "101", "5"],
    ["--style", "recency-percentiles", "--raw_number"],
    ["--style", "temperature-sz-hist", "--hist_logscale", "--temperature_weights", "1", "7", "3"],
    ["--style", "recency-sz-hist", "--hist_cumulate"],
    ["--style", "hot", "--snapshot_heatmap_static", "--snapshot_heatmap_width", "37"],
    ["--region_box", "--region_box_scales", "linear", "log", "linear",
     "--sort_regions_by", "age", "temperature", "--sort_regions_dsc", "temperature"],
    ["--format", "set", "region", "<index> <temperature> <access rate> <end address>",
     "--format", "set", "snapshot_tail",
     "<positive access samples ratio>|<intervals tuning status>|<filters passed heatmap>"],
]

DIFF_INPUTS = ["multi1t.jsonc", "multi2t.jsonc", "goal.jsonc", "ops_filters_2s.jsonc",
               "nonops_filters.jsonc", "oneregion.jsonc", "flat.jsonc", "pct.jsonc",
               "probes.jsonc", "zero_passed.jsonc", "damo_test/damon.data.snapshot.active",
               "damo_test/damon.data.snapshot.hugepage"]


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
@pytest.mark.parametrize("name", DIFF_INPUTS)
def test_engines_agree(name, variant, capsys, monkeypatch):
    require_shared(DAMO_FIXTURES)
    pytest.importorskip("damo_pipe.analyze._access_kernels")
    path = DAMO_FIXTURES / "inputs" / name
    if not path.exists():
        pytest.skip("%s not found" % path)
    monkeypatch.chdir(DAMO_FIXTURES)
    base = ["report", "access", "--input", str(path)] + VARIANTS[variant]
    rc_c, out_c = _run(base + ["--engine", "cython"], capsys)
    rc_p, out_p = _run(base + ["--engine", "python"], capsys)
    assert (rc_c, out_c) == (rc_p, out_p)
    assert rc_c in (0, 1)
