"""Fixtures for tests that run against a real DAMON kernel INSIDE the VM (tools/damon-vm).

Outside the VM every test here is skipped: the host's kernel runs a kdamond that is not
ours, and nothing may write to its DAMON sysfs. "Inside" means both the harness's
environment variable DAMON_PIPE_IN_VM=1 and a writable DAMON sysfs with nr_kdamonds 0.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADMIN = Path("/sys/kernel/mm/damon/admin")
MiB = 1 << 20


def vm_skip_reason():
    if os.environ.get("DAMON_PIPE_IN_VM") != "1":
        return "needs a real DAMON kernel: run inside tools/damon-vm (DAMON_PIPE_IN_VM unset)"
    nr = ADMIN / "kdamonds/nr_kdamonds"
    if not nr.exists():
        return "no DAMON sysfs in this kernel"
    if not os.access(nr, os.W_OK):
        return "DAMON sysfs is not writable (not root?)"
    if nr.read_text().strip() != "0":
        return "nr_kdamonds is not 0: DAMON is in use, not a throw-away VM"
    return None


_REASON = vm_skip_reason()


def pytest_collection_modifyitems(config, items):
    if _REASON is None:
        return
    mark = pytest.mark.skip(reason=_REASON)
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(mark)


def wait_for(cond, timeout, what, interval=0.2, alive=None):
    """Poll COND until it returns a truthy value; fail with WHAT after TIMEOUT seconds,
    or at once when the process ALIVE (a Forked collector) has exited."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if alive is not None and alive.poll() is not None:
            pytest.fail("damo-collect exited (%s) while waiting for %s: %s"
                        % (alive.returncode, what, alive.stderr[-4000:]))
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def nr_kdamonds():
    return int((ADMIN / "kdamonds/nr_kdamonds").read_text())


def area_heat(records, areas, skip_first=0):
    """Size-weighted mean nr_accesses per named area {name: (lo, hi)} over all snapshots."""
    out = {}
    for name, (a, b) in areas.items():
        num = den = 0
        for r in records:
            for k in range(skip_first, r.nr_snapshots):
                lo, hi = r.region_bounds(k)
                s = r.regions.start[lo:hi].astype(float)
                e = r.regions.end[lo:hi].astype(float)
                nr = r.regions.nr_accesses[lo:hi]
                ov = (e.clip(None, b) - s.clip(a, None)).clip(0, None)
                num += float((ov * nr).sum())
                den += float(ov.sum())
        out[name] = num / den if den else float("nan")
    return out


def hwc_areas(lo, hi):
    size = hi - lo
    hot = size // 10 // 4096 * 4096
    warm = size * 3 // 10 // 4096 * 4096
    return {"hot": (lo, lo + hot), "warm": (lo + hot, lo + hot + warm), "cold": (lo + hot + warm, hi)}


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    """Environment for damo-collect subprocesses: a private ownership file."""
    d = tmp_path_factory.mktemp("collect-state")
    e = dict(os.environ)
    e["DAMO_PIPE_STATE_FILE"] = str(d / "owned.json")
    os.environ["DAMO_PIPE_STATE_FILE"] = e["DAMO_PIPE_STATE_FILE"]
    return e


@pytest.fixture(scope="session")
def workload_bin(tmp_path_factory):
    out = tmp_path_factory.mktemp("workload") / "damo_workload"
    subprocess.run(["gcc", "-O2", "-o", str(out), str(REPO / "tools/workload/damo_workload.c")],
                   check=True)
    return str(out)


class Workload:
    def __init__(self, binary, *args):
        self.proc = subprocess.Popen([binary, *args], stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == b"ready", line
        self.pid = self.proc.pid
        self.lo, self.hi = int(line[1]), int(line[2])

    def rss(self):
        with open("/proc/%d/statm" % self.pid) as f:
            return int(f.read().split()[1]) * 4096

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def workload(workload_bin):
    started = []

    def start(*args):
        w = Workload(workload_bin, *args)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


class Forked:
    """damo-collect's main() in a forked child of this (already warmed-up) process.

    Under TCG a fresh Python that imports numpy and h5py takes 10-60 s; a fork takes
    milliseconds and runs exactly the same code path as the console script.
    Popen-like: pid, poll(), wait(timeout), send_signal(), kill(), stdout/stderr text.
    """

    def __init__(self, args, env):
        import tempfile
        self.args = [str(a) for a in args]
        self._out = tempfile.NamedTemporaryFile(prefix="collect-out-", delete=False)
        self._err = tempfile.NamedTemporaryFile(prefix="collect-err-", delete=False)
        self.returncode = None
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:   # child
            rc = 1
            try:
                for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(s, signal.SIG_DFL)
                signal.alarm(0)
                os.setpgid(0, 0)
                os.environ.clear()
                os.environ.update(env)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                os.dup2(self._out.fileno(), 1)
                os.dup2(self._err.fileno(), 2)
                sys.stdout = open(1, "w", closefd=False)
                sys.stderr = open(2, "w", closefd=False)
                import faulthandler
                import logging
                logging.root.handlers[:] = []
                faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
                from damo_pipe.collect.cli import main
                rc = main(self.args)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
            except BaseException:   # noqa: BLE001
                import traceback
                traceback.print_exc()
                rc = 1
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(rc or 0)
        self.pid = pid

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, sig):
        if self.returncode is None:
            os.kill(self.pid, sig)

    def stacks(self):
        """The child's Python stacks (faulthandler on SIGUSR1), for a failure message."""
        if self.poll() is not None:
            return "(exited %s)" % self.returncode
        before = len(self.stderr)
        self.send_signal(signal.SIGUSR1)
        time.sleep(2)
        return self.stderr[before:]

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def _text(self, f):
        with open(f.name) as fh:
            return fh.read()

    @property
    def stdout(self):
        return self._text(self._out)

    @property
    def stderr(self):
        return self._text(self._err)

    def cleanup(self):
        for f in (self._out, self._err):
            f.close()
            try:
                os.unlink(f.name)
            except OSError:
                pass


@pytest.fixture(scope="session", autouse=True)
def warm_imports():
    """Import everything the CLI needs once, before the first fork."""
    if _REASON is None:
        import damo_pipe.archive  # noqa: F401
        import damo_pipe.collect.cli as cli
        import damo_pipe.collect.commands._options  # noqa: F401
        import damo_pipe.collect.recording  # noqa: F401
        import damo_pipe.collect.tracing  # noqa: F401
        from damo_pipe.archive.layout import compression_kwargs
        compression_kwargs(None)
        for _, mod in cli.COMMANDS:
            __import__("damo_pipe.collect.commands." + mod)
        try:
            import damo_pipe.analyze.access  # noqa: F401
            import damo_pipe.analyze.holistic  # noqa: F401
            import damo_pipe.collect.monitor  # noqa: F401
            import damo_pipe.formats.perf_samples  # noqa: F401
        except ImportError:
            pass


#: what ``record`` records in these tests unless a test gives --do_record: no CPU
#: profile (perf's start-up and each perf script/report walk /lib/modules over 9p, 20-40 s
#: under TCG); tests/kernel/test_holistic_kernel.py records it
DEFAULT_DO_RECORD = ("--do_record", "access", "mem_footprint")


def with_default_do_record(args):
    """``args`` of a ``record`` command line with DEFAULT_DO_RECORD unless it has one."""
    args = [str(a) for a in args]
    if args and args[0] == "record" and "--do_record" not in args:
        cut = args.index("--") if "--" in args else len(args)
        args[cut:cut] = list(DEFAULT_DO_RECORD)
    return args


@pytest.fixture
def collect(env):
    """Run damo-collect to completion (forked): returns an object with returncode/stdout/stderr.
    ``record`` runs without the CPU profile unless asked (DEFAULT_DO_RECORD)."""
    done = []

    def run(*args, timeout=200, check=True):
        p = Forked(with_default_do_record(args), env)
        done.append(p)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            pytest.fail("damo-collect %s did not finish in %d s" % (" ".join(p.args), timeout))
        if check and p.returncode != 0:
            pytest.fail("damo-collect %s failed (%d): %s" % (" ".join(p.args), p.returncode,
                                                             p.stderr))
        return p
    yield run
    for p in done:
        p.cleanup()


@pytest.fixture
def collect_bg(env):
    """Start damo-collect in the background (forked); SIGTERM/SIGKILL at teardown if running.
    ``record`` runs without the CPU profile unless asked (DEFAULT_DO_RECORD)."""
    procs = []

    def start(*args):
        p = Forked(with_default_do_record(args), env)
        procs.append(p)
        return p
    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        p.cleanup()


def committed_snapshots(path):
    """Snapshots a reader sees now in an archive being written (0 when not yet there)."""
    if not os.path.exists(path):
        return 0
    try:
        from damo_pipe.archive import ArchiveReader
        with ArchiveReader(path) as r:
            return min((r.nr_snapshots(i) for i in range(len(r))), default=0)
    except Exception:   # noqa: BLE001 - file being created
        return 0


def diagnostics(proc=None, archive=None, workload=None):
    """What a failing kernel test should show: the collector's Python stacks, this
    process's threads, DAMON's state, memory and swap, the archive's last snapshot."""
    import threading
    out = ["parent threads: %s" % [t.name for t in threading.enumerate()]]
    if proc is not None:
        out.append("collector stacks:\n%s" % proc.stacks())
        out.append("collector stderr:\n%s" % proc.stderr[-4000:])
    try:
        out.append("nr_kdamonds %s" % nr_kdamonds())
        kd = ADMIN / "kdamonds/0"
        if kd.exists():
            out.append("kdamond 0 state %s" % (kd / "state").read_text().strip())
            for sd in sorted(kd.glob("contexts/0/schemes/[0-9]*")):
                stats = {f.name: f.read_text().strip() for f in sorted((sd / "stats").iterdir())}
                out.append("scheme %s %s stats %s" % (sd.name, (sd / "action").read_text().strip(),
                                                      stats))
    except OSError as e:
        out.append("DAMON sysfs: %s" % e)
    out.append("/proc/swaps:\n%s" % Path("/proc/swaps").read_text())
    mem = {ln.split(":")[0]: ln.split(":")[1].strip()
           for ln in Path("/proc/meminfo").read_text().splitlines()}
    out.append("meminfo %s" % {k: mem.get(k) for k in ("MemFree", "MemAvailable", "SwapFree",
                                                         "AnonPages", "Shmem")})
    if archive is not None:
        try:
            from damo_pipe.archive import ArchiveReader
            with ArchiveReader(archive) as r:
                out.append("committed snapshots %s" % [r.nr_snapshots(i) for i in range(len(r))])
                if workload is not None and len(r) and r.nr_snapshots(0):
                    rec = r.load(0)
                    lo, hi = rec.region_bounds(rec.nr_snapshots - 1)
                    st, en = rec.regions.start[lo:hi], rec.regions.end[lo:hi]
                    nr, age = rec.regions.nr_accesses[lo:hi], rec.regions.age[lo:hi]
                    inside = (en > workload.lo) & (st < workload.hi)
                    out.append("last snapshot regions in the workload (MiB offset, MiB, nr, age): %s"
                               % [((int(a) - workload.lo) >> 20, (int(b) - int(a)) >> 20, int(n),
                                   int(g)) for a, b, n, g in zip(st[inside], en[inside],
                                                                 nr[inside], age[inside])])
        except Exception as e:   # noqa: BLE001 - what the reader says is the diagnostic
            out.append("archive %s: %s: %s" % (archive, type(e).__name__, e))
    return "\n".join(out)


@pytest.fixture
def fast_perf_start():
    """kernel.kptr_restrict=2 while the test runs (restored after): perf record then skips
    the kernel's maps, whose module paths it would look up under /lib/modules over 9p
    (40-200 s of start-up under TCG; 3 s without). Kernel samples stay unnamed; the
    tests look at user-space functions and DAMON tracepoints only."""
    knob = Path("/proc/sys/kernel/kptr_restrict")
    old = knob.read_text().strip()
    knob.write_text("2")
    yield
    knob.write_text(old)


class TestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def per_test_timeout():
    """Fail a test that takes longer than 480 s (a hung test must not eat the VM's time)."""
    def expire(signum, frame):
        raise TestTimeout("test took longer than 480 s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(480)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def damon_idle_after():
    """Every test must leave DAMON as it found it (nr_kdamonds 0)."""
    yield
    if _REASON is None:
        left = nr_kdamonds()
        if left:
            # clean up so later tests can run, then fail this one
            for i in range(left):
                st = ADMIN / ("kdamonds/%d/state" % i)
                if st.read_text().strip() == "on":
                    st.write_text("off")
            (ADMIN / "kdamonds/nr_kdamonds").write_text("0")
            pytest.fail("test left %d kdamond(s) behind" % left)
