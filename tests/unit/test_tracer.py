"""Tracepoint streaming (damo_pipe.collect.tracing) against a fake tracefs and a fake perf.

Nothing here touches the host's real tracefs: every session gets ``tracefs_root`` = a
temporary directory whose ``trace_pipe`` is a FIFO fed from the real captures in
../shared/fixtures/kernel.
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from damo_pipe.archive import ArchiveWriter, read_archive_records
from damo_pipe.collect import tracing
from damo_pipe.collect.commands import record_trace
from damo_pipe.collect.tracing import TracerOptions
from damo_pipe.collect.tracing import tracefs as tracefs_mod
from damo_pipe.errors import (CollectError, DamonBusyError, DamonUnavailableError,
                              ExternalToolError, UsageError)
from damo_pipe.model import Record
from tests.support.tracer_helpers import (PARSERS, PERF_SCRIPT_CAPTURE, TRACE_PIPE_CAPTURE,
                                          FakeTracefs, StandInStreamParser,
                                          assert_archive_matches_reference,
                                          assert_archive_prefix_of_reference, make_parser,
                                          reference_snapshots, start_feeder)

REPO = Path(__file__).resolve().parents[2]
CAPTURES = {"trace_pipe": TRACE_PIPE_CAPTURE, "perf_script": PERF_SCRIPT_CAPTURE}


def capture(name):
    p = CAPTURES[name]
    if not p.exists():
        pytest.skip("kernel capture %s not found" % p)
    return p.read_bytes()


@pytest.fixture(autouse=True)
def no_real_tracefs(monkeypatch):
    """Belt and braces: nothing here may reach the host's real tracefs."""
    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")


def test_real_tracefs_is_refused_when_disabled(tmp_path):
    w, keys = new_writer(tmp_path / "a.h5")
    for fn in (tracing.open_tracefs_tracer, tracing.open_perf_tracer):
        with pytest.raises(DamonUnavailableError, match="real tracefs is disabled"):
            fn(w, keys, parser=StandInStreamParser())
    assert tracing.cleanup_stale_tracing(state_dir=tmp_path) == []
    w.close()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    return FakeTracefs(tmp_path / "tracing").install(monkeypatch)


def new_writer(path, targets=(0,)):
    w = ArchiveWriter(path)
    return w, {t: w.add_record(Record(target_id=t)) for t in targets}


def run_until_fed(handle, feeder, timeout=20.0):
    deadline = time.monotonic() + timeout
    while feeder.is_alive() and time.monotonic() < deadline:
        handle.poll()
        handle.wait(0.01)
    assert not feeder.is_alive(), "feeder did not finish"
    handle.poll()


# ----------------------------------------------------------------------------- tracefs state
def test_instance_mode_enables_only_damon_events_and_cleans_up(fake, tmp_path):
    before = fake.snapshot_state()
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, buffer_kb=2048,
                                   parser=StandInStreamParser())
    inst = Path(fake.instances_made[0])
    assert inst.name == "damo-pipe-%d" % os.getpid()
    # damos_before_apply is opt-in (--trace_damos)
    assert fake.enable_state(inst) == {"damon_aggregated": "1", "damos_before_apply": "0"}
    assert (inst / "buffer_size_kb").read_text() == "2048"
    # nothing outside the instance changed
    assert fake.snapshot_state() == {**before, **{k: v for k, v in fake.snapshot_state().items()
                                                  if k.startswith("instances/")}}
    assert fake.enable_state() == {"damon_aggregated": "0", "damos_before_apply": "0"}
    h.stop()
    w.close()
    assert not inst.exists()
    assert fake.snapshot_state() == before


def test_instance_disables_events_before_removal(fake, tmp_path, monkeypatch):
    seen = {}

    def rmdir(path):
        seen.update(fake.enable_state(path))
        FakeTracefs.rmdir_instance(path)
    monkeypatch.setattr(tracefs_mod, "_rmdir_instance", rmdir)
    w, keys = new_writer(tmp_path / "a.h5")
    tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root,
                               parser=StandInStreamParser()).stop()
    assert seen == {"damon_aggregated": "0", "damos_before_apply": "0"}


def test_toplevel_mode_saves_changes_and_restores(tmp_path, monkeypatch):
    fake = FakeTracefs(tmp_path / "tracing", tracing_on="0\n").install(monkeypatch)
    before = fake.snapshot_state()
    state_dir = tmp_path / "state"
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, mode="toplevel",
                                   buffer_kb=4096, state_dir=state_dir,
                                   parser=StandInStreamParser(), damos=True)
    assert fake.enable_state() == {"damon_aggregated": "1", "damos_before_apply": "1"}
    assert (fake.root / "tracing_on").read_text() == "1"
    assert (fake.root / "buffer_size_kb").read_text() == "4096"
    assert [p.name for p in state_dir.iterdir()] == ["tracefs-toplevel-%d.json" % os.getpid()]
    h.stop()
    w.close()
    after = fake.snapshot_state()
    # buffer_size_kb "7 (expanded: 1408)" is restored to its expanded size
    assert after.pop("buffer_size_kb") == "1408"
    before.pop("buffer_size_kb")
    assert after == before
    assert list(state_dir.iterdir()) == []


@pytest.mark.parametrize("control,what", [
    ({"current_tracer": "function\n"}, "current_tracer"),
    ({"set_event": "sched:sched_switch\n"}, "sched:sched_switch"),
    ({"set_event": "damon:damon_aggregated\n"}, "damon:damon_aggregated"),
])
def test_toplevel_refuses_tracing_in_use(tmp_path, monkeypatch, control, what):
    fake = FakeTracefs(tmp_path / "tracing", **control).install(monkeypatch)
    before = fake.snapshot_state()
    w, keys = new_writer(tmp_path / "a.h5")
    with pytest.raises(DamonBusyError, match=what):
        tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, mode="toplevel",
                                   state_dir=tmp_path / "state", parser=StandInStreamParser())
    assert fake.snapshot_state() == before
    w.close()


def test_toplevel_refuses_when_trace_pipe_is_being_read(fake, tmp_path):
    reader = subprocess.Popen(
        [sys.executable, "-c", "import os,sys,time; os.open(sys.argv[1], os.O_RDONLY|os.O_NONBLOCK);"
         " print('open', flush=True); time.sleep(60)", str(fake.root / "trace_pipe")],
        stdout=subprocess.PIPE)
    try:
        assert reader.stdout.readline().strip() == b"open"
        before = fake.snapshot_state()
        w, keys = new_writer(tmp_path / "a.h5")
        with pytest.raises(DamonBusyError, match="pid %d" % reader.pid):
            tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, mode="toplevel",
                                       state_dir=tmp_path / "state", parser=StandInStreamParser())
        assert fake.snapshot_state() == before
        w.close()
    finally:
        reader.kill()
        reader.wait()


def test_instance_mode_is_not_disturbed_by_other_users(tmp_path, monkeypatch):
    fake = FakeTracefs(tmp_path / "tracing", current_tracer="function\n",
                       set_event="sched:sched_switch\n").install(monkeypatch)
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, parser=StandInStreamParser())
    h.stop()
    w.close()
    assert (fake.root / "current_tracer").read_text().strip() == "function"


def test_existing_instance_is_refused(fake, tmp_path):
    fake.mkdir_instance(fake.root / "instances" / ("damo-pipe-%d" % os.getpid()))
    w, keys = new_writer(tmp_path / "a.h5")
    with pytest.raises(DamonBusyError, match="damo-collect stop"):
        tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, parser=StandInStreamParser())
    w.close()


def test_missing_tracepoint_and_missing_tracefs(tmp_path, monkeypatch):
    fake = FakeTracefs(tmp_path / "tracing", events=("damos_before_apply",)).install(monkeypatch)
    w, keys = new_writer(tmp_path / "a.h5")
    with pytest.raises(DamonUnavailableError, match="damon_aggregated"):
        tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, parser=StandInStreamParser())
    assert list((fake.root / "instances").iterdir()) == []
    with pytest.raises(DamonUnavailableError, match="not a tracefs"):
        tracing.open_tracefs_tracer(w, keys, tracefs_root=tmp_path, parser=StandInStreamParser())
    w.close()


def test_permission_error_is_a_collect_error_and_rolls_back(fake, tmp_path, monkeypatch):
    real_write = tracefs_mod._write

    def failing(path, value):
        if path.endswith("damon_aggregated/enable") and value == "1":
            raise PermissionError(13, "Permission denied", path)
        return real_write(path, value)
    monkeypatch.setattr(tracefs_mod, "_write", failing)
    w, keys = new_writer(tmp_path / "a.h5")
    with pytest.raises(CollectError, match="needs root"):
        tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, parser=StandInStreamParser())
    assert list((fake.root / "instances").iterdir()) == []
    w.close()


# ----------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("parser_name", PARSERS)
@pytest.mark.parametrize("cap", sorted(CAPTURES))
@pytest.mark.parametrize("mode", ["instance", "toplevel"])
def test_streamed_archive_equals_whole_capture(fake, tmp_path, parser_name, cap, mode):
    data = capture(cap)
    parser = make_parser(parser_name)
    before = fake.snapshot_state()
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, mode=mode, parser=parser,
                                   state_dir=tmp_path / "state", flush_interval=0.001)
    feeder = start_feeder(os.path.join(h.source.dir, "trace_pipe"), data, piece=3000,
                          seed=len(data) + len(mode))
    run_until_fed(h, feeder)
    summary = h.stop()
    w.close()
    ref = reference_snapshots(data.decode())
    assert summary["regions"] == sum(len(r) for s in ref.values() for _, r in s)
    assert h.streamer.flushes > 1   # incremental, not one write at the end
    assert_archive_matches_reference(tmp_path / "a.h5", ref)
    after = fake.snapshot_state()
    if mode == "toplevel":
        after.pop("buffer_size_kb", None), before.pop("buffer_size_kb", None)
    assert after == before


@pytest.mark.parametrize("parser_name", PARSERS)
def test_stream_equals_reader_of_the_whole_file(fake, tmp_path, parser_name):
    """Same result as the readers' whole-file trace reader, where it exists."""
    trace_text = pytest.importorskip("damo_pipe.formats.trace_text")
    data = capture("trace_pipe")
    whole = trace_text.read_trace_text(str(TRACE_PIPE_CAPTURE), engine="python")
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, parser=make_parser(parser_name))
    run_until_fed(h, start_feeder(os.path.join(h.source.dir, "trace_pipe"), data, piece=700))
    h.stop()
    w.close()
    got = read_archive_records(tmp_path / "a.h5")
    assert [r.target_id for r in got] == [r.target_id for r in whole]
    for a, b in zip(got, whole):
        assert a.nr_snapshots == b.nr_snapshots
        assert a.first_start_ns == b.first_start_ns
        for name in ("end_ns", "nr_regions", "total_bytes"):
            assert list(getattr(a.snapshots, name)) == list(getattr(b.snapshots, name)), name
        assert list(a.snapshots.start_ns[1:]) == list(b.snapshots.start_ns[1:])
        for name in ("start", "end", "nr_accesses", "age"):
            assert list(getattr(a.regions, name)) == list(getattr(b.regions, name)), name


def test_unannounced_target_gets_its_own_record(fake, tmp_path):
    data = capture("trace_pipe").replace(b"target_id=0 ", b"target_id=7 ")
    w = ArchiveWriter(tmp_path / "a.h5")
    h = tracing.open_tracefs_tracer(w, {}, tracefs_root=fake.root, parser=StandInStreamParser())
    run_until_fed(h, start_feeder(os.path.join(h.source.dir, "trace_pipe"), data))
    h.stop()
    w.close()
    assert [r.target_id for r in read_archive_records(tmp_path / "a.h5")] == [7]


def test_parser_error_still_restores_tracefs(fake, tmp_path):
    class Exploding(StandInStreamParser):
        def feed(self, data):
            raise ValueError("boom")
    before = fake.snapshot_state()
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, parser=Exploding())
    feeder = start_feeder(os.path.join(h.source.dir, "trace_pipe"), b"x" * 100 + b"\n")
    with pytest.raises(ValueError, match="boom"):
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                h.poll()
                h.wait(0.01)
        finally:
            h.stop()
    feeder.join(5)
    w.close()
    assert fake.snapshot_state() == before


# ----------------------------------------------------------------------------- crash safety
def _child(fake, archive, parser_name):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.tracer_helpers", str(fake.root), str(archive),
         str(TRACE_PIPE_CAPTURE), parser_name],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("parser_name", PARSERS)
def test_sigkill_mid_stream_leaves_every_flushed_snapshot(fake, tmp_path, parser_name):
    capture("trace_pipe")
    make_parser(parser_name)
    ref = reference_snapshots(TRACE_PIPE_CAPTURE.read_text())
    rng = random.Random(6)
    for trial in range(3):
        archive = tmp_path / ("k%d.h5" % trial)
        child = _child(fake, archive, parser_name)
        assert child.stdout.readline().strip() == b"ready", child.stderr.read()
        wanted = rng.randint(2, 12)
        flushed = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = child.stdout.readline().split()
            if not line:
                break
            flushed = int(line[1])
            if flushed >= wanted:
                break
        time.sleep(rng.random() * 0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert flushed >= wanted
        # the instance of the dead child remains until `damo-collect stop` cleans it
        inst = fake.root / "instances" / ("damo-pipe-%d" % child.pid)
        assert inst.exists()
        assert fake.enable_state(inst)["damon_aggregated"] == "1"
        total = assert_archive_prefix_of_reference(archive, ref, at_least=flushed)
        assert total < sum(len(s) for s in ref.values())  # really killed mid-stream
        msgs = tracing.cleanup_after_crash(str(fake.root), str(tmp_path / "state"))
        assert msgs == ["removed stale tracing instance %s" % inst]
        assert not inst.exists()


def test_cleanup_restores_toplevel_state_of_a_dead_recorder(tmp_path, monkeypatch):
    fake = FakeTracefs(tmp_path / "tracing", tracing_on="0\n").install(monkeypatch)
    before = fake.snapshot_state()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    sess = tracing.TracefsSession(fake.root, mode="toplevel", state_dir=tmp_path / "state",
                                 pid=dead.pid, check_readers=False)
    sess.open()
    os.close(sess.fd)          # "killed": nothing restored
    assert fake.enable_state()["damon_aggregated"] == "1"
    live = tracing.cleanup_stale_tracing(fake.root, tmp_path / "state")
    assert live == ["restored top-level tracefs state left by pid %d" % dead.pid]
    assert fake.snapshot_state() == before
    assert tracing.cleanup_stale_tracing(fake.root, tmp_path / "state") == []


def test_cleanup_keeps_instances_of_live_processes(fake, tmp_path):
    inst = fake.root / "instances" / ("damo-pipe-%d" % os.getpid())
    fake.mkdir_instance(inst)
    fake.mkdir_instance(fake.root / "instances" / "someone-else")
    msgs = tracing.cleanup_stale_tracing(fake.root, tmp_path / "state")
    assert msgs == ["kept tracing instance %s: pid %d is alive" % (inst, os.getpid())]
    assert inst.exists() and (fake.root / "instances" / "someone-else").exists()


def test_sigterm_restores_tracefs(fake, tmp_path):
    script = textwrap.dedent("""
        import sys, time
        from damo_pipe.archive import ArchiveWriter
        from damo_pipe.collect.tracing import TracerOptions, start_tracer, tracefs
        from damo_pipe.model import Record
        from tests.support.tracer_helpers import FakeTracefs, StandInStreamParser
        root = sys.argv[1]
        tracefs._mkdir_instance = lambda p: FakeTracefs.mkdir_instance(fake, p)
        fake = FakeTracefs.__new__(FakeTracefs)
        fake.events = ("damon_aggregated", "damos_before_apply"); fake.instances_made = []
        tracefs._rmdir_instance = FakeTracefs.rmdir_instance
        w = ArchiveWriter(sys.argv[2]); keys = {0: w.add_record(Record(target_id=0))}
        h = start_tracer(TracerOptions(kind="tracefs", tracefs_root=root), w, keys,
                         parser=StandInStreamParser())
        try:
            print("ready", flush=True)
            while True:
                h.poll(); h.wait(0.05)
        finally:
            h.stop(); w.close()
    """)
    child = subprocess.Popen([sys.executable, "-c", script, str(fake.root), str(tmp_path / "t.h5")],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready", child.stderr.read()
    inst = fake.root / "instances" / ("damo-pipe-%d" % child.pid)
    assert inst.exists()
    child.send_signal(signal.SIGTERM)
    assert child.wait(20) == 143
    assert not inst.exists()
    assert read_archive_records(tmp_path / "t.h5")[0].nr_snapshots == 0


# ----------------------------------------------------------------------------- start_tracer
def test_tracer_options_from_the_command_line():
    p = argparse.ArgumentParser()
    record_trace.add_tracer_options(p)
    a = p.parse_args([])
    assert (a.tracer, a.tracefs_root, a.trace_buffer_kb, a.tracefs_mode) == ("none", None, None,
                                                                            "instance")
    assert record_trace.tracer_options(a) is None
    a = p.parse_args(["--tracer", "perf", "--tracefs_root", "/t", "--trace_buffer_kb", "64",
                      "--tracefs_mode", "toplevel", "--trace_damos", "--perf", "/p",
                      "--perf_mmap_pages", "8", "--tracer_state_dir", "/s"])
    assert record_trace.tracer_options(a) == TracerOptions(
        kind="perf", tracefs_root="/t", tracefs_mode="toplevel", buffer_kb=64, state_dir="/s",
        damos=True, perf="/p", perf_mmap_pages=8)
    with pytest.raises(SystemExit):
        p.parse_args(["--tracer", "ftrace"])


def test_start_tracer_none_and_unknown():
    h = tracing.start_tracer(TracerOptions(), writer=None, record_keys={})
    assert h.poll() == 0 and h.stop() == {"tracer": "none"}
    with pytest.raises(UsageError, match="ftrace"):
        TracerOptions(kind="ftrace")


def test_start_tracer_tracefs_with_options(fake, tmp_path):
    data = capture("trace_pipe")
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.start_tracer(TracerOptions(kind="tracefs", tracefs_root=str(fake.root),
                                           buffer_kb=512), w, keys, parser=StandInStreamParser())
    assert (Path(fake.instances_made[0]) / "buffer_size_kb").read_text() == "512"
    run_until_fed(h, start_feeder(os.path.join(h.source.dir, "trace_pipe"), data))
    s = h.stop()
    w.close()
    assert s["tracer"] == "tracefs" and s["snapshots"] == 30
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# ----------------------------------------------------------------------------- perf
FAKE_PERF = """#!{python}
import os, signal, sys, time
log = os.environ["FAKE_PERF_LOG"]
with open(log + "." + sys.argv[1], "w") as f:
    f.write(" ".join(sys.argv[1:]))
if sys.argv[1] == "record":
    if os.environ.get("FAKE_PERF_FAIL"):
        sys.stderr.write("event syntax error: 'damon:damon_aggregated'\\n  unknown tracepoint\\n")
        sys.exit(129)
    # like perf: SIGINT ends the recording (re-raised: exit -2); the workload starts once
    # the events are on (after FAKE_PERF_START_DELAY s) with stdout -> stderr; its exit
    # ends the recording with exit 0
    signal.signal(signal.SIGINT, lambda *a: (signal.signal(signal.SIGINT, signal.SIG_DFL),
                                             os.kill(os.getpid(), signal.SIGINT)))
    time.sleep(float(os.environ.get("FAKE_PERF_START_DELAY", "0")))
    import subprocess
    gate = subprocess.Popen(sys.argv[sys.argv.index("--") + 1:], stdout=2, close_fds=False)
    data = open(os.environ["FAKE_PERF_DATA"], "rb").read()
    for i in range(0, len(data), 1500):
        os.write(1, data[i:i + 1500])
        time.sleep(0.001)
    while gate.poll() is None:
        time.sleep(0.1)
elif sys.argv[1] == "script":
    while True:
        b = os.read(0, 65536)
        if not b:
            break
        os.write(1, b)
"""


@pytest.fixture
def fake_perf(tmp_path, monkeypatch):
    """A stand-in perf replaying the kernel's perf script capture (skips without it)."""
    if not PERF_SCRIPT_CAPTURE.exists():
        pytest.skip("kernel capture %s not found" % PERF_SCRIPT_CAPTURE)
    path = tmp_path / "perf"
    path.write_text(FAKE_PERF.format(python=sys.executable))
    path.chmod(0o755)
    monkeypatch.setenv("FAKE_PERF_LOG", str(tmp_path / "perf.log"))
    monkeypatch.setenv("FAKE_PERF_DATA", str(PERF_SCRIPT_CAPTURE))
    return path


@pytest.mark.parametrize("parser_name", PARSERS)
def test_perf_streaming_equals_whole_capture(fake, fake_perf, tmp_path, parser_name):
    data = capture("perf_script")
    before = fake.snapshot_state()
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.open_perf_tracer(w, keys, perf=str(fake_perf), tracefs_root=fake.root,
                                parser=make_parser(parser_name), flush_interval=0.001)
    ref = reference_snapshots(data.decode())
    want = sum(len(r) for s in ref.values() for _, r in s)
    deadline = time.monotonic() + 20
    while h.streamer.regions_out < want and time.monotonic() < deadline:
        h.poll()
        h.wait(0.01)
    s = h.stop()
    w.close()
    assert s["regions"] == want
    rec_args = (tmp_path / "perf.log.record").read_text()
    prefix = "record -a -q --synth=no -e damon:damon_aggregated --no-buffering -o - -- /bin/sh -c "
    assert rec_args.startswith(prefix), rec_args
    assert h.source.ready and h.source.startup_seconds < 20
    assert (tmp_path / "perf.log.script").read_text() == "script -i -"
    assert_archive_matches_reference(tmp_path / "a.h5", ref)
    assert fake.snapshot_state() == before  # perf changes no tracefs file


def test_perf_stop_before_it_started_recording(fake, fake_perf, tmp_path, monkeypatch, caplog):
    # perf's start-up (30-60 s under TCG) not over: SIGINT, a warning, no trace data, no error
    monkeypatch.setenv("FAKE_PERF_START_DELAY", "30")
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.open_perf_tracer(w, keys, perf=str(fake_perf), tracefs_root=fake.root,
                                parser=StandInStreamParser())
    assert not h.source.ready
    t0 = time.monotonic()
    with caplog.at_level("WARNING", logger="damo_pipe"):
        s = h.stop()
    w.close()
    assert time.monotonic() - t0 < 10
    assert s["regions"] == 0
    assert "stopped before it started recording" in caplog.text


def test_perf_gate_ends_recording_cleanly(fake, fake_perf, tmp_path):
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.open_perf_tracer(w, keys, perf=str(fake_perf), tracefs_root=fake.root,
                                parser=StandInStreamParser())
    assert h.source.wait_ready(20)
    record = h.source.record
    h.stop()
    w.close()
    assert record.returncode == 0   # the gate's exit ended perf record, not a signal


def test_perf_missing_or_failing(fake, fake_perf, tmp_path, monkeypatch):
    w, keys = new_writer(tmp_path / "a.h5")
    with pytest.raises(ExternalToolError, match="perf not found"):
        tracing.open_perf_tracer(w, keys, perf=str(tmp_path / "no-perf"), tracefs_root=fake.root,
                                parser=StandInStreamParser())
    monkeypatch.setenv("FAKE_PERF_FAIL", "1")
    with pytest.raises(ExternalToolError, match="unknown tracepoint"):
        tracing.open_perf_tracer(w, keys, perf=str(fake_perf), tracefs_root=fake.root,
                                parser=StandInStreamParser())
    w.close()


def test_perf_without_damon_tracepoints(tmp_path, monkeypatch, fake_perf):
    fake = FakeTracefs(tmp_path / "tracing", events=()).install(monkeypatch)
    w, keys = new_writer(tmp_path / "a.h5")
    with pytest.raises(ExternalToolError, match="no such tracepoint"):
        tracing.open_perf_tracer(w, keys, perf=str(fake_perf), tracefs_root=fake.root,
                                parser=StandInStreamParser())
    w.close()


@pytest.mark.parametrize("parser_name", PARSERS)
def test_lost_events_are_counted_and_skipped(fake, tmp_path, parser_name):
    data = capture("trace_pipe")
    lines = data.splitlines(keepends=True)
    ref = reference_snapshots(data.decode())
    first = len(ref[0][0][1])          # lines of the first snapshot
    data = b"".join(lines[:first]) + b"CPU:1 [LOST 42 EVENTS]\n" + b"".join(lines[first:]) + \
        b"CPU:0 [LOST 8 EVENTS]\n"
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, parser=make_parser(parser_name))
    # tiny pieces: the marker is split across reads
    run_until_fed(h, start_feeder(os.path.join(h.source.dir, "trace_pipe"), data, piece=60))
    s = h.stop()
    w.close()
    assert s["lost_events"] == 50
    assert_archive_matches_reference(tmp_path / "a.h5", ref)


def with_damos_lines(data):
    """The capture with, after every snapshot, the damos_before_apply lines a stat scheme
    matching everything produces (same regions, 10 us later), as a 6.12 kernel does."""
    out = []
    snap = []
    for line in data.decode().splitlines(keepends=True):
        out.append(line)
        tok = line.split()
        i = tok.index("damon_aggregated:")
        nr = int(tok[i + 2].split("=")[1])
        snap.append((tok, i))
        if len(snap) == nr:
            for tok, i in snap:
                ts = "%.6f:" % (float(tok[i - 1][:-1]) + 0.00001)
                out.append("%s %s %s %s damos_before_apply: ctx_idx=0 scheme_idx=0 target_idx=0 "
                           "nr_regions=%d %s %s %s\n" % (tok[0], tok[1], tok[2], ts, nr,
                                                       tok[i + 3], tok[i + 4], tok[i + 5]))
            snap = []
    return "".join(out).encode()


def test_damos_before_apply_goes_to_its_own_record(fake, tmp_path):
    data = capture("trace_pipe")
    mixed = with_damos_lines(data)
    ref = reference_snapshots(data.decode())
    w, keys = new_writer(tmp_path / "a.h5")
    keys[("damos_before_apply", 0)] = w.add_record(Record(target_id=0, scheme_idx=0))
    h = tracing.open_tracefs_tracer(w, keys, tracefs_root=fake.root, damos=True,
                                   parser=make_parser("real"))
    assert h.streamer.damos_parser is not None
    run_until_fed(h, start_feeder(os.path.join(h.source.dir, "trace_pipe"), mixed, piece=999))
    h.stop()
    w.close()
    recs = read_archive_records(tmp_path / "a.h5")
    assert [r.scheme_idx for r in recs] == [None, 0]
    # the target's record is exactly the damon_aggregated stream
    main_path = tmp_path / "only.h5"
    from damo_pipe.archive import write_records
    write_records([recs[0]], main_path)
    assert_archive_matches_reference(main_path, ref)
    d = recs[1]
    assert d.nr_snapshots == recs[0].nr_snapshots
    assert list(d.regions.start) == list(recs[0].regions.start)
    # 10 us later, give or take the float truncation of int(float(ts) * 1e9)
    assert all(9990 <= x <= 10010 for x in d.snapshots.end_ns - recs[0].snapshots.end_ns)


def test_no_flush_interval_leaves_flushing_to_the_caller(fake, tmp_path):
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.start_tracer(TracerOptions(kind="tracefs", tracefs_root=str(fake.root)), w, keys,
                             parser=StandInStreamParser(), flush_interval=None)
    run_until_fed(h, start_feeder(os.path.join(h.source.dir, "trace_pipe"), capture("trace_pipe"),
                                  piece=500))
    assert h.streamer.flushes == 0 and h.streamer.snapshots_out == 30
    h.stop()
    assert h.streamer.flushes == 1
    w.close()


def test_perf_dying_mid_recording_is_an_error(fake, fake_perf, tmp_path, monkeypatch):
    # fake perf record exits (status 0, no SIGINT) after writing its data: unexpected
    short = tmp_path / "perf-short"
    short.write_text(FAKE_PERF.format(python=sys.executable).replace(
        "while gate.poll() is None:\n        time.sleep(0.1)",
        "sys.stderr.write('perf: out of memory\\\\n')"))
    short.chmod(0o755)
    w, keys = new_writer(tmp_path / "a.h5")
    h = tracing.open_perf_tracer(w, keys, perf=str(short), tracefs_root=fake.root,
                                parser=StandInStreamParser())
    with pytest.raises(ExternalToolError, match="perf ended unexpectedly.*out of memory"):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            h.poll()
            h.wait(0.05)
    h.stop()
    w.close()
    assert read_archive_records(tmp_path / "a.h5")[0].nr_snapshots == 30
