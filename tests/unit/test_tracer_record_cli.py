"""``damo-collect record --tracer tracefs`` end to end on the host: the collector's fake
DAMON sysfs (tests/support/fake_kernel.py) plus a fake tracefs whose instance trace_pipe is
fed from the real trace_pipe capture. Checks the wiring between the record command and
damo_pipe.collect.commands.record_trace.
"""
import os
import threading
import time

import numpy as np
import pytest

from damo_pipe.archive import read_archive_records
from damo_pipe.collect.cli import main
from tests.support.fake_kernel import FakeKernel
from tests.support.tracer_helpers import (TRACE_PIPE_CAPTURE, FakeTracefs, feed_fifo,
                                          reference_snapshots)


@pytest.fixture(autouse=True)
def no_real_sysfs(monkeypatch):
    monkeypatch.setenv("DAMO_PIPE_NO_REAL_SYSFS", "1")


@pytest.fixture
def fake_kernel(tmp_path, monkeypatch):
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else str(tmp_path)
    import shutil
    import tempfile
    root = tempfile.mkdtemp(prefix="damo-pipe-tracer-", dir=base)
    monkeypatch.setenv("DAMO_PIPE_STATE_FILE", os.path.join(root, "owned.json"))
    k = FakeKernel(os.path.join(root, "admin"), nr_regions=20).start()
    yield k
    k.stop()
    shutil.rmtree(root, ignore_errors=True)


def _feed_when_instance_appears(fake, data, stop):
    deadline = time.monotonic() + 30
    while not fake.instances_made and time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.01)
    if fake.instances_made:
        feed_fifo(os.path.join(fake.instances_made[0], "trace_pipe"), data, piece=4000,
                  delay=0.001, stop=stop)


@pytest.mark.parametrize("mode", ["instance", "toplevel"])
def test_record_tracer_tracefs_end_to_end(fake_kernel, tmp_path, monkeypatch, mode):
    if not TRACE_PIPE_CAPTURE.exists():
        pytest.skip("kernel capture %s not found" % TRACE_PIPE_CAPTURE)
    data = TRACE_PIPE_CAPTURE.read_bytes()
    fake = FakeTracefs(tmp_path / "tracing").install(monkeypatch)
    before = fake.snapshot_state()
    stop = threading.Event()
    if mode == "toplevel":
        fake.instances_made.append(str(fake.root))   # feed the top-level trace_pipe
    feeder = threading.Thread(target=_feed_when_instance_appears, args=(fake, data, stop),
                              daemon=True)
    feeder.start()
    out = tmp_path / "t.h5"
    try:
        rc = main(["record", "--sysfs_root", fake_kernel.root, "--ops", "paddr",
                   "--regions", "1M-1025M", "-o", str(out), "--timeout", "2",
                   "--tracer", "tracefs", "--tracefs_root", str(fake.root),
                   "--tracefs_mode", mode, "--tracer_state_dir", str(tmp_path / "state"),
                   "--flush_interval", "0.2"])
    finally:
        stop.set()
        feeder.join(10)
    assert rc == 0
    recs = read_archive_records(out)
    trace = [r for r in recs if r.nr_snapshots and r.snapshots.end_ns[0] < 10 ** 15]
    sysfs = [r for r in recs if r.nr_snapshots and r.snapshots.end_ns[0] >= 10 ** 15]
    assert len(trace) == 1 and len(sysfs) == 1
    ref = reference_snapshots(data.decode())[0]
    t = trace[0]
    assert t.target_id == sysfs[0].target_id == 0
    np.testing.assert_array_equal(t.snapshots.end_ns, [e for e, _ in ref])
    np.testing.assert_array_equal(t.regions.start, [row[0] for _, rows in ref for row in rows])
    np.testing.assert_array_equal(t.regions.nr_accesses, [row[2] for _, rows in ref for row in rows])
    assert t.first_start_ns is not None
    after = fake.snapshot_state()
    if mode == "toplevel":
        after.pop("buffer_size_kb"), before.pop("buffer_size_kb")
    assert after == before
    assert list((fake.root / "instances").iterdir()) == []
