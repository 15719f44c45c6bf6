"""damo-collect on the fake DAMON sysfs: tmpfs directories, runs in-process and in a subprocess."""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from damo_pipe.collect.cli import main

REPO = Path(__file__).resolve().parents[2]


def fast_tmpdir():
    """tmpfs when available: the fake tree creates thousands of small files."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix="damo-pipe-fake-", dir=base)


def cli(fake, *args):
    """damo-collect ARGS in this process, on the fake kernel FAKE's tree."""
    args = [str(a) for a in args]
    return main(args[:1] + ["--sysfs_root", fake.root] + args[1:])


def spawn_collector(fake, *args):
    """damo-collect ARGS in a subprocess (text pipes), on the fake kernel FAKE's tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    args = [str(a) for a in args]
    return subprocess.Popen([sys.executable, "-m", "damo_pipe.collect.cli", args[0],
                             "--sysfs_root", fake.root, *args[1:]], env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def committed(path):
    """Snapshots of record 0 committed to the archive PATH (0 while it does not exist)."""
    from damo_pipe.archive import ArchiveReader
    try:
        with ArchiveReader(path) as r:
            return r.nr_snapshots(0)
    except Exception:   # noqa: BLE001 - not created yet
        return 0


def wait_until(cond, timeout=30):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
