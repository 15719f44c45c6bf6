"""damo_pipe.collect.recording.Recording (the library behind ``damo-collect record``)
against the fake DAMON sysfs: side recorders plug in, and every way a recording ends
(timeout, target exit, signal, an error in the loop, a failed start, a failing
clean-up) turns the kdamond off, closes the archive and forgets ownership, in order.
"""
import logging
import os
import signal

import numpy as np
import pytest

from damo_pipe.archive import read_archive_records
from damo_pipe.archive.sidetables import read_side_table
from damo_pipe.collect.kdamond import KdamondSession, MonitoringSpec
from damo_pipe.collect.recording import (Recording, RecordingOptions, RecordTarget,
                                         check_request)
from damo_pipe.collect.side_recorders import SideRecorder
from damo_pipe.collect.tracing import TracerOptions
from damo_pipe.errors import CollectError, UsageError
from tests.support.recording import (PADDR, assert_cleaned_up, fake, owner, paddr_spec,  # noqa: F401
                                     root, tree)


@pytest.fixture(autouse=True)
def no_real_sysfs(monkeypatch):
    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")


def make(tree, owner, tmp_path, target=PADDR, sides=(), spec_builder=paddr_spec, **opts):
    opts.setdefault("timeout", 0.6)
    opts.setdefault("flush_interval", 0.1)
    options = RecordingOptions(output=str(tmp_path / "r.h5"), **opts)
    return Recording(target, options, tree=tree, ownership=owner, spec_builder=spec_builder,
                     side_recorders=sides)


class Probe(SideRecorder):
    """Logs its hooks with what DAMON looked like then; fails where told to."""

    name = "probe"

    def __init__(self, tree, fail=None, fail_after=0, table="probe"):
        self.tree = tree
        self.table_name = table
        self.fail = fail
        self.fail_after = fail_after
        self.events = []
        self.table = None

    def _log(self, hook):
        self.events.append((hook, self.tree.read("kdamonds/nr_kdamonds")))
        n = sum(1 for h, _ in self.events if h == hook)
        if hook == self.fail and n > self.fail_after:
            raise CollectError("%s failed" % hook)

    def open(self, writer, session):
        self.table = writer.add_side_table(self.table_name, {"time_ns": np.int64})
        self._log("open")

    def start(self, writer):
        self._log("start")

    def poll(self):
        if not self.events or self.events[-1][0] != "poll":
            self._log("poll")

    def sample(self, now):
        self.table.append(time_ns=len(self.events))
        self._log("sample")

    def stop(self):
        self._log("stop")
        return {"events": len(self.events)}

    def close(self, writer):
        self._log("close")

    def hooks(self):
        return [h for h, _ in self.events]


def test_side_recorder_hooks_and_cleanup_order(fake, tree, owner, tmp_path):
    probe = Probe(tree)
    result = make(tree, owner, tmp_path, sides=[probe]).run()
    assert result.reason == "timeout" and result.nr_snapshots >= 2
    assert result.paths == [str(tmp_path / "r.h5")]
    hooks = probe.hooks()
    assert hooks[:3] == ["open", "start", "poll"] and "sample" in hooks
    # the end: the kdamond is off before the side recorders stop, the archive closes last
    assert hooks[-2:] == ["stop", "close"]
    assert dict(probe.events)["stop"] == "0"
    assert hooks.count("stop") == 1
    assert result.side_summaries["probe"]["events"] >= 4
    assert result.side_summaries["footprints"] is None
    assert_cleaned_up(fake, tree, owner)
    # final DAMOS stats were taken while the kdamond still ran
    assert fake.commands[-2] == (0, "update_schemes_stats")
    assert len(read_side_table(tmp_path / "r.h5", "probe")["time_ns"]) == hooks.count("sample")
    assert read_archive_records(tmp_path / "r.h5")[0].nr_snapshots == result.nr_snapshots


def test_target_exit_ends_the_recording(fake, tree, owner, tmp_path):
    started = []

    def spec(pids):
        started.extend(pids)
        return MonitoringSpec(ops="vaddr", pids=pids)
    result = make(tree, owner, tmp_path, RecordTarget(command=["sleep", "0.5"]),
                  spec_builder=spec, timeout=30).run()
    assert result.reason == "target exited"
    assert read_archive_records(tmp_path / "r.h5")[0].pid == started[0]
    assert_cleaned_up(fake, tree, owner, turned_off=False)


def test_error_in_the_loop_cleans_up_and_terminates_the_command(fake, tree, owner, tmp_path):
    probe = Probe(tree, fail="sample", fail_after=1)
    started = []

    def spec(pids):
        started.extend(pids)
        return MonitoringSpec(ops="vaddr", pids=pids)
    with pytest.raises(CollectError, match="sample failed"):
        make(tree, owner, tmp_path, RecordTarget(command=["sleep", "60"]), sides=[probe],
             spec_builder=spec, timeout=30).run()
    assert probe.hooks()[-2:] == ["stop", "close"]
    assert_cleaned_up(fake, tree, owner)
    with pytest.raises(ProcessLookupError):   # terminated and reaped
        os.kill(started[0], 0)
    assert read_archive_records(tmp_path / "r.h5")[0].nr_snapshots >= 1


def test_failed_start_of_a_side_recorder_is_cleaned_up(fake, tree, owner, tmp_path):
    probe = Probe(tree, fail="start")
    with pytest.raises(CollectError, match="start failed"):
        make(tree, owner, tmp_path, sides=[probe]).run()
    assert probe.hooks() == ["open", "start", "stop", "close"]
    assert dict(probe.events)["stop"] == "0"
    assert_cleaned_up(fake, tree, owner)
    assert fake.commands[-2] == (0, "update_schemes_stats")
    assert read_archive_records(tmp_path / "r.h5")[0].nr_snapshots == 0


def test_a_failing_cleanup_still_runs_the_rest_then_raises(fake, tree, owner, tmp_path):
    probe = Probe(tree, fail="stop")
    with pytest.raises(CollectError, match="stop failed"):
        make(tree, owner, tmp_path, sides=[probe]).run()
    assert probe.hooks()[-2:] == ["stop", "close"]
    assert_cleaned_up(fake, tree, owner)
    assert read_archive_records(tmp_path / "r.h5")[0].nr_snapshots >= 1


def test_a_failing_cleanup_does_not_hide_the_error(fake, tree, owner, tmp_path, caplog):
    probe = Probe(tree, fail="stop")
    bad = Probe(tree, fail="sample", table="bad")
    with caplog.at_level(logging.WARNING, logger="damo_pipe"):
        with pytest.raises(CollectError, match="sample failed"):
            make(tree, owner, tmp_path, sides=[probe, bad]).run()
    assert "cleanup: stop failed" in caplog.text
    assert_cleaned_up(fake, tree, owner)


def test_signal_ends_the_recording_and_restores_handlers(fake, tree, owner, tmp_path):
    class Signaller(SideRecorder):
        name = "signaller"
        polls = 0

        def poll(self):
            self.polls += 1
            if self.polls == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    result = make(tree, owner, tmp_path, sides=[Signaller()], timeout=30).run()
    assert result.reason == "signal %d" % signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
    assert_cleaned_up(fake, tree, owner)


def test_signals_during_cleanup_are_ignored(fake, tree, owner, tmp_path):
    class Impatient(SideRecorder):
        name = "impatient"

        def stop(self):   # Ctrl-C pressed twice while the recording cleans up
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            return "stopped"

    before = signal.getsignal(signal.SIGINT)
    result = make(tree, owner, tmp_path, sides=[Impatient()]).run()
    assert result.reason == "timeout" and result.side_summaries["impatient"] == "stopped"
    assert signal.getsignal(signal.SIGINT) is before
    assert_cleaned_up(fake, tree, owner)


def test_ongoing_recording_leaves_the_kdamond_running(fake, tree, owner, tmp_path):
    s = KdamondSession.create(tree, owner, paddr_spec([]), mode="start")
    result = make(tree, owner, tmp_path, RecordTarget(ongoing=True), spec_builder=None).run()
    assert result.nr_snapshots >= 2
    assert tree.read("kdamonds/0/state") == "on" and len(owner.load()) == 1
    s.stop()
    assert tree.read("kdamonds/nr_kdamonds") == "0"


def test_bad_requests_touch_nothing(fake, tree, owner, tmp_path):
    for target, opts, tracer, msg in [
            (RecordTarget(), {}, None, "nothing to monitor"),
            (PADDR, {"flush_interval": 0}, None, "flush_interval"),
            (PADDR, {"rotate_interval": 1.0}, TracerOptions(kind="tracefs"), "rotation")]:
        with pytest.raises(UsageError, match=msg):
            check_request(target, RecordingOptions(**opts), tracer)
        with pytest.raises(UsageError, match=msg):
            Recording(target, RecordingOptions(**opts), tree=tree, ownership=owner,
                      spec_builder=paddr_spec, tracer=tracer)
    with pytest.raises(CollectError, match="no monitoring started by damo-collect"):
        make(tree, owner, tmp_path, RecordTarget(ongoing=True), spec_builder=None).run()
    with pytest.raises(CollectError, match="missing: no such file"):
        make(tree, owner, tmp_path, RecordTarget(command=[str(tmp_path / "missing")])).run()
    fake.sync()
    assert fake.commands == [] and tree.read("kdamonds/nr_kdamonds") == "0"
    assert not (tmp_path / "r.h5").exists()
