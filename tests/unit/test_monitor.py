"""``damo-collect monitor`` (damo_pipe.collect.monitor) against the fake DAMON sysfs and a
fake perf: N reports of consecutive rounds, each with its own profile, and every way
it ends (count, target exit, signal) leaves no kdamond, no ownership entry and no file;
``ongoing`` reads only a kdamond of ``damo-collect start`` and leaves it running. The
rounds are rendered as the damo-analyze reports damo's monitor runs.
"""
import io
import os
import signal
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from damo_pipe.collect.kdamond import MonitoringSpec
from damo_pipe.collect.monitor import (MonitorOptions, check_ongoing, monitor,
                                       render_round)
from damo_pipe.collect.profile import ProfileOptions
from damo_pipe.collect.recording import RecordTarget
from damo_pipe.errors import DamonBusyError, UsageError
from tests.support.recording import (PADDR, assert_cleaned_up, fake, owner, paddr_spec,  # noqa: F401
                                     perf, perf_events, root, tree)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "damo_pipe" / "data" / "sample.h5"


@pytest.fixture(autouse=True)
def no_real_sysfs(monkeypatch, root):
    """Nothing here may reach the real DAMON sysfs or the real ownership file."""
    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")
    monkeypatch.setenv("DAMO_PIPE_STATE_FILE", os.path.join(root, "owned.json"))


def run_monitor(tree, owner, tmp_path, *, target=PADDR, spec_builder=paddr_spec, **opts):
    texts = []
    opts.setdefault("delay", 0.4)
    opts.setdefault("flush_interval", 0.1)
    workdir = tmp_path / "rounds"
    workdir.mkdir(exist_ok=True)
    result = monitor(target, MonitorOptions(workdir=str(workdir), **opts), tree=tree,
                     ownership=owner, spec_builder=spec_builder, emit=texts.append)
    return result, texts, sorted(os.listdir(workdir))


def test_holistic_views_with_hotspots_then_clean(fake, tree, owner, tmp_path, perf):
    result, texts, left = run_monitor(
        tree, owner, tmp_path, count=2,
        cpu_profile=ProfileOptions(perf=perf, stop_timeout=20))
    assert result.reason == "count reached" and result.nr_reports == 2 and len(texts) == 2
    for t in texts:
        assert t.startswith("# Heatmap\n# target 0, address range ")
        assert "\n# Memory Footprints Distribution\n" in t
        assert "\n       wss " in t and "\n  sys_used " in t
        assert "\n# Hotspot functions\n" in t and "[.] hot_loop" in t
        assert t.endswith("\n\n")
    # each view shows its own DELAY seconds: "# y-axis: time [..., ...) (400 ms)"
    assert "(400 ms)" in texts[0].split("# y-axis: time", 1)[1].split("\n")[0]
    ev = perf_events(perf)
    assert ev[:2] == ["started", "ready"] and ev[-2:] == ["SIGINT", "exit"]
    assert ev.count("SIGUSR2") >= 2
    assert left == []          # rounds, profile parts: all gone
    assert_cleaned_up(fake, tree, owner)


def test_heats_and_wss_of_a_command(fake, tree, owner, tmp_path):
    started = []

    def spec(pids):
        started.extend(pids)
        return MonitoringSpec(ops="vaddr", pids=pids)
    cmd = RecordTarget(command=["sleep", "30"])
    result, texts, left = run_monitor(tree, owner, tmp_path, target=cmd, spec_builder=spec,
                                      count=1, report_type="heats")
    assert len(texts) == 1 and texts[0] and not any(
        ln.startswith("#") for ln in texts[0].splitlines())
    assert len(texts[0].splitlines()) == 10            # damo's 10 rows
    with pytest.raises(ProcessLookupError):           # the command was terminated
        os.kill(started[0], 0)
    result, texts, left = run_monitor(tree, owner, tmp_path, target=cmd, spec_builder=spec,
                                      count=1, report_type="wss")
    # damo's report wss leaves the first 20 snapshots out: a short round may have none
    assert texts[0].startswith("# target_id\t0\n# <percentile> <wss>\n")
    assert texts[0].endswith("|\n\n") or texts[0].endswith("# no snapshot\n\n")
    assert left == []
    assert_cleaned_up(fake, tree, owner)


def test_target_exit_shows_the_last_round_and_ends(fake, tree, owner, tmp_path):
    def spec(pids):
        return MonitoringSpec(ops="vaddr", pids=pids)
    result, texts, left = run_monitor(
        tree, owner, tmp_path, target=RecordTarget(command=["sleep", "1.1"]),
        spec_builder=spec, report_type="wss", delay=0.4)
    assert result.reason == "target exited"
    assert 2 <= len(texts) <= 4 and result.nr_reports == len(texts)
    assert left == []
    assert_cleaned_up(fake, tree, owner, turned_off=False)


def test_ongoing_reads_only_what_start_left_running(fake, tree, owner, tmp_path):
    from damo_pipe.collect.kdamond import KdamondSession
    s = KdamondSession.create(tree, owner, paddr_spec([]), mode="start")
    try:
        result, texts, _ = run_monitor(tree, owner, tmp_path, target=RecordTarget(ongoing=True),
                                       spec_builder=None, count=1, report_type="wss")
        assert len(texts) == 1
        assert tree.read("kdamonds/0/state") == "on"          # left running
        assert owner.load()[0]["mode"] == "start"
    finally:
        s.stop()
    s = KdamondSession.create(tree, owner, paddr_spec([]), mode="record")
    try:
        with pytest.raises(DamonBusyError, match="belongs to `damo-collect record`"):
            check_ongoing(tree, owner)
        with pytest.raises(DamonBusyError, match="DAMON is in use"):
            run_monitor(tree, owner, tmp_path, count=1)      # a new kdamond: refused
        assert tree.read("kdamonds/0/state") == "on"
    finally:
        s.stop()
    assert_cleaned_up(fake, tree, owner)


def test_options_are_checked():
    with pytest.raises(UsageError, match="report_type"):
        MonitorOptions(report_type="heatmap")
    with pytest.raises(UsageError, match="delay"):
        MonitorOptions(delay=0)
    with pytest.raises(UsageError, match="count"):
        MonitorOptions(count=-1)


def _analyze(*args):
    from damo_pipe.analyze.cli import main
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main([str(a) for a in args]) == 0
    return buf.getvalue()


def test_rounds_render_like_the_reports_damo_monitor_runs():
    heats = _analyze("report", "heatmap", "--input", SAMPLE, "--resol", "10", "80",
                     "--time_range", "-3.000000 s", "0 s", "guided_end")
    assert render_round(str(SAMPLE), "heats", 3.0) == "".join(
        ln + "\n" for ln in heats.strip().split("\n") if not ln.startswith("#"))
    wss = _analyze("report", "wss", "--input", SAMPLE)
    assert render_round(str(SAMPLE), "wss", 3.0) == wss + "\n"
    hol = _analyze("report", "holistic", "--access_pattern", SAMPLE, "--perf_path",
                   "/nonexistent/perf", "--heatmap_time_last_n_sec", "3")
    assert render_round(str(SAMPLE), "holistic", 3.0) == hol + "\n"   # no profile: no hotspots
    assert "# y-axis: time" in hol and "(3 s)" in hol


def test_cli_sigterm_ends_cleanly(fake, tree, tmp_path, perf):
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path / "tmp"))
    os.mkdir(tmp_path / "tmp")
    # stderr into a file: a pipe nobody reads could fill and block the monitor
    err_path = tmp_path / "stderr"
    with open(err_path, "w") as err_file:
        p = subprocess.Popen([sys.executable, "-m", "damo_pipe.collect.cli", "monitor",
                              "--sysfs_root", fake.root, "paddr", "--delay", "0.4",
                              "--perf_path", perf, "--flush_interval", "0.1"],
                             env=env, stdout=subprocess.PIPE, stderr=err_file, text=True)
    try:
        lines = [p.stdout.readline()]
        assert lines[0] == "# Heatmap\n", err_path.read_text()
        # the first round with hotspots; a bounded wait (rounds come every 0.4 s)
        while lines[-1] and "hot_loop" not in lines[-1] and len(lines) < 2000:
            lines.append(p.stdout.readline())
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    err = err_path.read_text()
    assert p.returncode == 0, err
    assert "[.] hot_loop" in lines[-1]
    assert tree.read("kdamonds/nr_kdamonds") == "0"
    assert os.listdir(tmp_path / "tmp") == []        # the rounds' directory is gone
    assert perf_events(perf)[-2:] == ["SIGINT", "exit"]
