"""A missing input is one wording and exit status 1 for every command of damo-analyze and
damo-collect: ``PROG: error: FILE: no such file`` (a hint may follow in parentheses).
Exit status 2 stays for usage errors. damo's recorded cases agree (holi.fp.missing:
nothing on stdout, status 1); the table below must name every subcommand, so that a new
one cannot skip the rule."""
import os

import pytest

from damo_pipe.analyze import cli as analyze_cli
from damo_pipe.analyze.commands.report import KINDS
from damo_pipe.collect import cli as collect_cli
from damo_pipe.data import sample_path

SAMPLE = str(sample_path())

#: damo-analyze: (command words..., the missing path)
ANALYZE = [
    (["info", "{m}"], "{m}"),
    (["convert", "{m}", "{d}/out.h5"], "{m}"),
    (["convert", "{m}", SAMPLE, "{d}/outdir"], "{m}"),
    (["convert_record_format", "--record_file", "{m}", "--format", "json"], "{m}"),
    (["report", "heatmap", "--input", "{m}"], "{m}"),
    (["report", "heatmap", "--input", "{m}", "--output", "{d}/h.png"], "{m}"),
    (["report", "wss", "--input", "{m}"], "{m}"),
    (["report", "nr_regions", "--input", "{m}"], "{m}"),
    (["report", "access", "--input", "{m}"], "{m}"),
    (["report", "html", "--input", "{m}", "--output", "{d}/r.html"], "{m}"),
    (["report", "footprints", "--input", "{m}"], "{m}"),
    (["report", "record_info", "--input", "{m}"], "{m}"),
    (["report", "times", "--inputs", "{m}", "{m}.profile"], "{m}"),
    (["report", "profile", "--inputs", "{m}", "{m}.profile"], "{m}"),
    (["report", "holistic", "--access_pattern", "{m}"], "{m}"),
    (["report", "holistic", "--access_pattern", SAMPLE, "--footprints", "{m}"], "{m}"),
    (["adjust", "--input", "{m}", "--output", "{d}/adj.json"], "{m}"),
    (["diff", "{m}", SAMPLE], "{m}"),
    (["diff", SAMPLE, "{m}", "--json"], "{m}"),
]

#: damo-collect: its inputs are the DAMON sysfs tree, a tracefs, the command to run
COLLECT = [
    (["status", "--sysfs_root", "{m}"], "{m}"),
    (["stop", "--sysfs_root", "{m}"], "{m}"),
    (["start", "--sysfs_root", "{m}", "paddr"], "{m}"),
    (["snapshot", "--sysfs_root", "{m}"], "{m}"),
    (["record", "--sysfs_root", "{m}", "-o", "{d}/r.h5", "paddr"], "{m}"),
    (["monitor", "--sysfs_root", "{m}", "--count", "1", "paddr"], "{m}"),
]


def _fill(words, d):
    m = os.path.join(d, "missing.data")
    return [w.format(m=m, d=d) for w in words]


def test_every_subcommand_is_in_the_table():
    # batch: its own test; serve reads no record (tests/unit/test_serve.py)
    named = {c[0][0] for c in ANALYZE} | {"report", "batch", "serve"}
    assert {n for n, _ in analyze_cli.COMMANDS} <= named
    assert {k for k, _ in KINDS} <= {c[0][1] for c in ANALYZE if c[0][0] == "report"}
    assert {n for n, _ in collect_cli.COMMANDS} <= {c[0][0] for c in COLLECT}


@pytest.mark.parametrize("words,missing", ANALYZE, ids=[" ".join(c[0][:2]) for c in ANALYZE])
def test_damo_analyze(tmp_path, capsys, monkeypatch, words, missing):
    monkeypatch.chdir(tmp_path)
    rc = analyze_cli.main(_fill(words, str(tmp_path)))
    out, err = capsys.readouterr()
    lines = [x for x in err.splitlines() if x.strip()]
    want = "damo-analyze: error: %s: no such file" % _fill([missing], str(tmp_path))[0]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith(want), (rc, err)
    assert out == ""
    assert os.listdir(tmp_path) == []     # nothing written


def test_damo_analyze_batch(tmp_path, capsys):
    m = str(tmp_path / "missing.data")
    rc = analyze_cli.main(["batch", m, "--out", str(tmp_path / "out"), "--threads",
                           "--no_progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "damo-analyze: failed: %s: no such file\n" % m in err


def test_the_default_record_file_too(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert analyze_cli.main(["convert_record_format"]) == 1
    assert capsys.readouterr().err.strip() == "damo-analyze: error: damon.data: no such file"


@pytest.mark.parametrize("words,missing", COLLECT, ids=[c[0][0] for c in COLLECT])
def test_damo_collect(tmp_path, capsys, monkeypatch, words, missing):
    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")
    monkeypatch.setenv("DAMO_PIPE_STATE_FILE", str(tmp_path / "owned.json"))
    rc = collect_cli.main(_fill(words, str(tmp_path)))
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    want = "damo-collect: error: %s: no such file" % _fill([missing], str(tmp_path))[0]
    assert rc == 1 and lines == [want], (rc, err)


def test_damo_collect_missing_command_and_tracefs(tmp_path, capsys, monkeypatch):
    from tests.support.fake_kernel import FakeKernel
    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")
    monkeypatch.setenv("DAMO_PIPE_STATE_FILE", str(tmp_path / "owned.json"))
    k = FakeKernel(str(tmp_path / "admin"), nr_regions=10).start()
    try:
        base = ["record", "--sysfs_root", k.root, "-o", str(tmp_path / "r.h5"), "--timeout", "1"]
        cmd = str(tmp_path / "no-such-program")
        assert collect_cli.main(base + ["--", cmd]) == 1
        assert capsys.readouterr().err.strip() == "damo-collect: error: %s: no such file" % cmd
        tfs = str(tmp_path / "no-tracefs")
        assert collect_cli.main(base + ["--tracer", "tracefs", "--tracefs_root", tfs,
                                        "paddr"]) == 1
        assert capsys.readouterr().err.strip() == "damo-collect: error: %s: no such file" % tfs
        with open(os.path.join(k.root, "kdamonds", "nr_kdamonds")) as f:
            assert f.read().strip() == "0"
    finally:
        k.stop()
