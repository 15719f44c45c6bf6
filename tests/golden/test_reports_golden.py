"""`report heatmap|wss|nr_regions` and `adjust` against damo 3.4.3's recorded outputs.

Every fixture case of these commands runs in-process (both engines for the single
command cases); stdout and exit code must equal damo's (heat column of raw heatmaps
within 1e-9 relative, as the compat checker allows). The single-command cases are
re-run on an HDF5 archive made from the input, which must print the same bytes.
The ``adj_`` cases pipe adjust's output into ``report access --raw_form``.
"""
from __future__ import annotations

import math
import os
import shlex

import pytest

from tests.golden.conftest import DAMO_FIXTURES, load_cases, require_shared

CASE_RE = r"\.(hm_|wss_|nr_|adj_)"


def _cases(single):
    out = []
    for row in load_cases(CASE_RE):
        cmd = row["command"]
        chained = "&&" in cmd
        if chained != (not single):
            continue
        out.append(pytest.param(row, id=row["case"]))
    return out


SINGLE = _cases(single=True)
CHAINED = _cases(single=False)


def _heat_close(want, got, rtol=1e-9):
    wl, gl = want.split(b"\n"), got.split(b"\n")
    if len(wl) != len(gl):
        return False
    for a, b in zip(wl, gl):
        if a == b:
            continue
        fa, fb = a.split(b"\t"), b.split(b"\t")
        if len(fa) != 3 or len(fb) != 3 or fa[:2] != fb[:2]:
            return False
        x, y = float(fa[2]), float(fb[2])
        if math.isnan(x) or math.isnan(y):
            if math.isnan(x) != math.isnan(y):
                return False
            continue
        if abs(x - y) > rtol * max(abs(x), abs(y), 1e-12):
            return False
    return True


def _run(argv, capsys):
    from damo_pipe.analyze.cli import main
    rc = main(argv)
    return rc, capsys.readouterr().out.encode()


def _check(row, rc, out):
    want = row["expected_path"].read_bytes()
    assert rc == int(row["exit_code"])
    got, exp = out.rstrip(b"\n"), want.rstrip(b"\n")
    if got != exp and ".hm_raw" in row["case"]:
        assert _heat_close(exp, got), row["case"]
    else:
        assert got == exp, row["case"]


@pytest.fixture
def in_fixtures(monkeypatch):
    require_shared(DAMO_FIXTURES)
    monkeypatch.chdir(DAMO_FIXTURES)


@pytest.mark.parametrize("row", SINGLE)
def test_single_command_case(row, engine, capsys, in_fixtures):
    words = shlex.split(row["command"])
    assert words[0] == "damo"
    argv = words[1:]
    if engine == "python" and ("nr_regions" not in argv):
        argv = argv + ["--engine", "python"]
    rc, out = _run(argv, capsys)
    _check(row, rc, out)


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """One archive per fixture input, made on first use."""
    return {"dir": tmp_path_factory.mktemp("archives"), "paths": {}}


@pytest.mark.parametrize("row", SINGLE)
def test_single_command_case_from_archive(row, capsys, in_fixtures, archives):
    from damo_pipe.archive import write_records
    from damo_pipe.formats import read_records
    words = shlex.split(row["command"])
    inp = row["input"]
    h5 = archives["paths"].get(inp)
    if h5 is None:
        h5 = archives["dir"] / ("a%d.h5" % len(archives["paths"]))
        write_records(read_records(inp), h5)
        archives["paths"][inp] = h5
    argv = [str(h5) if w == inp else w for w in words[1:]]
    rc, out = _run(argv, capsys)
    _check(row, rc, out)


@pytest.mark.parametrize("row", CHAINED)
def test_adjust_then_access(row, capsys, in_fixtures, tmp_path):
    pytest.importorskip("damo_pipe.analyze.commands.report_access")
    first, second = [shlex.split(p) for p in row["command"].split("&&")]
    out_path = str(tmp_path / "adjusted")

    def fix(words):
        return [out_path if w.startswith("scratch/") else w for w in words[1:]]
    rc, _ = _run(fix(first), capsys)
    assert rc == 0
    assert os.path.exists(out_path)
    rc, out = _run(fix(second), capsys)
    _check(row, rc, out)
