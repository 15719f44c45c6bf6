"""A fake DAMON sysfs tree answered by a small simulated kernel (for unit tests).

The tree is plain files in a temporary directory laid out like Linux 6.12's
``/sys/kernel/mm/damon/admin`` (see ../shared/fixtures/kernel/sysfs-kdamond-*.txt). A
thread polls the ``nr_*`` files and every ``kdamonds/N/state`` and reacts like the
kernel: it creates or removes directories when an ``nr_*`` value changes, and carries
out ``on`` / ``off`` / ``commit`` / ``update_schemes_stats`` /
``update_schemes_tried_regions`` / ``update_schemes_tried_bytes`` /
``clear_schemes_tried_regions``, then writes ``on``/``off`` back into ``state`` (the
collector waits for that, as it costs nothing against the real kernel, whose writes
finish before ``write()`` returns).

The simulated access pattern of a target: its address range (the target's regions, or a
synthetic three-mapping layout for a pid without regions) split into ``nr_regions``
equal regions; the first 10 % "hot" (every sample), the next 30 % "warm" (a third of
the samples), the rest "cold" (0). ``access_fn`` replaces it.

Run alone (``python tests/support/fake_kernel.py ROOT``) it serves ROOT until SIGTERM.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time

import numpy as np

MiB = 1 << 20
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
FAKE_KDAMOND_PID_BASE = 4242

#: synthetic vaddr layout of a target without regions: (start, size)
SYNTHETIC_MAPPINGS = ((0x400000, 64 * MiB), (0x7F0000000000, 256 * MiB), (0x7FFFF0000000, 8 * MiB))


def default_access(target_idx, start, end, tick, max_nr):
    n = len(start)
    nr = np.zeros(n, np.int64)
    hot = max(1, n // 10)
    warm = max(1, (3 * n) // 10)
    nr[:hot] = max_nr
    nr[hot:hot + warm] = max(1, max_nr // 3)
    return nr


def _w(path, value):
    with open(path, "w") as f:
        f.write("%s\n" % value)


def _r(path):
    with open(path) as f:
        return f.read().strip()


class FakeKernel:
    """Simulated DAMON sysfs (Linux 6.12 layout by default)."""

    def __init__(self, root, *, nr_regions=None, access_fn=None, with_filter_passed=False,
                 intervals_goal=False, check_pids=True, poll_s=0.001, addr_unit=None,
                 new_stats=False, tune_fn=None):
        """Newer kernels' files (all off: the 6.12 layout): ``intervals_goal`` (6.15, and
        the ``update_tuned_intervals`` command: it writes ``tune_fn(tick)`` = (sample_us,
        aggr_us) into the interval files, default the configured ones halved),
        ``addr_unit`` (6.18: the file's value), ``new_stats`` (stats/nr_snapshots and
        max_nr_snapshots, 6.17/6.18)."""
        self.root = os.fspath(root)
        self.addr_unit = addr_unit
        self.new_stats = new_stats
        self.tune_fn = tune_fn
        self.admin = self.root
        self.nr_regions = nr_regions
        self.access_fn = access_fn or default_access
        self.with_filter_passed = with_filter_passed
        self.intervals_goal = intervals_goal
        self.check_pids = check_pids
        self.poll_s = poll_s
        self.tick = 0
        self.commands = []        # (kdamond_idx, command) carried out, in order
        self._known = {}          # nr file -> count
        self._states = {}         # state file -> last value we wrote / saw
        self._stop = threading.Event()
        self._thread = None
        self.errors = []
        self.cycles = 0
        os.makedirs(os.path.join(self.root, "kdamonds"), exist_ok=True)
        _w(os.path.join(self.root, "kdamonds/nr_kdamonds"), 0)
        self._known[os.path.join(self.root, "kdamonds/nr_kdamonds")] = 0

    # -- thread -------------------------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._run, name="fake-damon", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as e:  # keep serving; tests check .errors
                self.errors.append(repr(e))
            self.cycles += 1
            time.sleep(self.poll_s)

    def sync(self, timeout=10):
        """Wait until every write made before this call has been handled."""
        target = self.cycles + 2
        deadline = time.monotonic() + timeout
        while self.cycles < target:
            if time.monotonic() > deadline:
                raise TimeoutError("fake kernel does not poll")
            time.sleep(self.poll_s)

    # -- the "kernel" -------------------------------------------------------------------
    def poll_once(self):
        # states first: "off" then "nr_kdamonds 0" in one poll interval must both happen
        for path in list(self._states):
            if path not in self._states:
                continue
            try:
                v = _r(path)
            except OSError:
                continue
            if v and v != self._states[path]:   # '' = a writer between O_TRUNC and write()
                self._state_cmd(path, v)
        for path in list(self._known):
            if path not in self._known:
                continue
            try:
                v = int(_r(path))
            except (OSError, ValueError):
                continue
            if v != self._known[path]:
                self._resize(path, v)
        self._check_targets()

    def _forget_under(self, d):
        for p in [p for p in self._known if p.startswith(d + os.sep)]:
            del self._known[p]
        for p in [p for p in self._states if p.startswith(d + os.sep)]:
            del self._states[p]

    def _resize(self, nr_path, n):
        d = os.path.dirname(nr_path)
        kind = os.path.basename(nr_path)[3:]
        old = self._known[nr_path]
        for i in range(n, old):
            sub = os.path.join(d, str(i))
            self._forget_under(sub)
            shutil.rmtree(sub, ignore_errors=True)
        for i in range(old, n):
            # build aside, then rename: the real kernel's directories appear complete
            sub = os.path.join(d, str(i))
            tmp = os.path.join(d, ".new-%d" % i)
            os.makedirs(tmp, exist_ok=True)
            getattr(self, "_make_" + kind)(tmp)
            os.rename(tmp, sub)
            for table in (self._known, self._states):
                for p in [p for p in table if p.startswith(tmp + os.sep)]:
                    table[sub + p[len(tmp):]] = table.pop(p)
        self._known[nr_path] = n

    def _nr_dir(self, d, name):
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, "nr_" + name)
        _w(p, 0)
        self._known[p] = 0

    def _files(self, d, values):
        for rel, v in values.items():
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            _w(p, v)

    def _make_kdamonds(self, d):
        self._files(d, {"state": "off", "pid": -1})
        self._states[os.path.join(d, "state")] = "off"
        self._nr_dir(os.path.join(d, "contexts"), "contexts")

    def _make_contexts(self, d):
        files = {"avail_operations": "vaddr fvaddr paddr", "operations": "vaddr",
                 "monitoring_attrs/intervals/sample_us": 5000,
                 "monitoring_attrs/intervals/aggr_us": 100000,
                 "monitoring_attrs/intervals/update_us": 1000000,
                 "monitoring_attrs/nr_regions/min": 10,
                 "monitoring_attrs/nr_regions/max": 1000}
        if self.intervals_goal:
            for f in ("access_bp", "aggrs", "min_sample_us", "max_sample_us"):
                files["monitoring_attrs/intervals/intervals_goal/" + f] = 0
        if self.addr_unit is not None:
            files["addr_unit"] = self.addr_unit
        self._files(d, files)
        self._nr_dir(os.path.join(d, "targets"), "targets")
        self._nr_dir(os.path.join(d, "schemes"), "schemes")

    def _make_targets(self, d):
        self._files(d, {"pid_target": 0})
        self._nr_dir(os.path.join(d, "regions"), "regions")

    def _make_regions(self, d):
        self._files(d, {"start": 0, "end": 0})

    def _make_schemes(self, d):
        files = {"action": "stat", "target_nid": -1, "apply_interval_us": 0,
                 "access_pattern/age/max": U32_MAX, "access_pattern/age/min": 0,
                 "access_pattern/nr_accesses/max": U32_MAX, "access_pattern/nr_accesses/min": 0,
                 "access_pattern/sz/max": U64_MAX, "access_pattern/sz/min": 0,
                 "quotas/bytes": 0, "quotas/effective_bytes": 0, "quotas/ms": 0,
                 "quotas/reset_interval_ms": 0, "quotas/weights/age_permil": 0,
                 "quotas/weights/nr_accesses_permil": 0, "quotas/weights/sz_permil": 0,
                 "watermarks/high": 0, "watermarks/interval_us": 0, "watermarks/low": 0,
                 "watermarks/metric": "none", "watermarks/mid": 0,
                 "tried_regions/total_bytes": 0}
        for f in ("nr_applied", "nr_tried", "qt_exceeds", "sz_applied", "sz_tried"):
            files["stats/" + f] = 0
        if self.with_filter_passed:
            files["stats/sz_ops_filter_passed"] = 0
        if self.new_stats:
            files["stats/nr_snapshots"] = 0
            files["stats/max_nr_snapshots"] = 0
        self._files(d, files)
        self._nr_dir(os.path.join(d, "quotas/goals"), "goals")
        self._nr_dir(os.path.join(d, "filters"), "filters")

    def _make_goals(self, d):
        self._files(d, {"target_metric": "user_input", "target_value": 0, "current_value": 0})

    def _make_filters(self, d):
        self._files(d, {"type": "anon", "matching": "N", "memcg_path": "", "addr_start": 0,
                        "addr_end": 0, "damon_target_idx": 0})

    # -- state commands ---------------------------------------------------------------
    def _state_cmd(self, path, cmd):
        kd = os.path.dirname(path)
        idx = int(os.path.basename(kd))
        self.commands.append((idx, cmd))
        on = self._states[path] == "on"
        if cmd == "on":
            _w(os.path.join(kd, "pid"), FAKE_KDAMOND_PID_BASE + idx)
            self.tick = 0
            on = True
        elif cmd == "off":
            _w(os.path.join(kd, "pid"), -1)
            on = False
        elif cmd == "update_tuned_intervals" and self.intervals_goal:
            if on:
                iv = os.path.join(kd, "contexts/0/monitoring_attrs/intervals")
                if self.tune_fn is not None:
                    su, au = self.tune_fn(self.tick)
                else:
                    su = int(_r(os.path.join(iv, "sample_us"))) // 2
                    au = int(_r(os.path.join(iv, "aggr_us"))) // 2
                _w(os.path.join(iv, "sample_us"), su)
                _w(os.path.join(iv, "aggr_us"), au)
        elif cmd in ("update_schemes_tried_regions", "update_schemes_tried_bytes",
                     "update_schemes_stats", "clear_schemes_tried_regions", "commit"):
            if on:
                if cmd == "update_schemes_tried_regions":
                    self.tick += 1
                    self._fill_tried(kd, bytes_only=False)
                elif cmd == "update_schemes_tried_bytes":
                    self.tick += 1
                    self._fill_tried(kd, bytes_only=True)
                elif cmd == "clear_schemes_tried_regions":
                    self._clear_tried(kd)
        value = "on" if on else "off"
        _w(path, value)
        self._states[path] = value

    def kdamond_regions(self, kd):
        """Per target: the simulated (start, end, nr_accesses, age) columns now."""
        ctx = os.path.join(kd, "contexts/0")
        ops = _r(os.path.join(ctx, "operations"))
        sample = int(_r(os.path.join(ctx, "monitoring_attrs/intervals/sample_us")))
        aggr = int(_r(os.path.join(ctx, "monitoring_attrs/intervals/aggr_us")))
        max_nr = max(1, aggr // max(1, sample))
        max_regions = int(_r(os.path.join(ctx, "monitoring_attrs/nr_regions/max")))
        nt = int(_r(os.path.join(ctx, "targets/nr_targets")))
        out = []
        for t in range(nt):
            td = os.path.join(ctx, "targets/%d" % t)
            nreg = int(_r(os.path.join(td, "regions/nr_regions")))
            ranges = [(int(_r(os.path.join(td, "regions/%d/start" % j))),
                       int(_r(os.path.join(td, "regions/%d/end" % j)))) for j in range(nreg)]
            if not ranges:
                if ops == "paddr":
                    ranges = [(0x100000, 0x100000 + 1024 * MiB)]
                else:
                    ranges = list((a, a + s) for a, s in SYNTHETIC_MAPPINGS)
            n = self.nr_regions or max(10, max_regions // max(1, nt))
            n = max(n, len(ranges))
            total = sum(b - a for a, b in ranges)
            starts, ends = [], []
            # regions per range proportional to its size (at least one)
            left = n
            for k, (a, b) in enumerate(ranges):
                m = left - (len(ranges) - k - 1) if k == len(ranges) - 1 else \
                    max(1, min(left - (len(ranges) - k - 1), round(n * (b - a) / total)))
                left -= m
                pages = (b - a) // 4096
                m = max(1, min(m, pages)) if pages else 1
                edges = [a + ((b - a) * i // m) // 4096 * 4096 for i in range(m)] + [b]
                for i in range(m):
                    if edges[i + 1] > edges[i]:
                        starts.append(edges[i])
                        ends.append(edges[i + 1])
            s = np.array(starts, np.uint64)
            e = np.array(ends, np.uint64)
            nr = np.asarray(self.access_fn(t, s, e, self.tick, max_nr), np.int64)
            age = np.where(nr > 0, 1, self.tick).astype(np.int64)
            out.append((s, e, nr, age))
        return out, max_nr, aggr

    def _scheme_match(self, sd, s, e, nr, age):
        def rng(name):
            return (int(_r(os.path.join(sd, "access_pattern/%s/min" % name))),
                    int(_r(os.path.join(sd, "access_pattern/%s/max" % name))))
        (szmin, szmax), (nmin, nmax), (amin, amax) = rng("sz"), rng("nr_accesses"), rng("age")
        sz = (e - s).astype(np.float64)
        return (sz >= szmin) & (sz <= float(szmax)) & (nr >= nmin) & (nr <= nmax) & \
            (age >= amin) & (age <= amax)

    def _clear_tried(self, kd):
        ctx = os.path.join(kd, "contexts/0")
        ns = int(_r(os.path.join(ctx, "schemes/nr_schemes")))
        for i in range(ns):
            td = os.path.join(ctx, "schemes/%d/tried_regions" % i)
            for name in os.listdir(td):
                if name.isdigit():
                    shutil.rmtree(os.path.join(td, name))
            _w(os.path.join(td, "total_bytes"), 0)

    def _fill_tried(self, kd, bytes_only):
        ctx = os.path.join(kd, "contexts/0")
        targets, max_nr, aggr = self.kdamond_regions(kd)
        ns = int(_r(os.path.join(ctx, "schemes/nr_schemes")))
        for i in range(ns):
            sd = os.path.join(ctx, "schemes/%d" % i)
            td = os.path.join(sd, "tried_regions")
            rows = []
            for s, e, nr, age in targets:
                m = self._scheme_match(sd, s, e, nr, age)
                rows.extend(zip(s[m].tolist(), e[m].tolist(), nr[m].tolist(), age[m].tolist()))
            total = sum(b - a for a, b, _, _ in rows)
            # stats: one aggregation's worth of tries (and applies for non-stat actions)
            st = os.path.join(sd, "stats")
            action = _r(os.path.join(sd, "action"))
            _w(os.path.join(st, "nr_tried"), int(_r(os.path.join(st, "nr_tried"))) + len(rows))
            _w(os.path.join(st, "sz_tried"), int(_r(os.path.join(st, "sz_tried"))) + total)
            if self.new_stats:
                _w(os.path.join(st, "nr_snapshots"), int(_r(os.path.join(st, "nr_snapshots"))) + 1)
            if action != "stat":
                _w(os.path.join(st, "nr_applied"), int(_r(os.path.join(st, "nr_applied"))) + len(rows))
                _w(os.path.join(st, "sz_applied"), int(_r(os.path.join(st, "sz_applied"))) + total)
            if bytes_only:
                _w(os.path.join(td, "total_bytes"), total)
                continue
            for name in os.listdir(td):
                if name.isdigit():
                    shutil.rmtree(os.path.join(td, name))
            for j, (a, b, n, g) in enumerate(rows):
                rd = os.path.join(td, str(j))
                os.mkdir(rd)
                _w(os.path.join(rd, "start"), a)
                _w(os.path.join(rd, "end"), b)
                _w(os.path.join(rd, "nr_accesses"), n)
                _w(os.path.join(rd, "age"), g)
                if self.with_filter_passed:
                    _w(os.path.join(rd, "sz_filter_passed"), 0)
            _w(os.path.join(td, "total_bytes"), total)

    def _check_targets(self):
        """A vaddr kdamond whose target processes all exited turns itself off."""
        if not self.check_pids:
            return
        for path, st in list(self._states.items()):
            if st != "on":
                continue
            kd = os.path.dirname(path)
            ctx = os.path.join(kd, "contexts/0")
            try:
                if _r(os.path.join(ctx, "operations")) == "paddr":
                    continue
                nt = int(_r(os.path.join(ctx, "targets/nr_targets")))
                pids = [int(_r(os.path.join(ctx, "targets/%d/pid_target" % t))) for t in range(nt)]
            except (OSError, ValueError):
                continue
            if pids and not any(_alive(p) for p in pids):
                _w(os.path.join(kd, "pid"), -1)
                _w(path, "off")
                self._states[path] = "off"


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][:1] not in ("Z", "X")
    except OSError:
        return False


def main(argv):
    root = argv[0]
    k = FakeKernel(root, nr_regions=int(argv[1]) if len(argv) > 1 else None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    k.start()
    print("ready", flush=True)
    try:
        while not stop.wait(0.1):
            pass
    finally:
        k.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
