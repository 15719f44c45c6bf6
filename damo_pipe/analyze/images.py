"""The three pictures of a record set (access heatmap, WSS distribution, WSS over time)
and the options that shape them: what ``batch`` writes per archive and ``report html``
embeds. Below both, so that batch.py and html.py need not import each other.
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


def write_images(records, out_dir, options, title, warnings=None):
    """Write the three pictures; return {kind: file name} of those written.

    A picture that cannot be made from these records (a DamoPipeError, e.g. damo's
    "Some records have intervals while some not") is skipped with a message appended
    to ``warnings``; other exceptions propagate.
    """
    import numpy as np

    from damo_pipe.analyze import plots
    from damo_pipe.analyze.heatmap import compute_heatmaps
    from damo_pipe.analyze.summary import damo_percentile_index, record_wss

    warnings = [] if warnings is None else warnings
    written = {}
    if not any(r.nr_snapshots for r in records):
        warnings.append("no snapshot: no picture")
        return written
    # numbers first (parallel-safe) ...
    grids = []
    try:
        grids = compute_heatmaps(records, resol=tuple(options.resol))
    except DamoPipeError as e:
        warnings.append("heatmap: %s" % error_text(e))
    wss = [record_wss(r, options.acc_thres, options.sz_thres, options.exclude_samples)
           for r in records if r.nr_snapshots]
    per_target = [w for _, w in wss]
    times = [t for t, _ in wss]
    dist = _collapsed([np.sort(w) for w in per_target])
    if not len(dist):
        warnings.append("no WSS picture: no snapshot left after skipping the first %d"
                        % options.exclude_samples)
    # ... then the drawing
    with _plot_guard(options):
        if grids:
            try:
                plots.save_heatmap_image(grids[0], os.path.join(out_dir, IMAGE_FILES["heatmap"]),
                                         title="%s: access heatmap" % title)
                written["heatmap"] = IMAGE_FILES["heatmap"]
            except DamoPipeError as e:
                warnings.append("heatmap: %s" % error_text(e))
        if len(dist):
            pcts = list(options.dist_percentiles)
            vals = [dist[damo_percentile_index(p, len(dist))] for p in pcts]
            plots.save_wss_distribution(pcts, vals, os.path.join(out_dir, IMAGE_FILES["wss_dist"]),
                                        title="%s: WSS distribution" % title)
            written["wss_dist"] = IMAGE_FILES["wss_dist"]
            chron = _collapsed(per_target)
            longest = max(times, key=len)
            plots.save_wss_over_time(np.asarray(longest[:len(chron)]), chron,
                                     os.path.join(out_dir, IMAGE_FILES["wss_chron"]),
                                     title="%s: WSS over time" % title)
            written["wss_chron"] = IMAGE_FILES["wss_chron"]
    return written


def error_text(exc):
    """One-line description of an exception for the index and stderr."""
    if isinstance(exc, DamoPipeError):
        msg = str(exc)
    else:
        msg = "%s: %s" % (type(exc).__name__, exc)
    return " ".join(msg.split())
