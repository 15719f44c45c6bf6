"""matplotlib pictures of the reports (no gnuplot): heatmaps and WSS plots.

Public functions (the batch/HTML reports call them):

* ``save_heatmap_image(grid, path, title=None, abs_addr=False, abs_time=False, size=None)``
* ``save_wss_distribution(percentiles, wss_bytes, path, title=None, size=None)``
* ``save_wss_over_time(times_ns, wss_bytes, path, title=None, size=None)``

The format follows the file extension (png, svg, pdf, jpeg/jpg). ``size`` is
(width, height) in pixels at 100 dpi (default 1200 x 800). The two WSS functions also
accept a dict ``{label: (x, y)}`` as first argument (with ``wss_bytes=None``) to draw one
line per target. matplotlib is imported lazily with the Agg backend.
"""
from __future__ import annotations

import math

import numpy as np

from damo_pipe.errors import UsageError

DPI = 100
DEFAULT_SIZE = (1200, 800)
_FORMATS = {"png": "png", "svg": "svg", "pdf": "pdf", "jpeg": "jpeg", "jpg": "jpeg"}

_SIZE_UNITS = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"), (1, "B")]
_TIME_UNITS = [(3600e9, "h"), (60e9, "min"), (1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1, "ns")]


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


def _figure(size):
    w, h = size or DEFAULT_SIZE
    if w <= 0 or h <= 0:
        raise UsageError("image size must be positive")
    return _figure_class()(figsize=(w / DPI, h / DPI), dpi=DPI, layout="tight")


def _save(fig, path):
    """Write the picture atomically (damo_pipe._atomic: a full disk or a missing
    directory is one error line naming ``path``; a symlink there is replaced)."""
    from damo_pipe._atomic import atomic_output
    fmt = _format_of(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI)


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


#: timestamps beyond this are wall-clock (epoch) times, not seconds since boot
_EPOCH_THRESHOLD_NS = 10 * 365 * 24 * 3600 * 10 ** 9


def _human_time(ns):
    """A time for axis labels: an UTC date for wall-clock stamps (collector archives),
    damo's duration text for trace clocks (seconds since boot) and spans."""
    if ns >= _EPOCH_THRESHOLD_NS:
        import datetime
        t = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.timezone.utc)
        return t.strftime("%Y-%m-%d %H:%M:%S UTC")
    from damo_pipe.numfmt import format_time_ns
    return format_time_ns(ns)


# ---------------------------------------------------------------------------
def save_heatmap_image(grid, path, title=None, abs_addr=False, abs_time=False, size=None):
    """Draw a HeatmapGrid: time on x, address on y, heat as colour (untouched = gray)."""
    fig = _figure(size)
    _format_of(path)
    from matplotlib import colors as mcolors
    heat = np.asarray(grid.heat, dtype=np.float64)
    T, A = heat.shape
    t0 = float(grid.t_start)
    tspan = float(grid.time_unit) * T
    aspan = int(grid.addr_unit) * A
    tdiv, tname = time_unit(tspan)
    ax = fig.add_subplot(1, 1, 1)
    if abs_time:
        x0, x1 = t0 / 1e9, (t0 + tspan) / 1e9
        xlabel = "time (s, absolute)"
    else:
        x0, x1 = 0.0, tspan / tdiv
        xlabel = "time (%s since %s)" % (tname, _human_time(t0))
    if abs_addr:
        y0, y1 = float(grid.a_start), float(grid.a_start + aspan)
        ylabel = "address"
    else:
        adiv, aname = size_unit(aspan)
        y0, y1 = 0.0, aspan / adiv
        ylabel = "address offset (%s from 0x%x)" % (aname, int(grid.a_start))
    from matplotlib import colormaps
    cmap = colormaps["inferno"].with_extremes(bad="#d0d0d0")
    masked = np.ma.masked_invalid(heat.T)
    valid = heat[~np.isnan(heat)]
    vmin = float(valid.min()) if valid.size else 0.0
    vmax = float(valid.max()) if valid.size else 1.0
    if vmax <= vmin:
        vmax = vmin + 1.0
    im = ax.imshow(masked, origin="lower", aspect="auto", interpolation="nearest",
                   extent=(x0, x1, y0, y1), cmap=cmap,
                   norm=mcolors.Normalize(vmin=vmin, vmax=vmax))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if abs_addr:
        from matplotlib.ticker import FuncFormatter
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: "0x%x" % int(v)))
    unit = getattr(grid, "unit", "samples")
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("access frequency (%s)%s" % (
        "hz" if unit == "hz" else "samples per aggregation interval",
        "; gray: no data" if np.isnan(heat).any() else ""))
    if title is None:
        who = []
        if getattr(grid, "target_id", None) is not None:
            who.append("target %s" % grid.target_id)
        if getattr(grid, "kdamond_idx", None) is not None:
            who.append("kdamond %s ctx %s" % (grid.kdamond_idx, grid.context_idx))
        title = "DAMON access heatmap%s\naddress [0x%x, 0x%x) (%s), time %s (%s)" % (
            (" - " + ", ".join(who)) if who else "", int(grid.a_start), int(grid.a_start + aspan),
            _human_sz(aspan), _human_time(t0), _human_time(tspan))
    ax.set_title(title, fontsize=11)
    if valid.size == 0:
        ax.text(0.5, 0.5, "no access data in this range", transform=ax.transAxes,
                ha="center", va="center")
    _save(fig, path)


def _series(x, y):
    if isinstance(x, dict):
        return [(str(k), np.asarray(v[0], dtype=np.float64), np.asarray(v[1], dtype=np.float64))
                for k, v in x.items()]
    return [(None, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))]


def save_wss_distribution(percentiles, wss_bytes, path, title=None, size=None,
                          ylabel="working set size"):
    """WSS distribution: percentile (x) vs working set size (y; ``ylabel`` names it)."""
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
    ax.set_title(title or "working set size distribution")
    _save(fig, path)


def save_wss_over_time(times_ns, wss_bytes, path, title=None, size=None,
                       ylabel="working set size"):
    """WSS over time: seconds since the first window (x) vs working set size (y; ``ylabel``
    names it)."""
    fig = _figure(size)
    _format_of(path)
    ax = fig.add_subplot(1, 1, 1)
    series = _series(times_ns, wss_bytes)
    starts = [float(x.min()) for _, x, _ in series if x.size]
    t0 = min(starts) if starts else 0.0
    span = max((float(x.max()) - t0 for _, x, _ in series if x.size), default=0.0)
    tdiv, tname = time_unit(span)
    top = max((float(y.max()) for _, _, y in series if y.size), default=0.0)
    div, name = size_unit(top)
    drawn = False
    for label, x, y in series:
        if x.size == 0:
            continue
        order = np.argsort(x, kind="stable")
        ax.plot((x[order] - t0) / tdiv, y[order] / div, linewidth=1.2,
                label="target %s" % label if label is not None else None)
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no working set data", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("time (%s since %s)" % (tname, _human_time(t0) if not math.isnan(t0) else "0"))
    ax.set_ylabel("%s (%s)" % (ylabel, name))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if any(label is not None for label, _, _ in series) and drawn:
        ax.legend()
    ax.set_title(title or "working set size over time")
    _save(fig, path)
