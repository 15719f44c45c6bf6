"""Fixtures of the Recording tests: a fake DAMON sysfs with its ownership file, and a fake perf."""
import os
import shutil
import sys
from pathlib import Path

import pytest

from damo_pipe.collect.kdamond import MonitoringSpec
from damo_pipe.collect.ownership import OwnershipFile
from damo_pipe.collect.recording import RecordTarget
from damo_pipe.collect.sysfs import SysfsTree
from tests.support.collect import fast_tmpdir
from tests.support.fake_kernel import FakeKernel

PADDR = RecordTarget(ops="paddr")
FAKE_PERF = Path(__file__).resolve().parent / "fake_perf.py"


@pytest.fixture
def root():
    d = fast_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake(root):
    k = FakeKernel(os.path.join(root, "admin"), nr_regions=20).start()
    yield k
    k.stop()
    assert not k.errors


@pytest.fixture
def tree(fake):
    return SysfsTree(fake.root)


@pytest.fixture
def owner(root):
    return OwnershipFile(os.path.join(root, "owned.json"))


def paddr_spec(pids):
    assert pids == []
    return MonitoringSpec(ops="paddr", regions=[[(1 << 20, 1025 << 20)]])


def assert_cleaned_up(fake, tree, owner, turned_off=True):
    assert tree.read("kdamonds/nr_kdamonds") == "0"
    assert owner.load() == []
    fake.sync()
    if turned_off:   # else the (fake) kernel turned it off itself: its targets exited
        assert fake.commands[-1] == (0, "off")


@pytest.fixture
def perf(tmp_path, monkeypatch):
    """Path of a fake perf; its event log is perf.log beside it."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "perf"
    exe.write_text("#!/bin/sh\nexec %s %s \"$@\"\n" % (sys.executable, FAKE_PERF))
    exe.chmod(0o755)
    monkeypatch.setenv("FAKE_PERF_LOG", str(d / "perf.log"))
    return str(exe)


def perf_events(perf):
    log = Path(perf).parent / "perf.log"
    return [ln.split()[0] for ln in log.read_text().splitlines()] if log.exists() else []
