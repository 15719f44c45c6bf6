"""matplotlib pictures of the reports (no gnuplot): heatmaps and WSS plots.

Public functions (the batch/HTML reports call them):

* ``heatmap_figure(grid, ...)`` / ``save_heatmap_image(grid, path, ...)``
* ``wss_timeline_figure(timelines, ...)`` / ``save_wss_timeline(timelines, path, ...)``:
  per-snapshot WSS of whole records (:class:`damo_pipe.analyze.wss_timeline.WssTimeline`)
* ``save_wss_distribution(percentiles, wss_bytes, path, title=None, size=None)``
* ``save_wss_over_time(times_ns, wss_bytes, path, title=None, size=None)``

The ``*_figure`` functions return a matplotlib Figure (tests look at its axes), the
``save_*`` ones write it; the format follows the file extension (png, svg, pdf,
jpeg/jpg). ``size`` is (width, height) in pixels at 100 dpi (default 1200 x 800);
``scale`` multiplies the pixels, not the text (2: a picture shown at ``size`` on a
high-density screen). The WSS functions also accept a dict ``{label: (x, y)}`` as first
argument (with ``wss_bytes=None``) to draw one line per target. matplotlib is imported
lazily, without pyplot.

Time axes follow :mod:`damo_pipe.analyze.timebase`: seconds from the recording's start,
the start named once as an UTC date. Heat colour scales start at 0.
"""
from __future__ import annotations

import numpy as np

from damo_pipe.errors import UsageError

DPI = 100
DEFAULT_SIZE = (1200, 800)
_FORMATS = {"png": "png", "svg": "svg", "pdf": "pdf", "jpeg": "jpeg", "jpg": "jpeg"}

_SIZE_UNITS = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"), (1, "B")]
_TIME_UNITS = [(3600e9, "h"), (60e9, "min"), (1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1, "ns")]

#: colour of snapshots skipped by damo's report wss (--mark_skipped)
SKIPPED_COLOR = "#f2c14e"


def _figure_class():
    """matplotlib's Figure, used without pyplot: no global figure manager, so drawing is
    thread-safe (batch runs on Dask threads) and the import is cheaper. Without
    matplotlib (the ``analyze`` extra): MissingExtraError, one line naming the extra."""
    from damo_pipe._extras import require
    return require("matplotlib.figure", "pictures").Figure


def _format_of(path):
    ext = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else ""
    if ext not in _FORMATS:
        raise UsageError("unsupported image type %r (use .png, .svg, .pdf or .jpeg)" % str(path))
    return _FORMATS[ext]


def _figure(size, frame=None):
    w, h = size or DEFAULT_SIZE
    if w <= 0 or h <= 0:
        raise UsageError("image size must be positive")
    return _figure_class()(figsize=(w / DPI, h / DPI), dpi=DPI,
                           layout="tight" if frame is None else None)


def _axes(fig, size, frame):
    """The plot's axes: laid out by matplotlib, or at ``frame`` = (left, right, top,
    bottom) pixels from the picture's edges (pictures with the same size and frame have
    their axes at the same place: stacked, their time axes line up)."""
    if frame is None:
        return fig.add_subplot(1, 1, 1)
    w, h = size or DEFAULT_SIZE
    left, right, top, bottom = frame
    return fig.add_axes((left / w, bottom / h, 1 - (left + right) / w, 1 - (top + bottom) / h))


def _colorbar_axes(fig, size, frame):
    """The colour bar's axes in a frame's right margin (None: matplotlib places it)."""
    if frame is None:
        return None
    w, h = size or DEFAULT_SIZE
    _, right, top, bottom = frame
    return fig.add_axes(((w - right + 12) / w, bottom / h, 12 / w, 1 - (top + bottom) / h))


def _save(fig, path, scale=1):
    """Write the picture atomically (damo_pipe._atomic: a full disk or a missing
    directory is one error line naming ``path``; a symlink there is replaced)."""
    from damo_pipe._atomic import atomic_output
    fmt = _format_of(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI * scale)


def size_unit(span_bytes):
    """(divisor, name) of a binary size unit suited to ``span_bytes``."""
    for div, name in _SIZE_UNITS:
        if span_bytes >= 2 * div:
            return div, name
    return 1, "B"


def time_unit(span_ns):
    for div, name in _TIME_UNITS:
        if span_ns >= 2 * div:
            return div, name
    return 1, "ns"


def _human_sz(b):
    from damo_pipe.numfmt import format_sz
    return format_sz(b)


def _human_time(ns):
    """A time origin for axis labels (:func:`damo_pipe.analyze.timebase.instant_text`)."""
    from damo_pipe.analyze.timebase import instant_text
    return instant_text(ns)


def heat_norm(heat, vmax=None):
    """The colour scale of a heatmap: from 0 (no access is black, whatever the least
    accessed pixel) to ``vmax`` (default: the hottest pixel); NaN pixels (no data)
    are left out."""
    from matplotlib import colors as mcolors
    heat = np.asarray(heat, np.float64)
    valid = heat[~np.isnan(heat)]
    lo = min(0.0, float(valid.min())) if valid.size else 0.0
    hi = float(valid.max()) if vmax is None and valid.size else (vmax or 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return mcolors.Normalize(vmin=lo, vmax=hi)


def heat_label(unit):
    """The colour bar's name of a heat unit (damo: 'hz' with intervals, else samples)."""
    return ("access frequency (Hz)" if unit == "hz"
            else "access frequency (samples per aggregation interval)")


# ---------------------------------------------------------------------------
def heatmap_figure(grid, title=None, abs_addr=False, abs_time=False, size=None, origin_ns=None,
                   vmax=None, frame=None):
    """A Figure of a HeatmapGrid: time on x (seconds from ``origin_ns``, the recording's
    start; default the grid's first pixel), address on y, heat as colour from 0 to
    ``vmax`` (default the grid's hottest pixel; a shared one compares several pictures);
    gray: no snapshot there. ``frame``: see :func:`_axes`."""
    fig = _figure(size, frame)
    heat = np.asarray(grid.heat, dtype=np.float64)
    T, A = heat.shape
    t0 = float(grid.t_start)
    tspan = float(grid.time_unit) * T
    aspan = int(grid.addr_unit) * A
    origin = t0 if origin_ns is None else float(origin_ns)
    ax = _axes(fig, size, frame)
    if abs_time:
        x0, x1 = t0 / 1e9, (t0 + tspan) / 1e9
        xlabel = "time (s, absolute)"
    else:
        x0, x1 = (t0 - origin) / 1e9, (t0 + tspan - origin) / 1e9
        xlabel = "time (s from %s)" % _human_time(origin)
    if abs_addr:
        y0, y1 = float(grid.a_start), float(grid.a_start + aspan)
        ylabel = "address"
    else:
        adiv, aname = size_unit(aspan)
        y0, y1 = 0.0, aspan / adiv
        ylabel = "address offset (%s from 0x%x)" % (aname, int(grid.a_start))
    from matplotlib import colormaps
    cmap = colormaps["inferno"].with_extremes(bad="#d0d0d0")
    im = ax.imshow(np.ma.masked_invalid(heat.T), origin="lower", aspect="auto",
                   interpolation="nearest", extent=(x0, x1, y0, y1), cmap=cmap,
                   norm=heat_norm(heat, vmax))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if abs_addr:
        from matplotlib.ticker import FuncFormatter
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: "0x%x" % int(v)))
    cax = _colorbar_axes(fig, size, frame)
    cb = fig.colorbar(im, ax=ax) if cax is None else fig.colorbar(im, cax=cax)
    cb.set_label(heat_label(getattr(grid, "unit", "samples"))
                 + ("; gray: no snapshot" if np.isnan(heat).any() else ""))
    if title is None:
        who = []
        if getattr(grid, "target_id", None) is not None:
            who.append("target %s" % grid.target_id)
        if getattr(grid, "kdamond_idx", None) is not None:
            who.append("kdamond %s ctx %s" % (grid.kdamond_idx, grid.context_idx))
        title = "DAMON access heatmap%s" % ((" - " + ", ".join(who)) if who else "")
    from damo_pipe.analyze.timebase import seconds_text
    a_end = int(grid.a_end) if getattr(grid, "a_end", None) is not None \
        else int(grid.a_start) + aspan
    ax.set_title("%s\naddress [0x%x, 0x%x) (%s), time %s to %s" % (
        title, int(grid.a_start), a_end, _human_sz(a_end - int(grid.a_start)),
        seconds_text((t0 - origin) / 1e9), seconds_text((t0 + tspan - origin) / 1e9)),
        fontsize=10)
    if not np.any(~np.isnan(heat)):
        ax.text(0.5, 0.5, "no access data in this range", transform=ax.transAxes,
                ha="center", va="center")
    return fig


def save_heatmap_image(grid, path, title=None, abs_addr=False, abs_time=False, size=None,
                       origin_ns=None, vmax=None, scale=1, frame=None):
    """Draw a HeatmapGrid (:func:`heatmap_figure`) into ``path``."""
    _format_of(path)
    _save(heatmap_figure(grid, title, abs_addr, abs_time, size, origin_ns, vmax, frame), path,
          scale)


def _series(x, y):
    if isinstance(x, dict):
        return [(str(k), np.asarray(v[0], dtype=np.float64), np.asarray(v[1], dtype=np.float64))
                for k, v in x.items()]
    return [(None, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))]


def save_wss_distribution(percentiles, wss_bytes, path, title=None, size=None,
                          ylabel="working set size", scale=1, note=None):
    """WSS distribution: percentile (x) vs working set size (y; ``ylabel`` names it);
    ``note``: a line under the title (e.g. which snapshots the values come from)."""
    fig = _figure(size)
    _format_of(path)
    ax = fig.add_subplot(1, 1, 1)
    series = _series(percentiles, wss_bytes)
    top = max((float(y.max()) for _, _, y in series if y.size), default=0.0)
    div, name = size_unit(top)
    drawn = False
    for label, x, y in series:
        if x.size == 0:
            continue
        ax.plot(x, y / div, marker="o" if x.size <= 30 else None, markersize=3,
                label="target %s" % label if label is not None else None)
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no working set data", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("percentile")
    ax.set_ylabel("%s (%s)" % (ylabel, name))
    ax.set_xlim(0, 100)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if any(label is not None for label, _, _ in series) and drawn:
        ax.legend()
    ax.set_title((title or "working set size distribution") + ("\n" + note if note else ""),
                 fontsize=10)
    _save(fig, path, scale)


def save_wss_over_time(times_ns, wss_bytes, path, title=None, size=None,
                       ylabel="working set size", origin_ns=None, scale=1):
    """A value over time: seconds from ``origin_ns`` (default the first time) on x, the
    value (bytes; ``ylabel`` names it) on y, a point per time joined by lines."""
    fig = _figure(size)
    _format_of(path)
    ax = fig.add_subplot(1, 1, 1)
    series = _series(times_ns, wss_bytes)
    starts = [float(x.min()) for _, x, _ in series if x.size]
    t0 = float(origin_ns) if origin_ns is not None else (min(starts) if starts else 0.0)
    top = max((float(y.max()) for _, _, y in series if y.size), default=0.0)
    div, name = size_unit(top)
    drawn = False
    for label, x, y in series:
        if x.size == 0:
            continue
        order = np.argsort(x, kind="stable")
        ax.plot((x[order] - t0) / 1e9, y[order] / div, linewidth=1.2,
                label="target %s" % label if label is not None else None)
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no working set data", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("time (s from %s)" % (_human_time(t0) if starts else "the start"))
    ax.set_ylabel("%s (%s)" % (ylabel, name))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if any(label is not None for label, _, _ in series) and drawn:
        ax.legend()
    ax.set_title(title or "working set size over time")
    _save(fig, path, scale)


def wss_timeline_figure(timelines, origin_ns=None, span_ns=None, title=None, size=None,
                        mark_skipped=False, ylabel="working set size", frame=None):
    """A Figure of WssTimelines (:mod:`damo_pipe.analyze.wss_timeline`): each window's
    WSS flat over the window, broken at gaps (no line through a time without snapshot),
    x in seconds from ``origin_ns`` (default the earliest start), from 0 over ``span_ns``
    (the whole recording) or, without it, from the earliest start to the latest end. ``mark_skipped`` shades and labels the
    snapshots damo's ``report wss`` skips (its ``--exclude_samples``). ``frame``: see
    :func:`_axes`."""
    from damo_pipe.analyze.timebase import step_series
    fig = _figure(size, frame)
    ax = _axes(fig, size, frame)
    shown = [t for t in timelines if len(t.wss_bytes)]
    if origin_ns is None:
        origin_ns = min((int(t.start_ns[0]) for t in shown), default=0)
    first = min((int(t.start_ns[0]) for t in shown), default=origin_ns)
    last = max((int(t.end_ns[-1]) for t in shown), default=origin_ns)
    x_lim = (0.0, span_ns / 1e9) if span_ns is not None else \
        ((first - origin_ns) / 1e9, (last - origin_ns) / 1e9)
    top = max((float(np.max(t.wss_bytes)) for t in shown), default=0.0)
    div, name = size_unit(top)
    labelled = len(shown) > 1
    for t in shown:
        x, y = step_series(t.start_ns, t.end_ns, np.asarray(t.wss_bytes, np.float64) / div,
                           t.gaps, origin_ns)
        ax.plot(x, y, linewidth=1.3, label=t.label if labelled else None)
    ends = [t.skip_end_ns for t in shown if t.skip_end_ns is not None] if mark_skipped else []
    if ends:
        n = max(t.nr_skipped for t in shown)
        ax.axvspan(0, (max(ends) - origin_ns) / 1e9, color=SKIPPED_COLOR, alpha=0.35,
                   linewidth=0)
        # the label above the lines: the y axis gets the room for it
        ax.text(0.006, 0.97, "shaded: the first %d snapshot%s, skipped by report wss "
                "(--exclude_samples)" % (n, "" if n == 1 else "s"), transform=ax.transAxes,
                ha="left", va="top", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0, "pad": 1.5})
    gaps = sum(len(t.gaps) for t in shown)
    if not shown:
        ax.text(0.5, 0.5, "no working set data", transform=ax.transAxes, ha="center",
                va="center")
    ax.set_xlim(x_lim[0], max(x_lim[1], x_lim[0] + 1e-9))
    ax.set_ylim(0, (top / div) * 1.22 if ends and top > 0 else None)
    ax.set_xlabel("time (s from %s)" % _human_time(origin_ns if shown else None))
    ax.set_ylabel("%s (%s)" % (ylabel, name))
    ax.grid(True, alpha=0.3)
    if labelled:
        ax.legend(fontsize=8, loc="lower right")
    note = "every snapshot%s" % (", %d gap%s left blank" % (gaps, "" if gaps == 1 else "s")
                                 if gaps else "")
    ax.set_title("%s\n%s" % (title or "working set size over time", note), fontsize=10)
    return fig


def save_wss_timeline(timelines, path, scale=1, **kwargs):
    """Draw WssTimelines (:func:`wss_timeline_figure`) into ``path``."""
    _format_of(path)
    _save(wss_timeline_figure(timelines, **kwargs), path, scale)
