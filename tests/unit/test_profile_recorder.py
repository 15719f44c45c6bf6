"""The CPU-profile side recorder (damo_pipe.collect.profile) in recordings against the
fake DAMON sysfs, with a fake perf (tests/support/fake_perf.py) for the lifecycle: perf
started, SIGUSR2 per archive file, SIGINT at the end, the parts stored in their
archives and deleted; perf dying early, starting slowly or missing; a SIGKILLed
collector. One test uses the real perf on a process of its own (cpu-clock).
"""
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from damo_pipe.archive import read_archive_records
from damo_pipe.archive.profile import has_profile, read_profile
from damo_pipe.collect.kdamond import MonitoringSpec
from damo_pipe.collect.profile import (ProfileOptions, ProfileRecorder, catches_sigusr2,
                                       check_do_record, perf_dump_paths, profile_options_for)
from damo_pipe.collect.recording import Recording, RecordingOptions, RecordTarget
from damo_pipe.errors import UsageError
from tests.support.collect import cli, committed, spawn_collector, wait_until
from tests.support.recording import (PADDR, assert_cleaned_up, fake, owner, paddr_spec,  # noqa: F401
                                     perf, perf_events, root, tree)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_real_sysfs(monkeypatch, root):
    """Nothing here may reach the real DAMON sysfs or the real ownership file."""
    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")
    monkeypatch.setenv("DAMO_PIPE_STATE_FILE", os.path.join(root, "owned.json"))


def record(tree, owner, tmp_path, perf, *, target=PADDR, spec_builder=paddr_spec, name="r.h5",
           **opts):
    prof = opts.pop("profile", None) or ProfileOptions(perf=perf, stop_timeout=20)
    opts.setdefault("timeout", 1.0)
    opts.setdefault("flush_interval", 0.1)
    options = RecordingOptions(output=str(tmp_path / name), cpu_profile=prof, **opts)
    return Recording(target, options, tree=tree, ownership=owner,
                     spec_builder=spec_builder).run()


def leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if ".profile" in p.name)


def test_profile_stored_in_the_archive_and_perf_stopped_with_sigint(fake, tree, owner,
                                                                   tmp_path, perf):
    t0 = time.time_ns()
    result = record(tree, owner, tmp_path, perf)
    t1 = time.time_ns()
    assert result.reason == "timeout"
    assert perf_events(perf) == ["started", "ready", "SIGINT", "exit"]
    samples, attrs = read_profile(tmp_path / "r.h5")
    assert len(samples) > 20
    assert samples.symbols == ["hot_loop"] and samples.dsos == ["/usr/bin/fake"]
    # same clock as the snapshots: the wall clock
    assert t0 <= int(samples.time_ns[0]) and int(samples.time_ns[-1]) <= t1
    snaps = read_archive_records(tmp_path / "r.h5")[0].snapshots
    assert abs(int(snaps.end_ns[0]) - int(samples.time_ns[0])) < 5 * 10 ** 9
    assert attrs["perf_clock"] == "realtime" and attrs["scope"] == "system"
    assert "-a -k CLOCK_REALTIME --switch-output=signal" in attrs["perf_command"]
    assert leftovers(tmp_path) == []          # the part was deleted once stored
    summary = result.side_summaries["cpu_profile"]
    assert summary["files"][0]["nr_samples"] == len(samples)
    assert summary["startup_seconds"] is not None and summary["left"] == []
    assert_cleaned_up(fake, tree, owner)


def test_each_rotated_archive_gets_its_own_profile(fake, tree, owner, tmp_path, perf):
    result = record(tree, owner, tmp_path, perf, timeout=1.6, rotate_interval=0.5)
    assert len(result.paths) >= 3
    assert perf_events(perf).count("SIGUSR2") == len(result.paths) - 1
    spans = []
    for p in result.paths:
        samples, _ = read_profile(p)
        assert len(samples) > 5, p
        spans.append((int(samples.time_ns[0]), int(samples.time_ns[-1])))
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end < start               # consecutive, not overlapping
    assert leftovers(tmp_path) == []


def test_bytes_only_and_sampling_frequency(fake, tree, owner, tmp_path, perf):
    from damo_pipe.archive.profile import extract_perf_data
    record(tree, owner, tmp_path, perf, timeout=0.6,
           profile=ProfileOptions(perf=perf, samples=False, freq=99))
    samples, attrs = read_profile(tmp_path / "r.h5")
    assert samples is None and "samples_error" not in attrs
    assert " -F 99" in attrs["perf_command"]
    data = extract_perf_data(tmp_path / "r.h5", tmp_path / "x.data")
    assert Path(data).read_text().count("hot_loop") > 5
    assert leftovers(tmp_path) == []


def test_a_part_without_samples_keeps_its_bytes(fake, tree, owner, tmp_path, perf):
    from damo_pipe.formats.perf_samples import ProfileSamples
    rec = ProfileRecorder(ProfileOptions(perf=perf), reader=lambda p, perf: ProfileSamples.empty())
    options = RecordingOptions(output=str(tmp_path / "r.h5"), timeout=0.5, flush_interval=0.1)
    Recording(PADDR, options, tree=tree, ownership=owner, spec_builder=paddr_spec,
              side_recorders=[rec]).run()
    samples, attrs = read_profile(tmp_path / "r.h5")
    assert samples is None and attrs["nr_samples"] == 0 and "samples_error" not in attrs
    assert leftovers(tmp_path) == []


def test_perf_dying_early_warns_and_the_recording_goes_on(fake, tree, owner, tmp_path, perf,
                                                          monkeypatch, caplog):
    monkeypatch.setenv("FAKE_PERF_DIE_AFTER", "0.2")
    with caplog.at_level(logging.WARNING, logger="damo_pipe"):
        result = record(tree, owner, tmp_path, perf, timeout=1.2)
    assert result.reason == "timeout" and result.nr_snapshots >= 3
    assert "crashed" in perf_events(perf) and "SIGINT" not in perf_events(perf)
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert "perf record ended early (exit 1): fake perf: crashed" in msgs
    assert not has_profile(tmp_path / "r.h5")
    # what perf wrote stays beside the archive, named after it
    assert leftovers(tmp_path) == ["r.h5.profile"]
    assert result.side_summaries["cpu_profile"]["left"] == [str(tmp_path / "r.h5.profile")]
    assert_cleaned_up(fake, tree, owner)


def test_missing_perf_is_a_warning_and_no_profile(fake, tree, owner, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="damo_pipe"):
        assert profile_options_for(["access", "cpu_profile"], "/nonexistent/perf") is None
        result = record(tree, owner, tmp_path, None,
                        profile=ProfileOptions(perf="/nonexistent/perf"))
    assert result.nr_snapshots >= 2
    assert not has_profile(tmp_path / "r.h5")
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("perf not found (--perf_path /nonexistent/perf)" in m for m in msgs) == 2
    assert profile_options_for(["access", "mem_footprint"], "/nonexistent/perf") is None


def test_slow_perf_start_gets_no_early_sigusr2(fake, tree, owner, tmp_path, perf, monkeypatch):
    # perf installs its SIGUSR2 handler late (a TCG VM: half a minute): a rotation before
    # that must not signal it (the default action would kill it)
    monkeypatch.setenv("FAKE_PERF_STARTUP", "0.8")
    result = record(tree, owner, tmp_path, perf, timeout=1.6, rotate_interval=0.3)
    ev = perf_events(perf)
    assert ev[:2] == ["started", "ready"] and ev[-2:] == ["SIGINT", "exit"]
    assert not has_profile(result.paths[0])
    assert has_profile(result.paths[-1])
    assert leftovers(tmp_path) == []


def test_wait_ready_starts_snapshots_once_perf_records(fake, tree, owner, tmp_path, perf,
                                                      monkeypatch):
    monkeypatch.setenv("FAKE_PERF_STARTUP", "0.6")
    result = record(tree, owner, tmp_path, perf, timeout=0.8, wait_ready=10)
    samples, _ = read_profile(tmp_path / "r.h5")
    snaps = read_archive_records(tmp_path / "r.h5")[0].snapshots
    assert result.nr_snapshots >= 2
    # every snapshot ended after perf started recording
    assert int(snaps.end_ns[0]) > int(samples.time_ns[0])


def test_wait_ready_gives_up_after_its_timeout(fake, tree, owner, tmp_path, perf, monkeypatch,
                                              caplog):
    monkeypatch.setenv("FAKE_PERF_STARTUP", "3")
    with caplog.at_level(logging.WARNING, logger="damo_pipe"):
        result = record(tree, owner, tmp_path, perf, timeout=0.5, wait_ready=0.3)
    assert "cpu_profile did not start recording within 0 s; going on" in caplog.text
    assert result.nr_snapshots >= 1
    assert_cleaned_up(fake, tree, owner)


def test_profile_of_the_targets(fake, tree, owner, tmp_path, perf):
    started = []

    def spec(pids):
        started.extend(pids)
        return MonitoringSpec(ops="vaddr", pids=pids)
    record(tree, owner, tmp_path, perf, target=RecordTarget(command=["sleep", "30"]),
           spec_builder=spec, profile=ProfileOptions(perf=perf, scope="targets"))
    samples, attrs = read_profile(tmp_path / "r.h5")
    assert set(samples.pid.tolist()) == {started[0]}
    assert "-p %d " % started[0] in attrs["perf_command"]
    with pytest.raises(UsageError, match="needs target processes"):
        record(tree, owner, tmp_path, perf, profile=ProfileOptions(perf=perf, scope="targets"))


def test_sigkilled_collector_leaves_perf_finished_beside_the_archive(fake, tree, tmp_path,
                                                                     perf):
    out = tmp_path / "kill.h5"
    c = spawn_collector(fake, "record", "-o", out, "--ops", "paddr", "--flush_interval", "0.1",
                        "--do_record", "access", "cpu_profile", "--perf_path", perf)
    try:
        wait_until(lambda: committed(out) >= 3 and "ready" in perf_events(perf))
    finally:
        c.kill()
        c.wait()
    # PDEATHSIG: perf got SIGINT and finished its part under the archive's name
    wait_until(lambda: "exit" in perf_events(perf), 20)
    assert "SIGINT" in perf_events(perf)
    left = leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith("kill.h5.profile.")
    assert read_archive_records(out)[0].nr_snapshots >= 3
    wait_until(lambda: tree.read("kdamonds/0/state") == "on")
    assert cli(fake, "stop") == 0


def test_record_command_line_do_record_and_perf_path(fake, tree, tmp_path, perf, caplog):
    from damo_pipe.archive.sidetables import read_side_table
    out = tmp_path / "cli.h5"
    assert cli(fake, "record", "-o", out, "--ops", "paddr", "--timeout", "0.8",
               "--do_record", "access", "cpu_profile", "--perf_path", perf) == 0
    assert has_profile(out)
    assert read_side_table(out, "footprints") is None     # mem_footprint not asked for
    assert read_side_table(out, "meminfo") is None
    # the default with a test tree (--sysfs_root): no profile of the real machine
    out2 = tmp_path / "default.h5"
    assert cli(fake, "record", "-o", out2, "--ops", "paddr", "--timeout", "0.5") == 0
    assert not has_profile(out2)
    assert len(read_side_table(out2, "footprints")["time_ns"]) == 0   # paddr: no process
    assert len(read_side_table(out2, "meminfo")["time_ns"]) >= 1
    with caplog.at_level(logging.WARNING, logger="damo_pipe"):
        assert cli(fake, "record", "-o", tmp_path / "x.h5", "--ops", "paddr", "--timeout", "0.3",
                   "--do_record", "access", "vmas", "proc_stats") == 0
    assert "--do_record vmas proc_stats: not recorded by damo-collect" in caplog.text
    assert cli(fake, "record", "-o", tmp_path / "y.h5", "--ops", "paddr",
               "--do_record", "cpu_profile") == 2
    assert not (tmp_path / "y.h5").exists()


def test_do_record_words():
    check_do_record(["access", "cpu_profile", "mem_footprint"])
    with pytest.raises(UsageError, match="must include access"):
        check_do_record(["cpu_profile"])
    with pytest.raises(UsageError, match="--tracer"):
        check_do_record(["access", "damon_trace_events"])


def test_dump_lines_and_sigusr2_handler_check():
    err = ("[ perf record: dump data: Woken up 1 times ]\n"
           "[ perf record: Dump /tmp/a b.h5.profile.2026120418061304 ]\n"
           "Warning: something\n[ perf record: Dump rel.profile.2026120418061324 ]\n")
    assert perf_dump_paths(err) == ["/tmp/a b.h5.profile.2026120418061304",
                                    "rel.profile.2026120418061324"]
    p = subprocess.Popen([sys.executable, "-c", "import signal,time\n"
                          "signal.signal(signal.SIGUSR2, lambda *a: None)\n"
                          "print('x', flush=True)\ntime.sleep(30)"], stdout=subprocess.PIPE)
    q = subprocess.Popen(["sleep", "30"])
    try:
        p.stdout.readline()
        assert catches_sigusr2(p.pid)
        assert not catches_sigusr2(q.pid)
        assert not catches_sigusr2(999999999)
    finally:
        for x in (p, q):
            x.kill()
            x.wait()


def test_recorder_without_start_stops_quietly():
    r = ProfileRecorder(ProfileOptions(perf="/nonexistent/perf"))
    assert r.ready()
    assert r.stop()["files"] == [] and r.stop()["perf_exit"] is None


# ---------------------------------------------------------------------------------------
# the real perf, profiling a process of this test (cpu-clock, never DAMON events)

@pytest.fixture(scope="module")
def workload_bin(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    out = tmp_path_factory.mktemp("workload") / "damo_workload"
    subprocess.run(["gcc", "-O2", "-o", str(out), str(REPO / "tools/workload/damo_workload.c")],
                   check=True)
    return str(out)


def test_real_perf_profiles_the_workload_functions(fake, tree, owner, tmp_path, workload_bin):
    from damo_pipe.perf_tool import which_perf
    perf = which_perf(None)
    if perf is None:
        pytest.skip("perf not installed")
    probe = subprocess.run([perf, "record", "-e", "cpu-clock", "-o", str(tmp_path / "probe"),
                            "--", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("perf cannot record here: %s" % probe.stderr.decode()[-200:])

    def spec(pids):
        return MonitoringSpec(ops="vaddr", pids=pids)
    result = record(tree, owner, tmp_path, perf, timeout=2.5, wait_ready=20,
                    target=RecordTarget(command=[workload_bin, "--mib", "16", "--duty", "50"]),
                    spec_builder=spec,
                    profile=ProfileOptions(perf=perf, scope="targets", event="cpu-clock"))
    samples, attrs = read_profile(tmp_path / "r.h5")
    assert len(samples) > 50, result.side_summaries
    names = [samples.symbols[i] for i in np.bincount(samples.symbol_id).argsort()[::-1][:3]]
    assert "workload_hot_loop" in names, names
    # perf's wall clock matches the snapshots' (CLOCK_REALTIME)
    snaps = read_archive_records(tmp_path / "r.h5")[0].snapshots
    assert abs(int(np.median(samples.time_ns)) - int(np.median(snaps.end_ns))) < 2 * 10 ** 9
    assert leftovers(tmp_path) == []
