"""The three pictures of a record set (access heatmap, WSS distribution, WSS over time)
and the options that shape them: what ``batch`` writes per archive and ``report html``
embeds. Below both, so that batch.py and html.py need not import each other.

The pictures are honest about time and place: the heatmap and the WSS over time cover
the whole recording on one time axis (seconds from its start; the same frame, so the
two line up when stacked), the heatmap draws the contiguous address range with the most
total access (not damo's densest one, which can be a tiny corner), its colours start at
0, gaps between snapshots stay blank. Only the WSS distribution skips damo's first
``exclude_samples`` snapshots, like ``report wss`` whose numbers it pictures. Each is
drawn at the size the HTML page shows it, with twice the pixels.
"""
from __future__ import annotations

import dataclasses
import os

from damo_pipe.errors import DamoPipeError

#: file names written per archive
IMAGE_FILES = {
    "heatmap": "heatmap.png",
    "wss_dist": "wss_dist.png",
    "wss_chron": "wss_chron_change.png",
}


@dataclasses.dataclass
class BatchOptions:
    """Per-archive analysis options (picklable; sent with every task)."""

    resol: tuple = (500, 500)           # heatmap (time rows, address columns)
    exclude_samples: int = 20           # damo report wss default
    acc_thres: int = 1
    sz_thres: int = 1
    dist_percentiles: tuple = tuple(range(0, 101))
    serialize_plots: bool = False       # set by run_batch for thread workers
    mark_skipped: bool = False          # shade the snapshots report wss skips (WSS over time)
    time_range: tuple = None            # --time_range words (analyze/selection.py)
    address_range: tuple = None         # --address_range words


def _collapsed(lists):
    """damo's collapse_targets: element-wise sum of lists (the longest sets the length)."""
    import numpy as np
    if not lists:
        return np.zeros(0, np.float64)
    n = max(len(x) for x in lists)
    out = np.zeros(n, np.float64)
    for x in lists:
        out[:len(x)] += np.asarray(x, np.float64)
    return out


def _plot_guard(options):
    """Context manager serialising matplotlib between the threads of one process.

    pyplot (used by :mod:`damo_pipe.analyze.plots`) and FreeType are not thread-safe,
    so thread workers (``--threads``) take a dask-wide lock around their drawing; the
    numeric work before it still runs in parallel (its kernels release the GIL).
    """
    import contextlib
    if not options.serialize_plots:
        return contextlib.nullcontext()
    from distributed import Lock
    return Lock("damo-pipe-matplotlib")


#: (width, height) in CSS pixels the HTML page shows each picture at; the PNGs have
#: IMAGE_SCALE times the pixels
IMAGE_SIZES = {"heatmap": (760, 480), "wss_dist": (520, 340), "wss_chron": (760, 280)}
IMAGE_SCALE = 2
#: the plot area of the heatmap and the WSS over time (pixels from the left, right, top
#: and bottom edges): the same, so that their time axes line up
TIME_FRAME = (84, 118, 48, 44)


def write_images(records, out_dir, options, title, warnings=None, info=None):
    """Write the three pictures; return {kind: file name} of those written.

    A picture that cannot be made from these records (a DamoPipeError, e.g. damo's
    "Some records have intervals while some not") is skipped with a message appended
    to ``warnings``; other exceptions propagate. ``info`` (a dict) receives what the
    pictures show: ``time_origin_ns`` and ``heatmap`` (target, address and time range).
    """
    import numpy as np

    from damo_pipe.analyze import plots
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.summary import damo_percentile_index, record_wss
    from damo_pipe.analyze.timebase import recording_origin
    from damo_pipe.analyze.wss_timeline import timelines

    warnings = [] if warnings is None else warnings
    info = {} if info is None else info
    written = {}
    if not any(r.nr_snapshots for r in records):
        warnings.append("no snapshot: no picture")
        return written
    origin = recording_origin(records)
    end = max(int(r.snapshots.end_ns[-1]) for r in records if r.nr_snapshots)
    info["time_origin_ns"] = origin
    # numbers first (parallel-safe) ...
    grid = _busiest_heatmap(records, options, origin, end, warnings)
    if grid is not None:
        info["heatmap"] = {"target_id": grid.target_id,
                           "address_range": [int(grid.a_start), int(grid.a_end)],
                           "time_range_ns": [int(grid.t_start), int(grid.t_end)],
                           "range": "busiest"}
    wss = [record_wss(r, options.acc_thres, options.sz_thres, options.exclude_samples)
           for r in records if r.nr_snapshots]
    dist = _collapsed([np.sort(w) for _, w in wss])
    if not len(dist):
        warnings.append("no WSS distribution: no snapshot left after skipping the first %d"
                        % options.exclude_samples)
    chron = timelines(RecordSource.of(records), options.acc_thres, options.sz_thres, 1,
                      options.exclude_samples)
    # ... then the drawing
    path = {k: os.path.join(out_dir, f) for k, f in IMAGE_FILES.items()}
    with _plot_guard(options):
        if grid is not None:
            try:
                plots.save_heatmap_image(grid, path["heatmap"], title="%s: access heatmap" % title,
                                         size=IMAGE_SIZES["heatmap"], origin_ns=origin,
                                         scale=IMAGE_SCALE, frame=TIME_FRAME)
                written["heatmap"] = IMAGE_FILES["heatmap"]
            except DamoPipeError as e:
                warnings.append("heatmap: %s" % error_text(e))
        if len(dist):
            pcts = list(options.dist_percentiles)
            vals = [dist[damo_percentile_index(p, len(dist))] for p in pcts]
            skip = options.exclude_samples
            plots.save_wss_distribution(
                pcts, vals, path["wss_dist"], title="%s: WSS distribution" % title,
                size=IMAGE_SIZES["wss_dist"], scale=IMAGE_SCALE,
                note=("snapshots after the first %d (skipped, as by report wss)" % skip
                      if skip else "every snapshot"))
            written["wss_dist"] = IMAGE_FILES["wss_dist"]
        if chron:
            plots.save_wss_timeline(chron, path["wss_chron"], origin_ns=origin,
                                    span_ns=end - origin, title="%s: WSS over time" % title,
                                    size=IMAGE_SIZES["wss_chron"], scale=IMAGE_SCALE,
                                    mark_skipped=options.mark_skipped, frame=TIME_FRAME)
            written["wss_chron"] = IMAGE_FILES["wss_chron"]
    return written


def _busiest_heatmap(records, options, origin, end, warnings):
    """The heatmap grid of the pictures: the first record key's busiest contiguous
    address range over the recording's span (damo's default span, which reaches back by
    the first snapshot's ages, when the span is shorter than the time resolution)."""
    from damo_pipe.analyze.heatmap import compute_heatmaps
    resol = tuple(options.resol)
    ranges = [None]
    if end - origin >= resol[0]:
        ranges.insert(0, (origin, end))
    for time_range in ranges:
        try:
            grids = compute_heatmaps(records, resol=resol, time_range=time_range,
                                     draw_range="busiest")
            return grids[0] if grids else None
        except DamoPipeError as e:
            if time_range is None:
                warnings.append("heatmap: %s" % error_text(e))
    return None


def error_text(exc):
    """One-line description of an exception for the index and stderr."""
    if isinstance(exc, DamoPipeError):
        msg = str(exc)
    else:
        msg = "%s: %s" % (type(exc).__name__, exc)
    return " ".join(msg.split())
