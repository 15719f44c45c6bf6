"""A kdamond that damo-pipe created: configure, start, snapshot, stop — and nothing else.

:class:`KdamondSession` is the only code that changes DAMON's state. It refuses to
touch DAMON when anything it did not create is there (``nr_kdamonds`` not 0 when we
start, or a kdamond that is not in our ownership file, or whose pid changed) and raises
:class:`DamonBusyError` saying what holds it.

Snapshots come from a ``stat`` DAMOS scheme matching every region, appended after the
user's schemes: writing ``update_schemes_tried_regions`` to ``state`` makes the kernel
fill ``tried_regions`` with the regions of the last aggregation interval (the write
returns when it is done), which are then read in-process with one Cython loop.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import List, Optional, Tuple

import numpy as np

from damo_pipe.collect.ownership import OwnershipFile
from damo_pipe.collect.sysfs import SysfsTree, read_tried_regions
from damo_pipe.errors import CollectError, DamonBusyError, DamonUnavailableError, UsageError
from damo_pipe.model import DAMOS_STAT_FIELDS

log = logging.getLogger(__name__)

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1

OPS = ("vaddr", "fvaddr", "paddr")
DAMOS_ACTIONS = ("willneed", "cold", "pageout", "hugepage", "nohugepage", "lru_prio",
                 "lru_deprio", "migrate_hot", "migrate_cold", "stat")
WMARK_METRICS = ("none", "free_mem_rate")
FILTER_TYPES = ("anon", "memcg", "young", "hugepage_size", "unmapped", "addr", "target", "active")

#: kernel stats file name -> model.DAMOS_STAT_FIELDS name
STAT_FILES = {"nr_tried": "nr_tried", "sz_tried": "sz_tried", "nr_applied": "nr_applied",
              "sz_applied": "sz_applied", "sz_ops_filter_passed": "sz_ops_filter_passed",
              "qt_exceeds": "qt_exceeds", "nr_snapshots": "nr_snapshots",
              "max_nr_snapshots": "max_nr_snapshots"}


@dataclasses.dataclass
class SchemeSpec:
    """One DAMOS scheme, in kernel units except where noted."""

    action: str = "stat"
    sz_min: int = 0
    sz_max: int = U64_MAX
    access_rate_min: float = 0.0      # percent of the maximum nr_accesses
    access_rate_max: float = 100.0
    age_min_us: int = 0
    age_max_us: int = U64_MAX
    apply_interval_us: int = 0
    quota_ms: int = 0
    quota_bytes: int = 0
    quota_reset_ms: int = 0
    quota_weights: Tuple[int, int, int] = (0, 0, 0)   # sz, nr_accesses, age (permil)
    wmark_metric: str = "none"
    wmark_interval_us: int = 0
    wmark_high: int = 0
    wmark_mid: int = 0
    wmark_low: int = 0
    target_nid: Optional[int] = None
    filters: list = dataclasses.field(default_factory=list)   # dicts, see FILTER_TYPES

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class MonitoringSpec:
    ops: str = "vaddr"
    pids: List[int] = dataclasses.field(default_factory=list)
    #: per target: list of (start, end); for paddr one target with the RAM range(s)
    regions: List[List[Tuple[int, int]]] = dataclasses.field(default_factory=list)
    sample_us: int = 5000
    aggr_us: int = 100000
    update_us: int = 1000000
    min_nr_regions: int = 10
    max_nr_regions: int = 1000
    #: intervals auto-tuning goal (access_bp, aggrs, min_sample_us, max_sample_us) or None
    autotune: Optional[Tuple[int, int, int, int]] = None
    schemes: List[SchemeSpec] = dataclasses.field(default_factory=list)

    @property
    def nr_targets(self):
        return len(self.pids) if self.ops != "paddr" else 1

    def to_dict(self):
        return dataclasses.asdict(self)


def system_ram_ranges(iomem_path="/proc/iomem"):
    """Top-level "System RAM" ranges of /proc/iomem as half-open (start, end)."""
    try:
        with open(iomem_path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise DamonUnavailableError("cannot read %s: %s" % (iomem_path, e)) from None
    out = []
    for line in lines:
        if line.startswith(" "):
            continue
        rng, _, name = line.partition(" : ")
        if name.strip() != "System RAM":
            continue
        a, _, b = rng.strip().partition("-")
        start, end = int(a, 16), int(b, 16) + 1
        if end > start + 1:
            out.append((start, end))
    if not out or all(s == 0 and e <= 1 for s, e in out):
        raise DamonUnavailableError("no System RAM range readable in %s (addresses need root)"
                                    % iomem_path)
    return out


def default_paddr_region(iomem_path="/proc/iomem"):
    """The biggest System RAM range (what damo monitors for paddr by default)."""
    return max(system_ram_ranges(iomem_path), key=lambda r: r[1] - r[0])


# ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class Features:
    ops: Tuple[str, ...] = ()
    intervals_goal: bool = False
    apply_interval: bool = False
    quota_goals: bool = False
    watermarks: bool = False
    filters: bool = False
    target_nid: bool = False
    stats: Tuple[str, ...] = ()
    tried_sz_filter_passed: Optional[bool] = None   # known after the first non-empty snapshot
    #: contexts/N/addr_unit (Linux 6.18+)
    addr_unit: bool = False
    #: the ``update_tuned_intervals`` state command (Linux 6.15+, with intervals_goal)
    tuned_intervals: bool = False

    def to_dict(self):
        return dataclasses.asdict(self)


def detect_features(tree: SysfsTree, kd_rel):
    ctx = kd_rel + "/contexts/0"
    sch = ctx + "/schemes/0"
    avail = tree.read_opt(ctx + "/avail_operations", "")
    stats = tuple(sorted(f for f in os.listdir(tree.path(sch + "/stats")))) \
        if tree.exists(sch + "/stats") else ()
    goal = tree.exists(ctx + "/monitoring_attrs/intervals/intervals_goal")
    return Features(
        ops=tuple(avail.split()) if avail else ("vaddr", "paddr"),
        intervals_goal=goal,
        addr_unit=tree.exists(ctx + "/addr_unit"),
        # update_tuned_intervals came with intervals_goal (one patch series, Linux 6.15)
        tuned_intervals=goal,
        apply_interval=tree.exists(sch + "/apply_interval_us"),
        quota_goals=tree.exists(sch + "/quotas/goals"),
        watermarks=tree.exists(sch + "/watermarks"),
        filters=tree.exists(sch + "/filters"),
        target_nid=tree.exists(sch + "/target_nid"),
        stats=stats,
    )


def stat_scheme():
    """The scheme whose tried regions are our snapshots: ``stat`` on every region."""
    return SchemeSpec(action="stat", access_rate_max=float("inf"))


def describe_kdamond(tree: SysfsTree, idx):
    """One line saying what kdamond IDX does (for busy errors and status)."""
    kd = "kdamonds/%d" % idx
    state = tree.read_opt(kd + "/state", "?")
    pid = tree.read_opt(kd + "/pid", "?")
    parts = ["kdamond %d (state %s, thread pid %s" % (idx, state, pid)]
    try:
        nctx = int(tree.read_opt(kd + "/contexts/nr_contexts", "0"))
    except ValueError:
        nctx = 0
    for c in range(nctx):
        ctx = "%s/contexts/%d" % (kd, c)
        ops = tree.read_opt(ctx + "/operations", "?")
        pids = []
        try:
            nt = int(tree.read_opt(ctx + "/targets/nr_targets", "0"))
        except ValueError:
            nt = 0
        for t in range(nt):
            p = tree.read_opt("%s/targets/%d/pid_target" % (ctx, t))
            if p is not None and ops != "paddr":
                pids.append(p)
        actions = []
        try:
            ns = int(tree.read_opt(ctx + "/schemes/nr_schemes", "0"))
        except ValueError:
            ns = 0
        for s in range(ns):
            actions.append(tree.read_opt("%s/schemes/%d/action" % (ctx, s), "?"))
        desc = ", ops %s" % ops
        if pids:
            desc += ", monitoring pid %s" % " ".join(pids)
        if actions:
            desc += ", schemes: %s" % " ".join(actions)
        parts.append(desc)
    return "".join(parts) + ")"


class KdamondSession:
    """A kdamond created (or earlier started) by damo-pipe, identified by its index."""

    def __init__(self, tree: SysfsTree, ownership: OwnershipFile, kdamond_idx, spec: MonitoringSpec,
                 features: Features, stat_scheme_idx, nr_kdamonds_before=0):
        self.tree = tree
        self.ownership = ownership
        self.idx = kdamond_idx
        self.kd = "kdamonds/%d" % kdamond_idx
        self.ctx = self.kd + "/contexts/0"
        self.spec = spec
        self.features = features
        self.stat_scheme_idx = stat_scheme_idx
        self.nr_kdamonds_before = nr_kdamonds_before
        self.kdamond_pid = None
        self.started_unix = None
        self._closed = False
        #: (sample_us, aggr_us) the kernel tuned them to (autotuning on), last read
        self.tuned = None
        self._tuned_at = None
        self._last_context = None

    # -- creation -------------------------------------------------------------------
    @classmethod
    def create(cls, tree: SysfsTree, ownership: OwnershipFile, spec: MonitoringSpec, *,
               description="", mode="record"):
        """Create, configure and start a kdamond; refuse if DAMON is in use."""
        tree.check_available()
        tree.check_writable()
        check_idle(tree, ownership)
        validate_spec(spec)
        ownership.add(tree.root, 0, state="creating", mode=mode, description=description,
                      nr_kdamonds_before=0, spec=spec.to_dict())
        session = None
        try:
            tree.write_nr("kdamonds", 1)
            kd = "kdamonds/0"
            tree.write_nr(kd + "/contexts", 1)
            tree.write_nr(kd + "/contexts/0/schemes", 1)   # for feature detection
            features = detect_features(tree, kd)
            session = cls(tree, ownership, 0, spec, features, len(spec.schemes))
            session._check_features()
            session._apply(spec)
            tree.write_state(kd, "on")
            session.kdamond_pid = session._wait_pid()
            session.started_unix = time.time()
            ownership.update(tree.root, 0, state="on", kdamond_pid=session.kdamond_pid,
                             stat_scheme_idx=session.stat_scheme_idx,
                             features=features.to_dict(), started_unix=session.started_unix)
            return session
        except BaseException:
            # undo what we did; never leave a half-made kdamond behind
            try:
                if tree.read_opt("kdamonds/nr_kdamonds") not in (None, "0"):
                    if tree.read_opt("kdamonds/0/state") == "on":
                        tree.write_state("kdamonds/0", "off")
                    tree.write_nr("kdamonds", 0)
            except Exception as e:  # noqa: BLE001 - report the original error
                log.warning("cleanup after a failed start failed: %s", e)
            ownership.remove(tree.root, 0)
            raise

    @classmethod
    def attach(cls, tree: SysfsTree, ownership: OwnershipFile, kdamond_idx=None):
        """The running kdamond that ``damo-collect start`` created (for ongoing/snapshot/stop)."""
        tree.check_available()
        entries = ownership.find(tree.root, kdamond_idx)
        nr = tree.read_int("kdamonds/nr_kdamonds")
        if not entries:
            if nr:
                raise DamonBusyError(
                    "no kdamond of damo-collect runs (%s has no entry for %s); DAMON is used by "
                    "someone else: %s" % (ownership.path, tree.root,
                                          "; ".join(describe_kdamond(tree, i) for i in range(nr))))
            raise CollectError("no monitoring started by damo-collect is running "
                               "(start one with `damo-collect start`)")
        e = entries[0]
        idx = e["kdamond_idx"]
        if idx >= nr:
            raise CollectError("the kdamond that damo-collect started (index %d) is gone; "
                               "`damo-collect stop` clears the stale entry" % idx)
        state = tree.read_opt("kdamonds/%d/state" % idx)
        pid = tree.read_opt("kdamonds/%d/pid" % idx)
        if state == "on" and e.get("kdamond_pid") is not None and str(e["kdamond_pid"]) != pid:
            raise DamonBusyError("kdamond %d now runs as thread pid %s, not the pid %s that "
                                 "damo-collect started; someone else restarted it: %s"
                                 % (idx, pid, e["kdamond_pid"], describe_kdamond(tree, idx)))
        spec = spec_from_dict(e.get("spec") or {})
        feats = Features(**{k: (tuple(v) if isinstance(v, list) else v)
                            for k, v in (e.get("features") or {}).items()})
        s = cls(tree, ownership, idx, spec, feats, e.get("stat_scheme_idx", len(spec.schemes)),
                e.get("nr_kdamonds_before", 0))
        s.kdamond_pid = e.get("kdamond_pid")
        s.started_unix = e.get("started_unix")
        return s

    def _wait_pid(self):
        deadline = time.monotonic() + 10
        while True:
            pid = self.tree.read_opt(self.kd + "/pid", "-1")
            if pid not in ("-1", "", None):
                return int(pid)
            if time.monotonic() > deadline:
                raise CollectError("kdamond did not start (pid stays -1)")
            time.sleep(0.002)

    def _check_features(self):
        f, spec = self.features, self.spec
        if spec.ops not in f.ops:
            raise DamonUnavailableError("this kernel's DAMON has no %r operations (available: %s)"
                                        % (spec.ops, " ".join(f.ops) or "none"))
        if spec.autotune is not None and not f.intervals_goal:
            raise DamonUnavailableError(
                "this kernel has no monitoring intervals auto-tuning "
                "(monitoring_attrs/intervals/intervals_goal, Linux 6.15+); drop "
                "--monitoring_intervals_autotune")
        for s in spec.schemes:
            if s.apply_interval_us and not f.apply_interval:
                raise DamonUnavailableError("this kernel has no per-scheme apply interval "
                                            "(schemes/N/apply_interval_us, Linux 6.7+)")
            if s.wmark_metric != "none" and not f.watermarks:
                raise DamonUnavailableError("this kernel has no DAMOS watermarks")
            if s.filters and not f.filters:
                raise DamonUnavailableError("this kernel has no DAMOS filters (Linux 6.3+)")
            if s.target_nid is not None and not f.target_nid:
                raise DamonUnavailableError("this kernel has no DAMOS target_nid (Linux 6.11+)")

    # -- configuration ------------------------------------------------------------------
    def _apply(self, spec: MonitoringSpec):
        t, ctx = self.tree, self.ctx
        t.write(ctx + "/operations", spec.ops)
        iv = ctx + "/monitoring_attrs/intervals"
        t.write(iv + "/sample_us", spec.sample_us)
        t.write(iv + "/aggr_us", spec.aggr_us)
        t.write(iv + "/update_us", spec.update_us)
        if self.features.intervals_goal:
            g = iv + "/intervals_goal"
            bp, aggrs, mn, mx = spec.autotune if spec.autotune else (0, 0, 0, 0)
            t.write(g + "/access_bp", bp)
            t.write(g + "/aggrs", aggrs)
            t.write(g + "/min_sample_us", mn)
            t.write(g + "/max_sample_us", mx)
        nr = ctx + "/monitoring_attrs/nr_regions"
        # the kernel checks min <= max only on commit/on, but keep the order safe anyway
        t.write(nr + "/max", max(spec.max_nr_regions, spec.min_nr_regions))
        t.write(nr + "/min", spec.min_nr_regions)
        t.write(nr + "/max", spec.max_nr_regions)
        targets = ctx + "/targets"
        t.write_nr(targets, spec.nr_targets)
        for i in range(spec.nr_targets):
            tr = "%s/%d" % (targets, i)
            if spec.ops != "paddr":
                t.write(tr + "/pid_target", spec.pids[i])
            regions = spec.regions[i] if i < len(spec.regions) else []
            t.write_nr(tr + "/regions", len(regions))
            for j, (a, b) in enumerate(regions):
                # write end first when moving a region up (the kernel checks start < end late,
                # but keep both orders valid)
                t.write("%s/regions/%d/start" % (tr, j), a)
                t.write("%s/regions/%d/end" % (tr, j), b)
        schemes = list(spec.schemes) + [stat_scheme()]
        t.write_nr(ctx + "/schemes", len(schemes))
        for i, s in enumerate(schemes):
            self._apply_scheme("%s/schemes/%d" % (ctx, i), s, spec)

    def _apply_scheme(self, d, s: SchemeSpec, spec: MonitoringSpec):
        t = self.tree
        t.write(d + "/action", s.action)
        max_nr = max(1, spec.aggr_us // max(1, spec.sample_us))
        ap = d + "/access_pattern"
        t.write(ap + "/sz/min", int(s.sz_min))
        t.write(ap + "/sz/max", min(U64_MAX, int(s.sz_max)))
        t.write(ap + "/nr_accesses/min", percent_to_samples(s.access_rate_min, max_nr))
        t.write(ap + "/nr_accesses/max", percent_to_samples(s.access_rate_max, max_nr))
        t.write(ap + "/age/min", us_to_aggrs(s.age_min_us, spec.aggr_us))
        t.write(ap + "/age/max", us_to_aggrs(s.age_max_us, spec.aggr_us))
        if self.features.apply_interval:
            t.write(d + "/apply_interval_us", s.apply_interval_us)
        q = d + "/quotas"
        if t.exists(q):
            t.write(q + "/ms", s.quota_ms)
            t.write(q + "/bytes", s.quota_bytes)
            t.write(q + "/reset_interval_ms", s.quota_reset_ms)
            w = q + "/weights"
            t.write(w + "/sz_permil", s.quota_weights[0])
            t.write(w + "/nr_accesses_permil", s.quota_weights[1])
            t.write(w + "/age_permil", s.quota_weights[2])
        if self.features.watermarks:
            w = d + "/watermarks"
            t.write(w + "/metric", s.wmark_metric)
            t.write(w + "/interval_us", s.wmark_interval_us)
            t.write(w + "/high", s.wmark_high)
            t.write(w + "/mid", s.wmark_mid)
            t.write(w + "/low", s.wmark_low)
        if self.features.target_nid:
            t.write(d + "/target_nid", -1 if s.target_nid is None else s.target_nid)
        if self.features.filters:
            t.write_nr(d + "/filters", len(s.filters))
            for j, f in enumerate(s.filters):
                fd = "%s/filters/%d" % (d, j)
                t.write(fd + "/type", f["type"])
                if f["type"] == "memcg":
                    t.write(fd + "/memcg_path", f["memcg_path"])
                elif f["type"] == "addr":
                    t.write(fd + "/addr_start", f["addr_start"])
                    t.write(fd + "/addr_end", f["addr_end"])
                elif f["type"] == "target":
                    t.write(fd + "/damon_target_idx", f["target_idx"])
                t.write(fd + "/matching", "Y" if f.get("matching", True) else "N")
                if "allow" in f and t.exists(fd + "/allow"):
                    t.write(fd + "/allow", "Y" if f["allow"] else "N")

    # -- running ------------------------------------------------------------------------
    def state(self):
        try:
            return self.tree.read_cached(self.kd + "/state")
        except CollectError:
            return "off"

    def is_running(self):
        return self.state() == "on"

    def _check_ours(self):
        if self.tree.read_int("kdamonds/nr_kdamonds") <= self.idx:
            raise CollectError("kdamond %d disappeared" % self.idx)
        pid = self.tree.read_opt(self.kd + "/pid")
        if self.kdamond_pid is not None and pid not in ("-1", str(self.kdamond_pid)):
            raise DamonBusyError("kdamond %d is no longer ours: %s"
                                 % (self.idx, describe_kdamond(self.tree, self.idx)))

    def update_tried_regions(self):
        """Ask the kernel to refill tried_regions (returns after one scheme round)."""
        self.tree.write_state(self.kd, "update_schemes_tried_regions")

    def read_tried_regions(self, scheme_idx=None, engine="auto"):
        """(columns tuple, total_bytes) of a scheme's tried regions (after an update)."""
        d = "%s/schemes/%d/tried_regions" % (self.ctx, self.stat_scheme_idx
                                              if scheme_idx is None else scheme_idx)
        path = self.tree.path(d)
        n = sum(1 for name in os.listdir(path) if name.isdigit())
        if self.features.tried_sz_filter_passed is None and n:
            self.features.tried_sz_filter_passed = os.path.exists(os.path.join(path, "0/sz_filter_passed"))
        cols = read_tried_regions(path, n, bool(self.features.tried_sz_filter_passed), engine=engine)
        total = self.tree.read_opt(d + "/total_bytes")
        return cols, (int(total) if total and total.isdigit() else None)

    def update_stats(self):
        self.tree.write_state(self.kd, "update_schemes_stats")

    def read_stats(self):
        """Per scheme (user schemes then ours): dict of DAMOS_STAT_FIELDS (missing = 0)."""
        out = []
        for i in range(len(self.spec.schemes) + 1):
            st = "%s/schemes/%d/stats" % (self.ctx, i)
            row = {f: 0 for f in DAMOS_STAT_FIELDS}
            for fname in self.features.stats:
                key = STAT_FILES.get(fname)
                if key is not None:
                    try:
                        v = self.tree.read_cached(st + "/" + fname)
                    except CollectError:
                        v = "0"
                    row[key] = int(v) if v.isdigit() else 0
            out.append(row)
        return out

    # -- context values the kernel offers (feature-detected) -------------------------------
    def context_columns(self):
        """{column: dtype} of the ``damon_context`` side table, or None when the kernel
        offers none of its values (Linux 6.12: no addr_unit, no tuned intervals)."""
        f = self.features
        if not (f.addr_unit or f.tuned_intervals):
            return None
        cols = {"time_ns": np.int64, "ctx_idx": np.int64}
        if f.addr_unit:
            cols["addr_unit"] = np.uint64
        if f.tuned_intervals:
            cols.update(sample_us=np.uint64, aggr_us=np.uint64, tuned=np.bool_)
        return cols

    #: units of the ``damon_context`` columns (the table's ``units_json``)
    CONTEXT_UNITS = {"time_ns": "ns (CLOCK_REALTIME)", "ctx_idx": "index",
                     "addr_unit": "bytes per DAMON address unit",
                     "sample_us": "us", "aggr_us": "us",
                     "tuned": "flag: read after update_tuned_intervals (autotuning on)"}

    @property
    def autotuned(self):
        """Whether the kernel tunes this session's intervals (goal set and supported)."""
        at = self.spec.autotune
        return bool(self.features.tuned_intervals and at is not None and any(at[:2]))

    def update_tuned_intervals(self):
        """Ask the kernel to write the tuned intervals into the sysfs interval files
        (only when the kernel tunes them)."""
        if self.autotuned:
            self.tree.write_state(self.kd, "update_tuned_intervals")

    def refresh_tuned(self, min_interval=1.0):
        """(sample_us, aggr_us) as tuned by the kernel, refreshed at most every
        ``min_interval`` seconds (one ``update_tuned_intervals`` round trip); None when
        the kernel does not tune this session's intervals."""
        if not self.autotuned:
            return None
        now = time.monotonic()
        if self._tuned_at is None or now - self._tuned_at >= min_interval:
            self._tuned_at = now
            try:
                self.update_tuned_intervals()
                self.tuned = self._read_intervals()
            except CollectError as e:
                log.debug("update_tuned_intervals failed: %s", e)
        return self.tuned

    def context_row(self):
        """The ``damon_context`` row when it differs from the last one returned (the
        first call always returns it); None otherwise or when the kernel offers none."""
        if self.context_columns() is None:
            return None
        row = self.read_context()
        if row == self._last_context:
            return None
        self._last_context = row
        return row

    def read_context(self):
        """The ``damon_context`` row (without ``time_ns``) of what the kernel offers:
        addr_unit; sample_us/aggr_us (the tuned ones after :meth:`update_tuned_intervals`
        when autotuning is on, else the configured ones)."""
        f = self.features
        row = {"ctx_idx": 0}
        if f.addr_unit:
            row["addr_unit"] = _int_or(self.tree.read_opt(self.ctx + "/addr_unit"), 1)
        if f.tuned_intervals:
            row["sample_us"], row["aggr_us"] = self._read_intervals()
            row["tuned"] = self.autotuned
        return row

    def _read_intervals(self):
        """(sample_us, aggr_us) in the context's sysfs interval files (the configured
        ones when a file cannot be read)."""
        iv = self.ctx + "/monitoring_attrs/intervals"
        return (_int_or(self.tree.read_opt(iv + "/sample_us"), self.spec.sample_us),
                _int_or(self.tree.read_opt(iv + "/aggr_us"), self.spec.aggr_us))

    def commit(self):
        self.tree.write_state(self.kd, "commit")

    def stop(self):
        """Turn our kdamond off, restore nr_kdamonds, forget ownership. Idempotent."""
        if self._closed:
            return
        t = self.tree
        errors = []
        t.close_cached()
        try:
            nr = t.read_int("kdamonds/nr_kdamonds")
            if nr > self.idx:
                pid = t.read_opt(self.kd + "/pid")
                if self.kdamond_pid is not None and pid not in ("-1", str(self.kdamond_pid)):
                    raise DamonBusyError("kdamond %d is no longer ours (%s): leaving it alone"
                                         % (self.idx, describe_kdamond(t, self.idx)))
                if t.read_opt(self.kd + "/state") == "on":
                    try:
                        t.write_state(self.kd, "off")
                    except CollectError:
                        # it may have stopped by itself meanwhile (its targets exited):
                        # the kernel then refuses "off" (EPERM); fine once it reads off
                        t._wait(lambda: t.read_opt(self.kd + "/state") == "off",
                                "kdamond %d to turn off" % self.idx, timeout=10)
                    t.close_cached()
                if nr == self.idx + 1 and self.nr_kdamonds_before == 0 and self.idx == 0:
                    t.write_nr("kdamonds", 0)
        except DamonBusyError:
            raise
        except Exception as e:  # noqa: BLE001 - keep cleaning up, then report
            errors.append(e)
        self.ownership.remove(t.root, self.idx)
        self._closed = True
        if errors:
            raise CollectError("stopping kdamond %d: %s" % (self.idx, errors[0]))


def check_idle(tree: SysfsTree, ownership: OwnershipFile):
    """Raise DamonBusyError unless nr_kdamonds is 0 (we never add to someone's kdamonds)."""
    nr = tree.read_int("kdamonds/nr_kdamonds")
    if nr == 0:
        # stale entries of ours (kdamonds gone) are harmless: drop them
        for e in ownership.find(tree.root):
            ownership.remove(tree.root, e["kdamond_idx"])
        return
    owned = {e["kdamond_idx"]: e for e in ownership.find(tree.root)}
    lines = []
    for i in range(nr):
        d = describe_kdamond(tree, i)
        e = owned.get(i)
        if e is not None and str(e.get("kdamond_pid")) == tree.read_opt("kdamonds/%d/pid" % i):
            d += " - started by damo-collect %s (process %s); use `damo-collect record ongoing`, " \
                 "`snapshot` or `stop`" % (e.get("mode", ""), e.get("owner_pid"))
        else:
            d += " - not created by damo-collect"
        lines.append(d)
    raise DamonBusyError("DAMON is in use (nr_kdamonds is %d, damo-collect only starts from 0 and "
                         "never touches kdamonds it did not create): %s" % (nr, "; ".join(lines)))


def _int_or(text, default):
    """int of a sysfs value (decimal; addr_unit may be written in any base), or default."""
    try:
        return int(str(text).strip(), 0)
    except (TypeError, ValueError):
        return default


def percent_to_samples(pct, max_nr):
    if pct >= 100:
        return max_nr if pct == 100 else U32_MAX
    return int(pct * max_nr / 100)


def us_to_aggrs(us, aggr_us):
    if us >= U64_MAX:
        return U32_MAX
    return min(U32_MAX, int(us // max(1, aggr_us)))


def validate_spec(spec: MonitoringSpec):
    if spec.ops not in OPS:
        raise UsageError("unknown operations %r (choose from %s)" % (spec.ops, ", ".join(OPS)))
    if spec.ops in ("vaddr", "fvaddr") and not spec.pids:
        raise UsageError("%s monitoring needs a target process (--target_pid or a command)" % spec.ops)
    if spec.ops == "fvaddr" and not any(spec.regions):
        raise UsageError("fvaddr monitoring needs --regions")
    if spec.ops == "paddr" and not (spec.regions and spec.regions[0]):
        raise UsageError("paddr monitoring needs at least one region")
    if not (0 < spec.sample_us <= spec.aggr_us):
        raise UsageError("need 0 < sample interval <= aggregation interval (got %s, %s)"
                         % (spec.sample_us, spec.aggr_us))
    if not (3 <= spec.min_nr_regions <= spec.max_nr_regions):
        raise UsageError("need 3 <= min_nr_regions <= max_nr_regions (got %d, %d)"
                         % (spec.min_nr_regions, spec.max_nr_regions))
    for rs in spec.regions:
        for a, b in rs:
            if not a < b:
                raise UsageError("region start must be below its end: %#x-%#x" % (a, b))
    for s in spec.schemes:
        if s.action not in DAMOS_ACTIONS:
            raise UsageError("unknown DAMOS action %r (choose from %s)" % (s.action, ", ".join(DAMOS_ACTIONS)))
        if s.wmark_metric not in WMARK_METRICS:
            raise UsageError("unknown watermark metric %r" % s.wmark_metric)


def spec_from_dict(d):
    d = dict(d)
    schemes = [SchemeSpec(**{k: (tuple(v) if k == "quota_weights" else v) for k, v in s.items()})
               for s in d.pop("schemes", [])]
    regions = [[tuple(r) for r in rs] for rs in d.pop("regions", [])]
    autotune = d.pop("autotune", None)
    return MonitoringSpec(schemes=schemes, regions=regions,
                          autotune=tuple(autotune) if autotune else None, **d)


def split_targets(start, nr_targets):
    """Boundaries of the targets in a concatenated tried-regions list.

    The kernel lists each target's regions in ascending address order, target after
    target; a new target begins where the start address drops below the previous one.
    Returns a list of (lo, hi) row ranges, at most NR_TARGETS of them.
    """
    n = len(start)
    if nr_targets <= 1 or n == 0:
        return [(0, n)]
    drops = np.nonzero(start[1:] < start[:-1])[0] + 1
    cuts = [0] + [int(x) for x in drops[:nr_targets - 1]] + [n]
    return [(cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1)]
