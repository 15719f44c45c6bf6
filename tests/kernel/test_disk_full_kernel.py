"""damo-collect on a full disk, against a real DAMON kernel (inside tools/damon-vm).

The archive goes to a small tmpfs mounted in the guest; once a few snapshots are
flushed, another file fills the rest of it (as another process would). Recording must
then stop with one error line and exit status 1, the kdamond must be turned off and
forgotten, and the archive must stay readable with every snapshot flushed before.
"""
import json
import os
import subprocess

import pytest

from tests.kernel.conftest import committed_snapshots, nr_kdamonds, wait_for

pytestmark = pytest.mark.kernel


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip("cannot mount a tmpfs: %s" % r.stderr.strip())
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path):
    """Write zeros to ``path`` until the file system is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * (64 << 10))
        except OSError as e:
            assert e.errno == 28, e
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def test_record_stops_cleanly_when_the_disk_fills(workload, collect_bg, small_fs):
    from damo_pipe.archive import read_archive_records

    w = workload("--mib", "64")
    out = small_fs / "rec.h5"
    p = collect_bg("record", "-o", out, "--target_pid", w.pid, "--flush_interval", "0.2",
                   "--monitoring_intervals", "5ms", "50ms", "1s")
    wait_for(lambda: committed_snapshots(str(out)) >= 3, 300, "3 flushed snapshots", alive=p)
    fill(small_fs / "ballast")
    assert p.wait(300) == 1, p.stderr
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert lines == ["damo-collect: error: no space left on device writing %s" % out], p.stderr
    # the kdamond is off and forgotten
    assert nr_kdamonds() == 0
    assert json.loads(open(os.environ["DAMO_PIPE_STATE_FILE"]).read())["kdamonds"] == []
    # the archive holds what was flushed, nothing half-written, and no temporary file
    recs = read_archive_records(out)
    assert len(recs) == 1 and recs[0].nr_snapshots >= 3
    r = recs[0]
    last = r.nr_snapshots - 1
    assert int(r.snapshots.region_offset[last] + r.snapshots.nr_regions[last]) == len(r.regions)
    assert sorted(os.listdir(small_fs)) == ["ballast", "rec.h5"]
    # nothing else holds space: with both files gone the file system is empty again
    os.unlink(out)
    os.unlink(small_fs / "ballast")
    st = os.statvfs(small_fs)
    assert (st.f_blocks - st.f_bfree) * st.f_frsize < 1 << 20
