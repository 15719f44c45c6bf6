"""damo 3.4.3's holistic reports (footprints, record_info, times, profile, holistic)
against its recorded outputs in ../shared/fixtures/damo-holistic (read at test time).

Every case runs in-process (both engines where the command has them); stdout and exit
code must equal damo's. The cases whose input is an access record are re-run on an
HDF5 archive made from it, with the memory footprints stored as the archive's side
tables (/collect/footprints, /collect/meminfo), which must print the same bytes.

Two parts of perf's output depend on the machine, not on us: the random tip line (the
compat checker compares it as one token, so do we) and the names of ``[vdso]`` symbols,
which perf finds only in the build-id cache of the machine that recorded the profile
(elsewhere it prints the address); ``[vdso]`` lines are compared without the symbol.
"""
from __future__ import annotations

import csv
import os
import re
import shlex
import shutil

import numpy as np
import pytest

from tests.golden.conftest import FIXTURES, require_shared

HOLISTIC = FIXTURES / "damo-holistic"
CASES_TSV = HOLISTIC / "cases.tsv"
HAVE_PERF = shutil.which("perf") is not None

TIP = re.compile(rb"^# \(Tip: .*\)$", re.M)
VDSO = re.compile(rb"^(.*\[vdso\] +\[\.\] ).*$", re.M)


def _rows():
    if not CASES_TSV.exists():
        return []
    with open(CASES_TSV, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


ROWS = _rows()


def _needs_perf(words):
    """profile runs perf; holistic prints perf's lines (the short report drops them
    without perf, which is not what damo printed here)."""
    return words[2] in ("profile", "holistic")


def _normal(b):
    return VDSO.sub(rb"\1<sym>", TIP.sub(b"# (Tip)", b.rstrip(b"\n")))


@pytest.fixture
def in_holistic(monkeypatch):
    require_shared(HOLISTIC)
    monkeypatch.chdir(HOLISTIC)


def _run(argv, capfd):
    from damo_pipe.analyze.cli import main
    capfd.readouterr()
    rc = main(argv)
    return rc, capfd.readouterr().out.encode()


def _check(row, rc, out):
    want = (HOLISTIC / row["expected"]).read_bytes()
    assert rc == int(row["exit_code"]), row["case"]
    assert _normal(out) == _normal(want), row["case"]


def _words(row):
    words = shlex.split(row["command"])
    assert words[0] == "damo" and words[1] == "report"
    if _needs_perf(words) and not HAVE_PERF and row["exit_code"] == "0":
        pytest.skip("perf is not installed")
    return words


def _engines(row):
    kind = shlex.split(row["command"])[2]
    return ["cython", "python"] if kind != "footprints" else ["cython"]


PARAMS = [pytest.param(r, e, id="%s-%s" % (r["case"], e)) for r in ROWS for e in _engines(r)]


@pytest.mark.parametrize("row, engine", PARAMS)
def test_case(row, engine, capfd, in_holistic):
    argv = _words(row)[1:]
    if engine != "cython":
        argv = argv + ["--engine", engine]
    rc, out = _run(argv, capfd)
    _check(row, rc, out)


def write_archive(path, records, footprints):
    """An archive of ``records`` whose side tables hold ``footprints`` (if not None) as
    damo-collect writes them (bytes; one footprints row per pid and time, one meminfo row
    per time)."""
    from damo_pipe.archive import ArchiveWriter
    with ArchiveWriter(path) as w:
        for rec in records:
            idx = w.add_record(rec)
            w.append(idx, rec)
            if rec.first_start_ns is not None:
                w.set_first_start(idx, rec.first_start_ns)
        if footprints is None:
            return
        statm = list(footprints.proc)
        tf = w.add_side_table("footprints", {"time_ns": np.int64, "pid": np.int64,
                                             **{c: np.uint64 for c in statm}})
        tm = w.add_side_table("meminfo", {"time_ns": np.int64,
                                          **{c: np.uint64 for c in footprints.sys}})
        times = footprints.time_ns.tolist()
        for k, t in enumerate(times):
            if footprints.has_sys[k]:
                tm.append(time_ns=t, **{c: int(v[k]) for c, v in footprints.sys.items()})
        for r, k in enumerate(footprints.proc_snapshot.tolist()):
            tf.append(time_ns=times[k], pid=int(footprints.pid[r]),
                      **{c: int(v[r]) for c, v in footprints.proc.items()})


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """recN.data -> recN.h5 (with recN.data.mem_footprint inside, if any), made on first use."""
    return {"dir": tmp_path_factory.mktemp("holistic-archives"), "paths": {}}


def _archive_of(archives, data):
    from damo_pipe.formats import read_records
    from damo_pipe.formats.footprints import read_mem_footprint
    h5 = archives["paths"].get(data)
    if h5 is None:
        h5 = archives["dir"] / (data.replace("/", "_") + ".h5")
        side = data + ".mem_footprint"
        write_archive(h5, read_records(data),
                      read_mem_footprint(side) if os.path.exists(side) else None)
        archives["paths"][data] = h5
    return str(h5)


ARCHIVE_ROWS = [pytest.param(r, id=r["case"]) for r in ROWS if r["case"] != "holi.fp.missing"]


@pytest.mark.parametrize("row", ARCHIVE_ROWS)
def test_case_from_archive(row, capfd, in_holistic, archives):
    words = _words(row)
    argv = words[1:]
    kind = words[2]
    if kind == "footprints":
        i = argv.index("--input") + 1
        data = argv[i][:-len(".mem_footprint")]
        argv[i] = _archive_of(archives, data)
    elif kind in ("record_info",):
        i = argv.index("--input") + 1
        argv[i] = _archive_of(archives, argv[i])
    elif kind in ("times", "profile"):
        i = argv.index("--inputs") + 1
        argv[i] = _archive_of(archives, argv[i])
    else:
        i = argv.index("--access_pattern") + 1
        data = argv[i]
        argv[i] = _archive_of(archives, data)
        if "--profile" not in argv:
            argv += ["--profile", data + ".profile"]
    rc, out = _run(argv, capfd)
    _check(row, rc, out)
