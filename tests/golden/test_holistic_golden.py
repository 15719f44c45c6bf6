"""damo 3.4.3's holistic reports (footprints, record_info, times, profile, holistic)
against its recorded outputs in ../shared/fixtures/damo-holistic (read at test time).

Every case runs in-process (both engines where the command has them); stdout and exit
code must equal damo's. Every case is re-run on HDF5 archives made from its inputs by
``convert`` (damo's side files carried into the archive: footprint tables and the CPU
profile), with the side files left out of the command line where the archive holds
them; they must print the same bytes.

Two parts of perf's output depend on the machine, not on us: the random tip line (the
compat checker compares it as one token, so do we) and the names of ``[vdso]`` symbols,
which perf finds only in the build-id cache of the machine that recorded the profile
(elsewhere it prints the address); ``[vdso]`` lines are compared without the symbol.
"""
from __future__ import annotations

import csv
import re
import shlex
import shutil

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


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """recN.data -> recN.h5 made by ``convert`` (damo's side files recN.data.mem_footprint
    and recN.data.profile, if any, inside), on first use, in a directory of its own (so
    that no damo side file lies beside an archive)."""
    return {"dir": tmp_path_factory.mktemp("holistic-archives"), "paths": {}}


def _archive_of(archives, data):
    from damo_pipe.convert import convert_file
    h5 = archives["paths"].get(data)
    if h5 is None:
        h5 = archives["dir"] / (data.replace("/", "_") + ".h5")
        convert_file(data, str(h5), "hdf5")
        archives["paths"][data] = h5
    return str(h5)


ARCHIVE_ROWS = [pytest.param(r, id=r["case"]) for r in ROWS if r["case"] != "holi.fp.missing"]


def _archive_argv(words, archives):
    """damo's command line with every record file replaced by its archive: footprint
    files by the archive of their record, a record's own profile dropped (the archive
    carries it); profiles of other records stay explicit."""
    argv = words[1:]
    kind = words[2]
    side = {".mem_footprint", ".profile"}

    def record_of(path):
        for sfx in side:
            if path.endswith(sfx):
                return path[:-len(sfx)]
        return path

    if kind in ("footprints", "record_info"):
        i = argv.index("--input") + 1
        argv[i] = _archive_of(archives, record_of(argv[i]))
    elif kind in ("times", "profile"):
        i = argv.index("--inputs") + 1
        data = argv[i]
        argv[i] = _archive_of(archives, data)
        if i + 1 < len(argv) and argv[i + 1] == data + ".profile":
            del argv[i + 1]
    else:
        i = argv.index("--access_pattern") + 1
        argv[i] = _archive_of(archives, argv[i])
        if "--footprints" in argv:
            j = argv.index("--footprints") + 1
            argv[j] = _archive_of(archives, record_of(argv[j]))
    return argv


@pytest.mark.parametrize("row", ARCHIVE_ROWS)
def test_case_from_archive(row, capfd, in_holistic, archives):
    """The same bytes from archives made by ``convert``: footprints from the archive's
    tables, the CPU profile (``report profile``/``holistic`` without --profile) from the
    perf.data stored in it."""
    words = _words(row)
    argv = _archive_argv(words, archives)
    if HAVE_PERF and words[2] in ("profile", "holistic") and "--profile" not in argv:
        from damo_pipe.archive.profile import profile_attrs
        assert profile_attrs(argv[argv.index("--inputs" if words[2] == "profile"
                                             else "--access_pattern") + 1]) is not None
    rc, out = _run(argv, capfd)
    _check(row, rc, out)


def test_profile_on_another_clock(capfd, in_holistic, tmp_path):
    """An archive whose record is on another clock than its perf.data (``time_offset_ns``):
    ``report profile`` on it gives damo's bytes, perf seeing its own times."""
    if not HAVE_PERF:
        pytest.skip("perf is not installed")
    from damo_pipe.archive import write_records
    from damo_pipe.archive.profile import attach_profile
    from damo_pipe.formats import read_records
    from damo_pipe.formats.perf_samples import read_perf_samples
    offset = 1_700_000_000 * 10**9          # boot clock -> a wall-clock-like time
    recs = read_records("inputs/holi/rec1.data")
    for r in recs:
        r.snapshots.start_ns += offset
        r.snapshots.end_ns += offset
        if r.first_start_ns is not None:
            r.first_start_ns += offset
    h5 = str(tmp_path / "shifted.h5")
    write_records(recs, h5)
    prof = "inputs/holi/rec1.data.profile"
    attach_profile(h5, prof, read_perf_samples(prof), attrs={"time_offset_ns": offset})
    row = next(r for r in ROWS if r["case"] == "holi.prof.hot")
    argv = shlex.split(row["command"])[1:]
    i = argv.index("--inputs") + 1
    argv[i:i + 2] = [h5]
    rc, out = _run(argv, capfd)
    _check(row, rc, out)
