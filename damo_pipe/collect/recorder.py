"""Turn a running :class:`KdamondSession` into archive snapshots.

:func:`take_snapshot` asks the kernel for the stat scheme's tried regions and returns
one single-snapshot :class:`Record` per target. :class:`ArchiveRecorder` appends such
snapshots to an SWMR :class:`ArchiveWriter`, together with DAMOS stats of every scheme,
memory footprints and /proc/meminfo (side tables), flushing at least every
``flush_interval`` seconds and optionally rotating to a new file every
``rotate_interval`` seconds. :func:`record_loop` runs until a deadline, a stop flag, the
target's exit or the kdamond turning off.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np

from damo_pipe.collect import footprints as fp
from damo_pipe.collect.kdamond import KdamondSession, split_targets
from damo_pipe.errors import CollectError, DamonBusyError
from damo_pipe.model import (DAMOS_STAT_FIELDS, Intervals, Record, RecordBuilder, RegionColumns)

log = logging.getLogger(__name__)

DAMOS_STATS_COLUMNS = {"time_ns": np.int64, "scheme_idx": np.int64,
                       **{f: np.uint64 for f in DAMOS_STAT_FIELDS}}


def record_metas(session: KdamondSession):
    """Metadata-only Records, one per monitoring target."""
    spec = session.spec
    iv = Intervals(spec.sample_us, spec.aggr_us, spec.update_us)
    metas = []
    for t in range(spec.nr_targets):
        metas.append(Record(
            target_id=t, kdamond_idx=session.idx, context_idx=0,
            scheme_idx=session.stat_scheme_idx, intervals=iv, ops=spec.ops,
            pid=spec.pids[t] if spec.ops != "paddr" and t < len(spec.pids) else None))
    return metas


@dataclasses.dataclass
class Snapshot:
    end_ns: int
    start_ns: int
    per_target: list          # RegionColumns per target
    total_bytes: int


#: snapshots in a row whose tried regions could not be read before recording gives up
MAX_FAILED_SNAPSHOTS_IN_A_ROW = 10


def take_snapshot(session: KdamondSession, engine="auto") -> Snapshot:
    """One aggregation interval's regions of every target (refreshes tried regions)."""
    for attempt in range(3):
        if attempt:
            time.sleep(0.02 * attempt)
        session.update_tried_regions()
        end_ns = time.time_ns()
        try:
            (start, end, nr, age, passed), total = session.read_tried_regions(engine=engine)
            if len(start) or attempt == 2:
                break
            # an update that ended before the scheme was applied lists no region
            # (seen on 6.12 now and then): not a snapshot of an empty address space
            continue
        except CollectError:
            # the kernel rebuilt tried_regions under us (an update cut short by a
            # signal, or a concurrent reader's update): ask again
            if attempt == 2:
                raise
    bounds = split_targets(start, session.spec.nr_targets)
    per_target = [RegionColumns(start[a:b], end[a:b], nr[a:b], age[a:b], passed[a:b])
                  for a, b in bounds]
    while len(per_target) < session.spec.nr_targets:
        per_target.append(RegionColumns())
    if total is None:
        total = int((end - start).sum()) if len(start) else 0
    return Snapshot(end_ns, end_ns - int(session.spec.aggr_us) * 1000, per_target, total)


def snapshot_records(session, snap: Snapshot, damos_stats=None):
    """Single-snapshot Records (one per target) of a Snapshot."""
    out = []
    for meta, regions in zip(record_metas(session), snap.per_target):
        b = RecordBuilder(meta)
        b.add_snapshot(snap.start_ns, snap.end_ns, regions, damos_stats=damos_stats)
        out.append(b.build())
    return out


def rotated_name(path, n):
    """FILE.h5 -> FILE.<n>.h5 (n >= 1); n == 0 keeps the name."""
    if n == 0:
        return path
    root, ext = os.path.splitext(path)
    return "%s.%d%s" % (root, n, ext or "")


class ArchiveRecorder:
    def __init__(self, session: KdamondSession, path, *, flush_interval=1.0, compression=None,
                 stats_interval=1.0, footprint_interval=1.0, rotate_interval=None,
                 proc_root="/proc", provenance=None, engine="auto", on_open=None):
        self.session = session
        self.base_path = os.fspath(path)
        self.flush_interval = flush_interval
        self.compression = compression
        self.stats_interval = stats_interval
        self.footprint_interval = footprint_interval
        self.rotate_interval = rotate_interval
        self.proc_root = proc_root
        self.provenance = dict(provenance or {})
        self.engine = engine
        self.on_open = on_open
        self.paths = []
        self.nr_snapshots = 0
        self.nr_regions = 0
        self.nr_empty = 0          # snapshots skipped: the kernel listed no region
        self.nr_failed = 0         # snapshots skipped: tried regions unreadable
        self.failed_in_a_row = 0
        self._rotation = 0
        self._last_stats = None
        self._next_stats = 0.0
        self._next_footprint = 0.0
        self.writer = None
        self._open()

    def _open(self):
        from damo_pipe.archive import ArchiveWriter

        path = rotated_name(self.base_path, self._rotation)
        prov = dict(self.provenance)
        prov.update(source_format="damon_sysfs", collector="damo-collect record",
                    rotation_index=self._rotation)
        self.writer = ArchiveWriter(path, swmr=True, compression=self.compression, provenance=prov)
        self.record_idx = [self.writer.add_record(m) for m in record_metas(self.session)]
        if self.on_open is not None:
            self.on_open(self.writer)
        # side tables must exist before SWMR starts (at the first flush)
        import json
        w = self.writer
        self.t_stats = w.add_side_table("damos_stats", DAMOS_STATS_COLUMNS, attrs={
            "schemes_json": json.dumps([s.to_dict() for s in self.session.spec.schemes]
                                       + [{"action": "stat", "note": "damo-collect snapshots"}]),
            "stat_scheme_idx": self.session.stat_scheme_idx})
        self.t_foot = w.add_side_table("footprints", fp.FOOTPRINT_COLUMNS)
        self.t_mem = w.add_side_table("meminfo", fp.MEMINFO_COLUMNS)
        w.set_side_attrs(spec_json=json.dumps(self.session.spec.to_dict()),
                         features_json=json.dumps(self.session.features.to_dict()))
        self.paths.append(path)
        self._opened = time.monotonic()
        self._last_flush = time.monotonic()
        w.flush()   # an empty but valid archive (side tables included) exists from now on

    # -- per snapshot -------------------------------------------------------------------
    def step(self):
        """Take one snapshot and append it (plus due stats/footprints); flush when due.
        Returns the snapshot, or None when it was skipped (see below)."""
        now = time.monotonic()
        try:
            snap = take_snapshot(self.session, engine=self.engine)
        except DamonBusyError:
            raise
        except CollectError as e:
            # a busy kdamond (e.g. paging out under a DAMOS scheme) can rebuild tried_regions
            # while we read them, several times in a row: one lost snapshot must not end a
            # long recording, but a kernel that never answers must
            self.failed_in_a_row += 1
            if self.failed_in_a_row >= MAX_FAILED_SNAPSHOTS_IN_A_ROW or not self.session.is_running():
                raise
            self.nr_failed += 1
            log.warning("snapshot skipped (%s); %d skipped so far", e, self.nr_failed)
            self.maybe_flush()
            return None
        self.failed_in_a_row = 0
        if not any(len(r) for r in snap.per_target):
            self.nr_empty += 1
            log.debug("no region in the tried regions: snapshot skipped")
            self.maybe_flush()
            return snap
        if now >= self._next_stats:
            self._next_stats = now + self.stats_interval
            self._record_stats()
        for idx, rec in zip(self.record_idx, snapshot_records(
                self.session, snap, self._last_stats[self.session.stat_scheme_idx]
                if self._last_stats else None)):
            self.writer.append(idx, rec)
            self.nr_regions += rec.nr_regions
        self.nr_snapshots += 1
        if now >= self._next_footprint:
            self._next_footprint = now + self.footprint_interval
            self._record_footprints()
        self.maybe_flush()
        if self.rotate_interval and time.monotonic() - self._opened >= self.rotate_interval:
            self.rotate()
        return snap

    def _record_stats(self):
        try:
            self.session.update_stats()
        except CollectError as e:
            log.debug("update_schemes_stats failed: %s", e)
            return
        stats = self.session.read_stats()
        t = time.time_ns()
        for i, row in enumerate(stats):
            self.t_stats.append(time_ns=t, scheme_idx=i, **row)
        self._last_stats = stats

    def _record_footprints(self):
        t = time.time_ns()
        if self.session.spec.ops != "paddr":
            for pid in self.session.spec.pids:
                st = fp.read_statm(pid, self.proc_root)
                if st is not None:
                    self.t_foot.append(time_ns=t, pid=pid, **st)
        mi = fp.read_meminfo(self.proc_root)
        if mi is not None:
            self.t_mem.append(time_ns=t, **mi)

    def maybe_flush(self):
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self):
        self.writer.flush()   # records and side tables, two-step commit
        self._last_flush = time.monotonic()

    def rotate(self):
        self.close()
        self._rotation += 1
        self._open()

    def record_final_stats(self):
        """One last DAMOS stats row while the kdamond still runs: the archive then ends
        with the final counters, not with whatever the last stats interval caught."""
        if self.writer is not None and self.session.is_running():
            self._record_stats()

    def close(self):
        if self.writer is None:
            return
        try:
            self._record_footprints()   # the state at the end, too
            self.flush()
        finally:
            self.writer.close()
            self.writer = None

    def seconds_to_next_flush(self):
        return max(0.0, self.flush_interval - (time.monotonic() - self._last_flush))


def pids_alive(pids, proc_root="/proc"):
    alive = []
    for p in pids:
        try:
            with open(os.path.join(proc_root, str(p), "stat")) as f:
                st = f.read().rsplit(") ", 1)[-1][:1]
            if st not in ("Z", "X"):
                alive.append(p)
        except OSError:
            pass
    return alive


def record_loop(session: KdamondSession, recorder: ArchiveRecorder, *, timeout=None,
                snapshot_interval=None, should_stop=lambda: False, child=None,
                proc_root="/proc", watch_pids=True):
    """Snapshot until timeout / should_stop() / target exit / kdamond off. Returns the reason."""
    t0 = time.monotonic()
    deadline = None if timeout is None else t0 + timeout
    next_due = t0
    while True:
        if should_stop():
            return "stopped"
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout"
        if child is not None and child.poll() is not None:
            return "target exited"
        if watch_pids and session.spec.ops != "paddr" and not pids_alive(session.spec.pids, proc_root):
            return "target exited"
        if not session.is_running():
            return "kdamond stopped"
        if snapshot_interval:
            wait = next_due - time.monotonic()
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            if wait > 0:
                time.sleep(min(wait, 0.2))
                recorder.maybe_flush()
                continue
            next_due += snapshot_interval
            if next_due < time.monotonic():
                next_due = time.monotonic() + snapshot_interval
        try:
            recorder.step()
        except CollectError:
            if should_stop():
                return "stopped"
            if not session.is_running():
                return "kdamond stopped"
            raise
