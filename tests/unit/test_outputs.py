"""Outputs never lie: a full disk, a missing directory, a killed writer, symlinks.

* every output goes through ``_atomic.atomic_output``: complete or absent, the replaced
  file's mode kept, a symlink replaced (never written through), errors naming the
  output as given (not a temporary name);
* a full disk (a small tmpfs: needs root to mount, skipped otherwise) is one error line
  and exit 1 for every output format, the temporary file removed and an earlier output
  untouched; HDF5 never meets the full disk (``_diskspace`` reservations);
* a convert killed with SIGKILL leaves its marked temporary file, and the next write of
  the same output removes it (never one of a live writer, another host or user);
* ``batch`` never leaves its input directories or ``--out`` through symlinks.
"""
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.gen import make_record
from damo_pipe import _atomic, _diskspace
from damo_pipe.analyze.cli import main
from damo_pipe.archive import ArchiveReader, ArchiveWriter, read_archive_records, write_records
from damo_pipe.data import sample_path
from damo_pipe.errors import DiskFullError, OutputError

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, timeout=300):
    """damo-analyze in a fresh process (exit status, stdout, stderr as a user sees them)."""
    return subprocess.run([sys.executable, "-m", "damo_pipe.analyze.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def error_lines(stderr):
    return [x for x in stderr.splitlines() if x.strip()]


def temps_in(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".tmp"))


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory):
    """An archive of 400 x 1000 regions (~18 MB of columns, poorly compressible)."""
    p = tmp_path_factory.mktemp("big") / "big.h5"
    write_records([make_record(400, 1000, seed=5)], p, compression="none")
    return p


# ------------------------------------------------------------------- atomic_output

def test_overwriting_keeps_the_mode(tmp_path):
    out = tmp_path / "o.json"
    for ext in (".h5", ".json", ".jsonc", ".perf"):
        out = tmp_path / ("o" + ext)
        out.write_bytes(b"old")
        os.chmod(out, 0o600)
        assert main(["convert", str(sample_path()), str(out)]) == 0
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600, ext
        assert out.read_bytes() != b"old"
    png = tmp_path / "h.png"
    png.write_bytes(b"old")
    os.chmod(png, 0o640)
    assert main(["report", "heatmap", "--input", str(sample_path()), "--output", str(png)]) == 0
    assert stat.S_IMODE(os.stat(png).st_mode) == 0o640
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_new_output_gets_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        assert main(["convert", str(sample_path()), str(tmp_path / "n.json")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "n.json").st_mode) == 0o640


def test_a_symlinked_output_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    link = tmp_path / "o.json"
    link.symlink_to(victim)
    assert main(["convert", str(sample_path()), str(link)]) == 0
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and link.stat().st_size > 100


def test_errors_name_the_output_not_the_temporary_file(tmp_path):
    out = tmp_path / "o.bin"
    with pytest.raises(RuntimeError) as e, _atomic.atomic_output(out) as tmp:
        raise RuntimeError("boom")
    assert "boom" in str(e.value)
    assert not os.listdir(tmp_path)
    with pytest.raises(DiskFullError, match="no space left on device writing %s$" % out), \
            _atomic.atomic_output(out) as tmp:
        raise OSError(28, "No space left on device", tmp)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("args", [
    ["convert", "{sample}", "{nodir}/o.h5"],
    ["convert", "{sample}", "{nodir}/o.json"],
    ["report", "heatmap", "--input", "{sample}", "--output", "{nodir}/h.png"],
    ["report", "html", "--input", "{sample}", "--output", "{nodir}/r.html"],
])
def test_an_output_in_a_missing_directory_is_one_line(tmp_path, args):
    nodir = tmp_path / "missing" / "dir"
    args = [a.format(sample=sample_path(), nodir=nodir) for a in args]
    r = run_cli(*args)
    assert r.returncode == 1, r.stderr
    out = args[-1]
    assert error_lines(r.stderr) == ["damo-analyze: error: cannot write %s: no such directory %s"
                                     % (out, nodir)]
    assert not (tmp_path / "missing").exists()


def test_converting_an_empty_directory_is_an_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".hidden").write_text("x")
    out = tmp_path / "out.h5"
    assert main(["convert", str(empty), str(out)]) == 1
    assert capsys.readouterr().err.strip() == "damo-analyze: error: no record files in %s" % empty
    assert not out.exists()


# ------------------------------------------------------------------- stale temporary files

def _dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_stale_temps_of_dead_writers_only_are_removed(tmp_path):
    out = tmp_path / "o.h5"
    host = _atomic._host_tag()
    live = subprocess.Popen(["sleep", "60"])
    try:
        start = _atomic._start_time(live.pid)
        names = {
            "dead": ".o.h5.dp-%s-%d-%d-abcdef.tmp" % (host, _dead_pid(), 12345),
            # the temporary file of a temporary file (an archive written to a scratch
            # file, then converted): ours too
            "dead, nested": "..o.h5.dp-%s-%d-%d-abcdek.tmp.dp-%s-%d-%d-abcdel.tmp"
                            % (host, _dead_pid(), 1, host, _dead_pid(), 2),
            "reused pid": ".o.h5.dp-%s-%d-%d-abcdeg.tmp" % (host, live.pid, start + 1),
            "live": ".o.h5.dp-%s-%d-%d-abcdeh.tmp" % (host, live.pid, start),
            "other host": ".o.h5.dp-%08x-%d-%d-abcdei.tmp" % ((int(host, 16) ^ 1),
                                                              _dead_pid(), 1),
            "unmarked": ".o.h5.k3j4h5.tmp",
            "other output": ".p.h5.dp-%s-%d-%d-abcdej.tmp" % (host, _dead_pid(), 1),
        }
        for n in names.values():
            (tmp_path / n).write_bytes(b"x")
        removed = _atomic.remove_stale_temps(out)
        assert sorted(os.path.basename(p) for p in removed) == sorted(
            [names["dead"], names["dead, nested"], names["reused pid"]])
        left = set(os.listdir(tmp_path))
        assert left == {names[k] for k in ("live", "other host", "unmarked", "other output")}
    finally:
        live.kill()
        live.wait()


def test_sigkill_during_convert_then_the_next_run_cleans_up(tmp_path, big_archive):
    out = tmp_path / "o.h5"
    out.write_bytes(b"earlier output")
    p = subprocess.Popen([sys.executable, "-m", "damo_pipe.analyze.cli", "convert",
                          str(big_archive), str(out), "--compression", "gzip"], cwd=REPO,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not temps_in(tmp_path) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert temps_in(tmp_path), "the temporary file never appeared"
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()
    assert p.returncode == -signal.SIGKILL
    left = temps_in(tmp_path)
    assert len(left) == 1 and left[0].startswith(".o.h5.dp-")
    assert out.read_bytes() == b"earlier output"
    # the next write of the same output removes it (whatever its input)
    assert main(["convert", str(sample_path()), str(out)]) == 0
    assert temps_in(tmp_path) == []
    assert len(read_archive_records(out)) == 1


# ------------------------------------------------------------------- a full disk

@pytest.fixture
def small_fs(tmp_path):
    """make(size) -> a tmpfs of that size (needs root: mount)."""
    mounted = []

    def make(size):
        mnt = tmp_path / ("fs%d" % len(mounted))
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", str(mnt)],
                           capture_output=True, text=True)
        if r.returncode:
            pytest.skip("cannot mount a small tmpfs (needs root): %s" % r.stderr.strip())
        mounted.append(mnt)
        return mnt
    yield make
    for m in mounted:
        subprocess.run(["umount", "-l", str(m)], check=False)


@pytest.mark.parametrize("ext,extra", [(".h5", ["--compression", "none"]), (".h5", []),
                                       (".json", []), (".jsonc", []), (".perf", [])])
def test_convert_on_a_full_disk_is_one_line_and_leaves_nothing(small_fs, big_archive, ext, extra):
    fs = small_fs("2m")
    out = fs / ("o" + ext)
    out.write_bytes(b"earlier output")
    r = run_cli("convert", big_archive, out, *extra)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert error_lines(r.stderr) == ["damo-analyze: error: no space left on device writing %s"
                                     % out]
    assert sorted(os.listdir(fs)) == [out.name]
    assert out.read_bytes() == b"earlier output"


def test_an_archive_that_fits_is_written(small_fs, big_archive):
    fs = small_fs("64m")
    out = fs / "o.h5"
    r = run_cli("convert", big_archive, out, "--compression", "none")
    assert r.returncode == 0, r.stderr
    assert read_archive_records(out)[0].nr_snapshots == 400
    assert os.listdir(fs) == ["o.h5"]
    # no reserved block is left behind: the space used is the file's size
    assert os.stat(out).st_blocks * 512 <= os.path.getsize(out) + (64 << 10)


def test_hdf5_failing_itself_is_still_one_error_and_exit_1(small_fs, big_archive):
    """Without a reservation (as on a file system another process fills meanwhile),
    HDF5 meets the full disk itself: exit 1 (not a crash), the line, no file left."""
    fs = small_fs("2m")
    out = fs / "o.h5"
    code = ("import sys\n"
            "from damo_pipe import _diskspace\n"
            "_diskspace.SpaceReservation.ensure = lambda self, n: None\n"
            "from damo_pipe.analyze.cli import main\n"
            "sys.exit(main(['convert', %r, %r, '--compression', 'none']))\n"
            % (str(big_archive), str(out)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "damo-analyze: error: no space left on device writing %s" % out in r.stderr
    assert os.listdir(fs) == []


def test_a_report_to_a_full_disk_is_not_exit_0(small_fs):
    fs = small_fs("64k")
    with open(fs / "fill", "wb", buffering=0) as f:
        try:
            for _ in range(64):
                f.write(b"\0" * 4096)
        except OSError:
            pass
    with open(fs / "report.txt", "w") as f:
        r = subprocess.run([sys.executable, "-m", "damo_pipe.analyze.cli", "report", "access",
                            "--input", str(sample_path())], stdout=f, stderr=subprocess.PIPE,
                           text=True, timeout=120, cwd=REPO)
    assert r.returncode == 1
    assert error_lines(r.stderr)[-1].startswith("damo-analyze: error: no space left on device")


class _FillsAfter:
    """A SpaceReservation.ensure that says the disk is full from the n-th call on."""

    def __init__(self, n):
        self.calls = 0
        self.n = n
        self.real = _diskspace.SpaceReservation.ensure

    def __call__(self, reservation, nbytes):
        self.calls += 1
        if self.calls >= self.n:
            raise DiskFullError(reservation.report_path)
        return self.real(reservation, nbytes)


def test_swmr_writer_on_a_full_disk_keeps_what_was_flushed(tmp_path, monkeypatch):
    rec = make_record(30, 50, seed=3)
    path = tmp_path / "live.h5"
    w = ArchiveWriter(path, swmr=True)
    idx = w.add_record(rec.slice_snapshots(0, 0))
    for k in range(10):
        w.append(idx, rec.slice_snapshots(k, k + 1))
    w.flush()
    fills = _FillsAfter(1)
    monkeypatch.setattr(_diskspace.SpaceReservation, "ensure", lambda sr, n: fills(sr, n))
    w.append(idx, rec.slice_snapshots(10, 20))
    with pytest.raises(DiskFullError):
        w.flush()
    assert w.failed
    with pytest.raises(DiskFullError):
        w.flush()
    w.close()           # closes as it was at the last flush; never raises
    with ArchiveReader(path) as r:
        assert r.nr_snapshots(0) == 10
        got = r.load(0)
    np.testing.assert_array_equal(got.regions.start, rec.slice_snapshots(0, 10).regions.start)


def test_writer_stops_before_hdf5_writes_and_the_file_is_removed(tmp_path, monkeypatch):
    fills = _FillsAfter(3)
    monkeypatch.setattr(_diskspace.SpaceReservation, "ensure", lambda sr, n: fills(sr, n))
    out = tmp_path / "o.h5"
    with pytest.raises(DiskFullError, match="writing %s$" % out):
        write_records([make_record(50, 100, seed=1), make_record(50, 100, seed=2)], out)
    assert os.listdir(tmp_path) == []


def test_compaction_without_room_keeps_the_archive(tmp_path, monkeypatch):
    rec = make_record(20, 50, seed=4)
    path = tmp_path / "live.h5"
    w = ArchiveWriter(path, swmr=True)
    w.append(w.add_record(rec.slice_snapshots(0, 0)), rec)
    w.flush()
    real = _diskspace.SpaceReservation.ensure

    def ensure(reservation, nbytes):
        if os.path.basename(reservation.path).startswith(".live.h5.dp-"):
            raise DiskFullError(reservation.report_path)   # the compaction copy
        return real(reservation, nbytes)
    monkeypatch.setattr(_diskspace.SpaceReservation, "ensure", ensure)
    with pytest.warns(RuntimeWarning, match="not compacted"):
        w.close()
    assert os.listdir(tmp_path) == ["live.h5"]
    assert read_archive_records(path)[0].nr_snapshots == 20


def test_space_reservation_reserves_and_gives_back(small_fs):
    fs = small_fs("4m")
    p = fs / "f"
    p.write_bytes(b"x" * 1000)
    sr = _diskspace.SpaceReservation(p)
    sr.ensure(2 << 20)
    used = os.statvfs(fs)
    assert (used.f_blocks - used.f_bfree) * used.f_frsize >= 2 << 20
    with pytest.raises(DiskFullError, match="writing %s" % p):
        sr.ensure(8 << 20)
    sr.release()
    assert os.path.getsize(p) == 1000
    after = os.statvfs(fs)
    assert (after.f_blocks - after.f_bfree) * after.f_frsize < 64 << 10


# ------------------------------------------------------------------- batch and symlinks

def _batch(*args):
    return main(["batch", *map(str, args), "--threads", "--workers", "1", "--no_progress"])


def test_batch_does_not_follow_file_symlinks_out_of_an_input_directory(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.h5").write_bytes(Path(sample_path()).read_bytes())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.h5").write_bytes(Path(sample_path()).read_bytes())
    (d / "link.h5").symlink_to(outside / "secret.h5")
    (d / "inner.h5").symlink_to(d / "a.h5")      # inside: the same file, analysed once
    assert _batch(d, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "link.h5: symlink to %s, outside %s: not followed" % (outside / "secret.h5", d) in err
    assert sorted(os.listdir(tmp_path / "out")) == ["a.h5", "index.html"]
    assert _batch(d, "--out", tmp_path / "out2", "--follow_symlinks") == 0
    assert sorted(os.listdir(tmp_path / "out2")) == ["a.h5", "index.html", "link.h5"]


def test_batch_never_writes_through_symlinks_in_out(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    for n in ("a.h5", "b.h5"):
        (d / n).write_bytes(Path(sample_path()).read_bytes())
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "b.h5").mkdir(parents=True)
    (out / "a.h5").symlink_to(elsewhere)                 # a directory symlink
    victim = tmp_path / "victim.png"
    victim.write_text("keep me")
    (out / "b.h5" / "heatmap.png").symlink_to(victim)    # a file symlink
    assert _batch(d, "--out", out) == 1
    err = capsys.readouterr().err
    assert "%s is a symlink to %s: not written through" % (out / "a.h5", elsewhere) in err
    assert os.listdir(elsewhere) == []
    assert victim.read_text() == "keep me"
    png = out / "b.h5" / "heatmap.png"
    assert not png.is_symlink() and png.read_bytes()[:4] == b"\x89PNG"


def test_output_error_is_a_damo_pipe_error():
    e = _atomic.output_error(FileNotFoundError(2, "x"), "/nonexistent/dir/f")
    assert isinstance(e, OutputError) and e.exit_code == 1
    assert str(e) == "cannot write /nonexistent/dir/f: no such directory /nonexistent/dir"


def _fill(path):
    """Write zeros to ``path`` until its file system is full (as another process would)."""
    with open(path, "wb", buffering=0) as f:
        for piece in (64 << 10, 512):
            try:
                while True:
                    f.write(b"\0" * piece)
            except OSError as e:
                assert e.errno == 28, e


def _committed(path):
    try:
        with ArchiveReader(path) as r:
            return min((r.nr_snapshots(i) for i in range(len(r))), default=0)
    except Exception:   # noqa: BLE001 - being created
        return 0


def test_the_collector_on_a_full_disk_stops_cleanly(small_fs, monkeypatch):
    """damo-collect record (fake DAMON sysfs) into a tmpfs that another file fills once a
    few snapshots are flushed: one error line, exit 1, the kdamond off and forgotten,
    the archive readable with what was flushed. (On a real kernel:
    tests/kernel/test_disk_full_kernel.py.)"""
    import json
    import shutil
    import tempfile

    from tests.support.fake_kernel import FakeKernel

    fs = small_fs("16m")
    base = tempfile.mkdtemp(prefix="damo-pipe-fake-",
                            dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
    state = os.path.join(base, "owned.json")
    env = dict(os.environ, DAMO_PIPE_NO_REAL_SYSFS="1", DAMO_PIPE_STATE_FILE=state,
               PYTHONPATH=str(REPO))
    k = FakeKernel(os.path.join(base, "admin"), nr_regions=2000).start()
    p = None
    try:
        out = fs / "rec.h5"
        p = subprocess.Popen([sys.executable, "-m", "damo_pipe.collect.cli", "record",
                              "--sysfs_root", k.root, "-o", str(out), "--timeout", "120",
                              "--flush_interval", "0.2", "--ops", "paddr",
                              "--do_record", "access", "mem_footprint"],
                             env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        deadline = time.monotonic() + 60
        while _committed(out) < 3 and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _committed(out) >= 3
        flushed = _committed(out)
        _fill(fs / "ballast")
        _, err = p.communicate(timeout=120)
        assert p.returncode == 1, err
        assert error_lines(err) == ["damo-collect: error: no space left on device writing %s"
                                    % out]
        with open(os.path.join(k.root, "kdamonds", "nr_kdamonds")) as f:
            assert f.read().strip() == "0"
        assert json.load(open(state))["kdamonds"] == []
        recs = read_archive_records(out)
        assert len(recs) == 1 and recs[0].nr_snapshots >= flushed
        assert sorted(os.listdir(fs)) == ["ballast", "rec.h5"]
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        k.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_attaching_a_profile_without_room_leaves_the_archive(tmp_path, monkeypatch):
    from damo_pipe.archive import profile as AP
    from tests.support.records import profile_samples

    path = tmp_path / "a.h5"
    write_records([make_record(10, 20, seed=6)], path)
    before = path.read_bytes()

    def full(reservation, nbytes):
        raise DiskFullError(reservation.report_path)
    monkeypatch.setattr(_diskspace.SpaceReservation, "ensure", full)
    with pytest.raises(DiskFullError, match="no space left on device writing %s$" % path):
        AP.attach_profile(path, None, profile_samples(100))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["a.h5"]
