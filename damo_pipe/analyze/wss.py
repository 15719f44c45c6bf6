"""``damo report wss``: working set size distribution (SEMANTICS.md §3), streaming.

Per record: damo's adjust_records windows (first ``exclude_samples`` snapshots dropped,
windows of at least ``work_time`` µs, trailing incomplete window dropped), then per window
``wss = Σ size`` of regions with ``samples >= acc_thres`` and ``size >= sz_thres``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from damo_pipe._engine import select_engine
from damo_pipe.analyze._chunks import RecordSource
from damo_pipe.model import ChunkPiece

#: the compiled twin of the window sums
KERNELS = "damo_pipe.analyze._report_kernels"


@dataclasses.dataclass
class TargetWss:
    """WSS of one record, in time order: window end times (ns) and sizes (bytes)."""

    target_id: object
    times_ns: np.ndarray      # window end times
    wss_bytes: np.ndarray     # uint64


def _window_wss_py(regions, acc_thres, sz_thres):
    total = 0
    for r in range(len(regions)):
        if int(regions.nr_accesses[r]) < acc_thres:
            continue
        sz = int(regions.end[r]) - int(regions.start[r])
        if sz < sz_thres:
            continue
        total += sz
    return total


def record_wss(chunks, acc_thres=1, sz_thres=1, work_time_us=1, exclude_samples=20,
               engine="cython"):
    """(window end times, wss) of one record given as an iterable of chunks."""
    from damo_pipe.analyze.adjust import iter_windows
    K = select_engine(engine, KERNELS)
    times, values = [], []
    for w in iter_windows(chunks, work_time_us, exclude_samples, engine):
        regs = w.regions
        if K is None:
            v = _window_wss_py(regs, acc_thres, sz_thres)
        else:
            out = np.zeros(1, np.uint64)
            K.window_wss(np.zeros(1, np.int64), np.array([len(regs)], np.int64), regs.start, regs.end,
                         regs.nr_accesses, int(acc_thres), int(max(0, sz_thres)), out)
            v = int(out[0])
        times.append(w.end)
        values.append(v)
    return np.array(times, np.int64), np.array(values, np.uint64)


def _chunk_fast_ok(chunk, limit):
    """Every snapshot is its own window and merges into itself (vectorizable)."""
    s = chunk.snapshots
    if chunk.nr_snapshots == 0:
        return True
    starts = s.start_ns.astype(np.float64)
    starts[0] = chunk.snapshot_start(0)
    if np.any(s.end_ns.astype(np.float64) - starts < limit):
        return False
    st, en = chunk.regions.start, chunk.regions.end
    if np.any(en < st):
        return False
    if len(st) > 1:
        ok = st[1:] >= en[:-1]
        # pairs across snapshot boundaries do not matter
        first = s.region_offset[1:][s.nr_regions[1:] > 0]
        first = first[first > 0]
        ok[first - 1] = True
        if not ok.all():
            return False
    return True


def _windows_wss(ws, K, acc_thres, thr):
    """(end times, wss) of the merged windows ``ws`` (``window_wss`` kernel of ``K``)."""
    t = np.empty(len(ws), np.int64)
    v = np.empty(len(ws), np.uint64)
    for n, w in enumerate(ws):
        regs = w.regions
        o = np.zeros(1, np.uint64)
        K.window_wss(np.zeros(1, np.int64), np.array([len(regs)], np.int64), regs.start,
                     regs.end, regs.nr_accesses, acc_thres, thr, o)
        t[n] = w.end
        v[n] = o[0]
    return t, v


class _SplitSnapshot:
    """The wss of a snapshot that comes in pieces (:class:`ChunkPiece`): skipped as one
    snapshot, or, when it is a window of its own with well-formed regions (the usual
    case), summed piece by piece; otherwise read whole (``reread(k)``) and given to the
    window state machine, which needs all its regions at once."""

    def __init__(self, win, first, limit, reread):
        self.win = win
        self.carry = None         # the end of the piece before
        self.total = 0
        chunk = first.chunk
        end = int(chunk.snapshots.end_ns[0])
        if win.idle and win.skip_remaining > 0:
            win.skip_remaining -= 1
            self.mode = "skip"
        elif win.idle and end - chunk.snapshot_start(0) >= limit:
            self.mode = "sum"
            self.end = end
        else:
            self.mode = "whole"
        self.index = first.first_index
        self.reread = reread
        self.out = None

    def feed(self, piece, K, acc_thres, thr):
        """Take a piece; (times, values) of the snapshot at its last piece, else None."""
        if self.mode == "sum":
            st, en = piece.chunk.regions.start, piece.chunk.regions.end
            ok = bool(np.all(en >= st) and np.all(st[1:] >= en[:-1])) and \
                (self.carry is None or not len(st) or int(st[0]) >= self.carry)
            if ok:
                if len(st):
                    self.carry = int(en[-1])
                out = np.zeros(1, np.uint64)
                K.window_wss(np.zeros(1, np.int64), np.array([len(st)], np.int64), st, en,
                             piece.chunk.regions.nr_accesses, acc_thres, thr, out)
                self.total += int(out[0])
            else:
                self.mode = "whole"
        if self.mode == "whole" and self.out is None:
            if self.reread is None:
                raise ValueError("a snapshot in pieces needs reread() for its windows")
            self.out = _windows_wss(self.win.feed(self.reread(self.index)), K, acc_thres, thr)
        if piece.goes_on:
            return None
        if self.mode == "sum":
            return np.array([self.end], np.int64), np.array([self.total], np.uint64)
        if self.mode == "whole":
            return self.out
        return None


def record_wss_streaming(chunks, acc_thres=1, sz_thres=1, work_time_us=1, exclude_samples=20,
                         engine="cython", reread=None):
    """(window end times, wss) of one record, chunk by chunk.

    Chunks whose snapshots are each a complete, well-formed window are summed in one
    kernel call; others go through the window state machine (merge kernel).
    ``chunks`` may hold :class:`ChunkPiece` items (a huge snapshot in pieces): then
    ``reread(k)`` must give snapshot k whole, for the rare snapshot that is not a
    well-formed window of its own.
    """
    from damo_pipe.analyze.adjust import Windower
    K = select_engine(engine, KERNELS)
    if K is None:
        return record_wss(chunks, acc_thres, sz_thres, work_time_us, exclude_samples, engine)
    win = Windower(work_time_us, exclude_samples, engine)
    limit = work_time_us * 1000
    times, values = [], []
    thr = int(max(0, sz_thres)) if not isinstance(sz_thres, float) else int(np.ceil(max(0, sz_thres)))
    split = None
    for chunk in chunks:
        if isinstance(chunk, ChunkPiece):
            if chunk.continues or chunk.goes_on:
                if split is None or not chunk.continues:
                    split = _SplitSnapshot(win, chunk, limit, reread)
                done = split.feed(chunk, K, int(acc_thres), thr)
                if done is not None:
                    times.append(done[0])
                    values.append(done[1])
                continue
            chunk = chunk.chunk
        if win.idle:
            chunk = win.take_skip(chunk)
            if chunk is None:
                continue
            if _chunk_fast_ok(chunk, limit):
                s = chunk.snapshots
                out = np.zeros(chunk.nr_snapshots, np.uint64)
                K.window_wss(s.region_offset, s.nr_regions, chunk.regions.start, chunk.regions.end,
                             chunk.regions.nr_accesses, int(acc_thres), thr, out)
                times.append(s.end_ns.copy())
                values.append(out)
                continue
        ws = win.feed(chunk)
        if ws:
            t, v = _windows_wss(ws, K, int(acc_thres), thr)
            times.append(t)
            values.append(v)
    if not times:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    return np.concatenate(times), np.concatenate(values)


#: region columns the wss reads besides ``start`` and ``end``
_WSS_COLUMNS = ("nr_accesses",)


def compute_wss(records, acc_thres=1, sz_thres=1, work_time_us=1, exclude_samples=20,
                sortby="size", engine="cython", selection=None):
    """{target_id: TargetWss} as damo builds it (a later record of the same target wins).

    With ``sortby == 'size'`` the wss arrays are sorted ascending (times follow them).
    ``selection`` (:class:`damo_pipe.analyze.selection.Selection`): only its snapshots
    and bytes; ``exclude_samples`` still counts from each record's first snapshot.
    """
    src = RecordSource.of(records)
    out = {}
    for i, meta in enumerate(src.metas):
        # only the columns the wss reads (an archive then decompresses 3 of 6)
        chunks, skip = src.iter_pieces(i, columns=_WSS_COLUMNS), exclude_samples
        if selection:
            from damo_pipe.analyze.selection import first_selected, iter_selected_chunks
            chunks = iter_selected_chunks(src, i, selection, columns=_WSS_COLUMNS)
            skip = max(0, exclude_samples - first_selected(src, i, selection))
        elif select_engine(engine, KERNELS) is None:
            chunks = src.iter_chunks(i, columns=_WSS_COLUMNS)     # the reference: whole

        def reread(k, i=i):
            return next(iter(src.iter_chunk_range(i, k, k + 1, columns=_WSS_COLUMNS)))
        times, values = record_wss_streaming(chunks, acc_thres, sz_thres, work_time_us, skip,
                                             engine, reread)
        if sortby == "size":
            order = np.argsort(values, kind="stable")
            times, values = times[order], values[order]
        out[meta.target_id] = TargetWss(meta.target_id, times, values)
    return out


def collapse(per_target):
    """damo's default --collapse_targets: index-wise sum of the (sorted) lists."""
    lists = [t.wss_bytes for t in per_target.values()]
    n = max((len(x) for x in lists), default=0)
    total = [0] * n
    for x in lists:
        for k, v in enumerate(x.tolist()):
            total[k] += v
    return total


def format_wss_block(tid, values, percentiles, raw=False, all_wss=False, nr_cols_bar=59):
    """Text of one ``# target_id`` block (values: Python ints in report order)."""
    from damo_pipe.analyze.dist import format_dist
    return "# target_id\t%s\n" % tid + format_dist("wss", values, percentiles, raw, all_wss,
                                                   nr_cols_bar)


def snapshot_wss(chunks, acc_thres=1, sz_thres=1, engine="cython"):
    """(end times, wss) of every snapshot of one record, without damo's adjust windows
    (what ``report holistic`` uses for records of at most 200 snapshots)."""
    K = select_engine(engine, KERNELS)
    times, values = [], []
    for chunk in chunks:
        s = chunk.snapshots
        if K is None:
            out = np.array([_window_wss_py(chunk.snapshot_regions(k), acc_thres, sz_thres)
                            for k in range(chunk.nr_snapshots)], np.uint64)
        else:
            out = np.zeros(chunk.nr_snapshots, np.uint64)
            K.window_wss(s.region_offset, s.nr_regions, chunk.regions.start, chunk.regions.end,
                         chunk.regions.nr_accesses, int(acc_thres), int(max(0, sz_thres)), out)
        times.append(s.end_ns.copy())
        values.append(out)
    if not times:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    return np.concatenate(times), np.concatenate(values)


def wss_json(per_target, blocks, percentiles, *, inputs=None, options=None, all_values=False,
             origin_ns=None):
    """``report wss --json``: the text's blocks as numbers (docs/json.md, ``damo-pipe/wss``).

    ``blocks``: the (target id, values) the text prints; a collapsed block (options
    ``collapse_targets``) has target_id null. With ``all_values`` every value is listed,
    with its window end time when the values are in time order of one record."""
    from damo_pipe.analyze.export import document, percentile_rows, seconds
    options = dict(options or {})
    collapsed = bool(options.get("collapse_targets", True))
    in_time = options.get("sortby") == "time"
    targets = []
    for tid, values in blocks:
        values = [int(v) for v in values]
        n = len(values)
        entry = {"target_id": None if collapsed else tid, "nr_values": n,
                 "average_bytes": sum(values) / n if n else None,
                 "percentiles": percentile_rows(values, percentiles)}
        if all_values:
            entry["values_bytes"] = values
            source = per_target.get(tid) if not collapsed else (
                next(iter(per_target.values())) if len(per_target) == 1 else None)
            if in_time and source is not None and len(source.times_ns) == n:
                entry["time_ns"] = [int(t) for t in source.times_ns]
                entry["time_s"] = [seconds(t, origin_ns) for t in entry["time_ns"]]
        targets.append(entry)
    return document("wss", {"targets": targets}, inputs=inputs, time_origin_ns=origin_ns,
                    options=options)


def wss_csv(doc):
    """``report wss --csv``: one row per percentile (``target_id,percentile,bytes``) or,
    when the document lists every value, per value (``target_id,index,bytes,time_ns,
    time_s``)."""
    from damo_pipe.analyze.export import csv_text
    targets = doc["targets"]
    if any("values_bytes" in t for t in targets):
        rows = []
        for t in targets:
            times = t.get("time_ns") or [None] * len(t["values_bytes"])
            secs = t.get("time_s") or [None] * len(t["values_bytes"])
            rows += [(t["target_id"], k, v, times[k], secs[k])
                     for k, v in enumerate(t["values_bytes"])]
        return csv_text(["target_id", "index", "bytes", "time_ns", "time_s"], rows)
    return csv_text(["target_id", "percentile", "bytes"],
                    [(t["target_id"], p["percentile"], p["bytes"]) for t in targets
                     for p in t["percentiles"]])
