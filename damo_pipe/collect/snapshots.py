"""One snapshot of a running kdamond: the stat scheme's tried regions as Records.

:func:`take_snapshot` asks the kernel for the tried regions of the last aggregation
interval (retrying when the kernel rebuilds them under the reader) and splits them per
target; :func:`snapshot_records` makes one single-snapshot :class:`Record` per target.
:func:`merge_regions` and :func:`append_to_archive` serve ``damo-collect snapshot``.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from damo_pipe.collect.kdamond import KdamondSession, split_targets
from damo_pipe.errors import CollectError
from damo_pipe.model import Intervals, Record, RecordBuilder, RegionColumns, concat_records


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
    #: the sampling interval the kernel tuned to (autotuning on), else None
    sample_us: int = None


def take_snapshot(session: KdamondSession, engine="auto") -> Snapshot:
    """One aggregation interval's regions of every target (refreshes tried regions)."""
    # autotuned intervals (Linux 6.15+): the aggregation this snapshot covers and its
    # sampling interval are the tuned ones, refreshed about once a second
    tuned = session.refresh_tuned()
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
    aggr_us = tuned[1] if tuned else int(session.spec.aggr_us)
    return Snapshot(end_ns, end_ns - int(aggr_us) * 1000, per_target, total,
                    sample_us=tuned[0] if tuned else None)


def snapshot_records(session, snap: Snapshot, damos_stats=None):
    """Single-snapshot Records (one per target) of a Snapshot (the kernel's
    ``tried_regions/total_bytes`` when one target, the tuned sampling interval)."""
    out = []
    single = len(snap.per_target) == 1
    for meta, regions in zip(record_metas(session), snap.per_target):
        b = RecordBuilder(meta)
        b.add_snapshot(snap.start_ns, snap.end_ns, regions,
                       total_bytes=snap.total_bytes if single else None,
                       sample_interval_us=snap.sample_us, damos_stats=damos_stats)
        out.append(b.build())
    return out


def merge_regions(record):
    """Merge adjacent regions with equal nr_accesses and age and no filter-passed bytes."""
    b = RecordBuilder(record.meta())
    for k in range(record.nr_snapshots):
        r = record.snapshot_regions(k)
        n = len(r)
        if n > 1:
            same = ((r.start[1:] == r.end[:-1]) & (r.nr_accesses[1:] == r.nr_accesses[:-1])
                    & (r.age[1:] == r.age[:-1]) & (r.sz_filter_passed[1:] == 0)
                    & (r.sz_filter_passed[:-1] == 0))
            heads = np.concatenate([[True], ~same])
            idx = np.nonzero(heads)[0]
            last = np.concatenate([idx[1:] - 1, [n - 1]])
            r = RegionColumns(r.start[idx], r.end[last], r.nr_accesses[idx], r.age[idx],
                              r.sz_filter_passed[idx])
        b.add_snapshot(int(record.snapshots.start_ns[k]), int(record.snapshots.end_ns[k]), r,
                       total_bytes=int(record.snapshots.total_bytes[k]),
                       damos_stats=record.snapshots.damos_stats_of(k))
    return dataclasses.replace(b.build(), first_start_ns=record.first_start_ns)


def append_to_archive(records, path):
    """Append single-snapshot records to the archive PATH (rewritten; created when
    missing): each goes to the record of the same target/kdamond/context/scheme."""
    from damo_pipe.analyze.heatmap import GuideBuilder
    from damo_pipe.archive import read_archive_records, write_records

    if os.path.exists(path):
        old = read_archive_records(path)
        merged = []
        used = set()
        for o in old:
            key = (o.target_id, o.kdamond_idx, o.context_idx, o.scheme_idx)
            new = [r for r in records if (r.target_id, r.kdamond_idx, r.context_idx, r.scheme_idx) == key]
            if new and key not in used:
                used.add(key)
                merged.append(concat_records([o, new[0]]) if o.nr_snapshots else new[0])
            else:
                merged.append(o)
        merged += [r for r in records if (r.target_id, r.kdamond_idx, r.context_idx, r.scheme_idx)
                   not in used]
        records = merged
    write_records(records, path, source_format="damon_sysfs", summariser=GuideBuilder)
