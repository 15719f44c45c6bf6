"""Turn a running :class:`KdamondSession` into archive snapshots.

:class:`ArchiveRecorder` appends snapshots (:func:`~damo_pipe.collect.snapshots.take_snapshot`)
to an SWMR :class:`ArchiveWriter`, together with DAMOS stats of every scheme (a side
table) and whatever its side recorders add (memory footprints and /proc/meminfo by
default; see :mod:`damo_pipe.collect.side_recorders`), flushing at least every
``flush_interval`` seconds and optionally rotating to a new file every
``rotate_interval`` seconds. :func:`record_loop` runs until a deadline, a stop flag, the
target's exit or the kdamond turning off.
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from damo_pipe.collect.footprints import FootprintRecorder
from damo_pipe.collect.kdamond import KdamondSession
from damo_pipe.collect.snapshots import record_metas, snapshot_records, take_snapshot
from damo_pipe.errors import CollectError, DamonBusyError
from damo_pipe.model import DAMOS_STAT_FIELDS

log = logging.getLogger(__name__)

DAMOS_STATS_COLUMNS = {"time_ns": np.int64, "scheme_idx": np.int64,
                       **{f: np.uint64 for f in DAMOS_STAT_FIELDS}}


#: snapshots in a row whose tried regions could not be read before recording gives up
MAX_FAILED_SNAPSHOTS_IN_A_ROW = 10


def rotated_name(path, n):
    """FILE.h5 -> FILE.<n>.h5 (n >= 1); n == 0 keeps the name."""
    if n == 0:
        return path
    root, ext = os.path.splitext(path)
    return "%s.%d%s" % (root, n, ext or "")


class ArchiveRecorder:
    """Snapshots of one kdamond session into an SWMR archive (rotated when asked).

    ``side_recorders``: :class:`~damo_pipe.collect.side_recorders.SideRecorder` objects
    whose ``open``/``sample``/``close`` hooks run with every archive file and snapshot;
    None means one :class:`FootprintRecorder` (every ``footprint_interval`` seconds,
    reading ``proc_root``).
    """

    def __init__(self, session: KdamondSession, path, *, flush_interval=1.0, compression=None,
                 stats_interval=1.0, footprint_interval=1.0, rotate_interval=None,
                 proc_root="/proc", provenance=None, engine="auto", side_recorders=None):
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
        if side_recorders is None:
            side_recorders = [FootprintRecorder(footprint_interval, proc_root)]
        self.side_recorders = list(side_recorders)
        self.paths = []
        self.nr_snapshots = 0
        self.nr_regions = 0
        self.nr_empty = 0          # snapshots skipped: the kernel listed no region
        self.nr_failed = 0         # snapshots skipped: tried regions unreadable
        self.failed_in_a_row = 0
        self._rotation = 0
        self._last_stats = None
        self._next_stats = 0.0
        self.writer = None
        self._open()

    def _open(self):
        from damo_pipe.analyze.heatmap import GuideBuilder
        from damo_pipe.archive import ArchiveWriter

        path = rotated_name(self.base_path, self._rotation)
        prov = dict(self.provenance)
        prov.update(source_format="damon_sysfs", collector="damo-collect record",
                    rotation_index=self._rotation)
        self.writer = ArchiveWriter(path, swmr=True, compression=self.compression, provenance=prov,
                                    summariser=GuideBuilder)
        self.record_idx = [self.writer.add_record(m) for m in record_metas(self.session)]
        # records and side tables must exist before SWMR starts (at the first flush)
        import json
        w = self.writer
        self.t_stats = w.add_side_table("damos_stats", DAMOS_STATS_COLUMNS, attrs={
            "schemes_json": json.dumps([s.to_dict() for s in self.session.spec.schemes]
                                       + [{"action": "stat", "note": "damo-collect snapshots"}]),
            "stat_scheme_idx": self.session.stat_scheme_idx})
        # what the kernel offers of addr_unit and the (tuned) intervals (Linux 6.15+/6.18+;
        # no table on kernels without them)
        ctx_cols = self.session.context_columns()
        self.t_context = None if ctx_cols is None else w.add_side_table(
            "damon_context", ctx_cols, attrs={"units_json": json.dumps(
                {c: self.session.CONTEXT_UNITS[c] for c in ctx_cols})})
        self.session._last_context = None    # a new file starts with a full row
        for side in self.side_recorders:
            side.open(w, self.session)
        w.set_side_attrs(spec_json=json.dumps(self.session.spec.to_dict()),
                         features_json=json.dumps(self.session.features.to_dict()))
        self.paths.append(path)
        self._opened = time.monotonic()
        self._last_flush = time.monotonic()
        w.flush()   # an empty but valid archive (side tables included) exists from now on

    # -- per snapshot -------------------------------------------------------------------
    def step(self):
        """Take one snapshot and append it (plus due stats and side samples); flush when due.
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
        if self.t_context is not None:
            row = self.session.context_row()
            if row is not None:
                self.t_context.append(time_ns=time.time_ns(), **row)
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
        for side in self.side_recorders:
            side.sample(now)
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

    def restart_clock(self):
        """Count the current file's rotation interval from now (the recording waited
        for its side recorders before its first snapshot)."""
        self._opened = time.monotonic()

    def close(self):
        """Close the current archive file: the side recorders' final rows, flush, close
        (compaction); then every side recorder's ``closed(path)``, the first failure
        raised after all ran."""
        if self.writer is None:
            return
        path = self.writer.path
        try:
            if not self.writer.failed:    # after a full disk: as it was at the last flush
                for side in self.side_recorders:
                    side.close(self.writer)   # the state at the end, too
                self.flush()
        finally:
            self.writer.close()
            self.writer = None
        errors = []
        for side in self.side_recorders:
            try:
                side.closed(path)
            except Exception as e:  # noqa: BLE001 - let the others finish, raise below
                errors.append(e)
        if errors:
            raise errors[0]

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
