"""The working set size over the whole recording, for our pictures.

damo's ``report wss`` skips the first ``--exclude_samples`` (20) snapshots of every
record: its text and our WSS distribution keep that. A picture of the WSS *over time*
shows every window instead (for the bundled sample the skip is 52 of its 95 s), with
the skipped part known (``skip_end_ns``) so that it can be shaded on request, and the
gaps between snapshots known so that no line is drawn through them.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class WssTimeline:
    """WSS of every window of one record, in time order."""

    label: str
    start_ns: np.ndarray        # window starts (int64)
    end_ns: np.ndarray          # window ends
    wss_bytes: np.ndarray       # uint64
    gaps: list                  # timebase.Gap between windows (``before``: window index)
    nr_skipped: int = 0         # snapshots report wss skips at the start
    skip_end_ns: object = None  # end of the last skipped snapshot (None: none skipped)


def record_timeline(chunks, snapshots, label, acc_thres=1, sz_thres=1, work_time_us=1,
                    exclude_samples=0, engine="cython"):
    """The WssTimeline of one record: ``chunks`` its chunks (RecordSource.iter_chunks),
    ``snapshots`` its snapshot table. Windows as damo's ``report wss`` makes them
    (``work_time_us``, the threshold options), but from the first snapshot on; with the
    default 1 µs every snapshot is its own window."""
    from damo_pipe.analyze.adjust import iter_windows
    from damo_pipe.analyze.timebase import find_gaps
    from damo_pipe.analyze.wss import KERNELS, _window_wss_py, snapshot_wss
    from damo_pipe._engine import select_engine
    n = len(snapshots)
    if work_time_us <= 1:
        ends, values = snapshot_wss(chunks, acc_thres, sz_thres, engine)
        starts = np.asarray(snapshots.start_ns, np.int64)[:len(ends)]
    else:
        K = select_engine(engine, KERNELS)
        starts, ends, values = [], [], []
        for w in iter_windows(chunks, work_time_us, 0, engine):
            regs = w.regions
            if K is None:
                v = _window_wss_py(regs, acc_thres, sz_thres)
            else:
                out = np.zeros(1, np.uint64)
                K.window_wss(np.zeros(1, np.int64), np.array([len(regs)], np.int64), regs.start,
                             regs.end, regs.nr_accesses, int(acc_thres), int(max(0, sz_thres)), out)
                v = int(out[0])
            starts.append(int(w.start))
            ends.append(int(w.end))
            values.append(v)
    starts = np.asarray(starts, np.int64)
    ends = np.asarray(ends, np.int64)
    skipped = min(max(0, int(exclude_samples)), n)
    return WssTimeline(label, starts, ends, np.asarray(values, np.uint64),
                       find_gaps(starts, ends), skipped,
                       int(snapshots.end_ns[skipped - 1]) if skipped else None)


def timelines(src, acc_thres=1, sz_thres=1, work_time_us=1, exclude_samples=0,
              engine="cython", selection=None):
    """WssTimelines of every record of a RecordSource (labels: ``target N``, with the
    record index when a target has several records). ``selection``
    (:class:`damo_pipe.analyze.selection.Selection`): only its snapshots and bytes; the
    skipped snapshots still count from each record's first one."""
    out = []
    seen = {}
    cols = ("start", "end", "nr_accesses") if work_time_us <= 1 else None
    for i, meta in enumerate(src.metas):
        snaps = src.snapshot_table(i)
        first = 0
        if selection:
            from damo_pipe.analyze.selection import iter_selected_chunks, snapshot_range
            first, last = snapshot_range(snaps, selection.time_range)
            snaps = snaps.take(first, last)
            chunks = iter_selected_chunks(src, i, selection, columns=cols)
        else:
            chunks = src.iter_chunks(i, columns=cols)
        if not len(snaps):
            continue
        seen[meta.target_id] = seen.get(meta.target_id, 0) + 1
        label = "target %s" % meta.target_id
        if seen[meta.target_id] > 1:
            label += " (record %d)" % i
        out.append(record_timeline(chunks, snaps, label, acc_thres, sz_thres, work_time_us,
                                   max(0, exclude_samples - first), engine))
    return out
