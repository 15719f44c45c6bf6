"""One time axis for a whole recording: ``report holistic --output FILE.png`` and the
HTML report's holistic section.

:func:`compute_timeline` gathers, for the access record at ``access_pattern``:

* the access heatmap of the busiest address range (the most total access; colours
  from 0) (time x address);
* the working set size of every snapshot, per target;
* the memory footprints over time (RSS and VSZ summed over the pids, ``sys_used``);
* the hotspot functions per time window: the ``top`` functions of the whole record
  time and their share of each window's CPU-profile samples.

Sources are those of ``report holistic`` (:func:`damo_pipe.analyze.footprints.footprints_for`,
the profile of :func:`damo_pipe.analyze.profile.profile_path`); an archive's stored
sample table is used without perf, a perf.data is read with ``perf script``.

Clocks: an archive written by damo-collect stamps snapshots, footprints and profile
samples on one clock (docs/format.md, "Clocks"). damo's own files do not: its access
record and profile use perf's clock (seconds since boot), its ``.mem_footprint`` the
wall clock. A series whose times lie nowhere near the record's (more than the record's
span away) is therefore taken to be on another clock and moved so that it starts with
the record; the picture says so in a note.

:func:`save_holistic_image` draws the panels stacked on the shared time axis (seconds
from the record's first snapshot) with matplotlib's Figure API (no pyplot).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from damo_pipe.errors import DamoPipeError

__all__ = ["Timeline", "compute_timeline", "save_holistic_image", "holistic_image_bytes",
           "check_image_path", "draw_timeline", "side_data_available",
           "DEFAULT_WINDOWS", "DEFAULT_TOP", "DEFAULT_IMAGE_SIZE"]

DEFAULT_WINDOWS = 12
DEFAULT_TOP = 8
DEFAULT_IMAGE_SIZE = (1400, 1500)
#: heatmap pixels: time rows, address columns
HEATMAP_RESOL = (400, 200)
#: series beyond this distance (in record spans, plus a minute) are on another clock
_SAME_CLOCK_SLACK_NS = 60 * 10**9


@dataclasses.dataclass
class Timeline:
    """Everything the holistic picture shows, times in the record's clock (ns)."""

    source: str
    t0_ns: int
    t1_ns: int
    heatmap: object = None               # HeatmapGrid or None
    wss: dict = dataclasses.field(default_factory=dict)   # target id -> (times, bytes)
    wss_gaps: dict = dataclasses.field(default_factory=dict)  # id -> (first start, Gaps)
    footprint_times: np.ndarray = None
    footprints: dict = dataclasses.field(default_factory=dict)   # metric -> bytes
    windows_ns: np.ndarray = None        # n + 1 window edges
    hotspot_names: list = dataclasses.field(default_factory=list)   # (symbol, dso)
    hotspot_counts: np.ndarray = None    # [n windows, top]
    window_samples: np.ndarray = None    # samples per window
    whole_hotspots: list = dataclasses.field(default_factory=list)  # Hotspot, whole record
    notes: list = dataclasses.field(default_factory=list)

    @property
    def has_side_data(self):
        return bool(self.footprints) or self.hotspot_counts is not None


def _shift_to(t0, t1, first, last):
    """0 when [first, last] lies near the record's [t0, t1]; else the shift that moves
    ``first`` onto ``t0`` (another clock)."""
    slack = (t1 - t0) + _SAME_CLOCK_SLACK_NS
    if last >= t0 - slack and first <= t1 + slack:
        return 0
    return t0 - first


def side_data_available(access_pattern):
    """True when the recording has memory footprints or a CPU profile of its own (an
    archive's tables or profile, damo's side files): a cheap check before the work."""
    from damo_pipe import sources
    from damo_pipe.analyze.profile import _archive_profile_attrs
    path = str(access_pattern)
    if sources.side_files(path):
        return True
    if _archive_profile_attrs(path) is not None:
        return True
    from damo_pipe.analyze.footprints import _is_archive, archive_footprints
    try:
        return _is_archive(path) and archive_footprints(path) is not None
    except DamoPipeError:
        return False


def _record_span(src):
    starts, ends = [], []
    for i in range(len(src)):
        snaps = src.snapshot_table(i)
        if len(snaps.end_ns):
            starts.append(int(snaps.start_ns[0]))
            ends.append(int(snaps.end_ns[-1]))
    if not starts:
        raise DamoPipeError("the record has no snapshot: nothing to draw")
    return min(starts), max(ends)


def _samples_for(access_pattern, profile, perf_path, notes):
    """ProfileSamples on the record's clock, or None (with a note saying why)."""
    from damo_pipe.analyze.profile import profile_samples
    return profile_samples(access_pattern, profile, perf_path, notes, missing="no hotspot panel")


def compute_timeline(access_pattern, footprints=None, profile=None, *, nr_windows=DEFAULT_WINDOWS,
                     top=DEFAULT_TOP, resol=HEATMAP_RESOL, perf_path="perf", engine="cython",
                     input_type=None):
    """The :class:`Timeline` of a recording (``footprints``/``profile``: paths given
    on the command line, None for the recording's own)."""
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.footprints import footprint_values, footprints_for
    from damo_pipe.analyze.heatmap import compute_heatmaps
    from damo_pipe.analyze.hotspots import hotspots, hotspots_over_time
    from damo_pipe.analyze.wss import snapshot_wss
    tl = Timeline(source=str(access_pattern), t0_ns=0, t1_ns=0)
    with RecordSource.open([access_pattern], input_type=input_type) as src:
        tl.t0_ns, tl.t1_ns = _record_span(src)
        try:
            grids = compute_heatmaps(src, resol=tuple(resol), draw_range="busiest",
                                     engine=engine)
            tl.heatmap = grids[0] if grids else None
        except DamoPipeError as e:
            tl.notes.append("no heatmap: %s" % e)
        for i, meta in enumerate(src.metas):
            times, values = snapshot_wss(
                src.iter_chunks(i, columns=("start", "end", "nr_accesses")), 1, 1, engine)
            key = meta.target_id if meta.target_id not in tl.wss else "%s#%d" % (meta.target_id, i)
            tl.wss[key] = (times, values)
            from damo_pipe.analyze.timebase import find_gaps
            snaps = src.snapshot_table(i)
            if len(snaps):
                tl.wss_gaps[key] = (int(snaps.start_ns[0]),
                                    find_gaps(snaps.start_ns, snaps.end_ns))
    t0, t1 = tl.t0_ns, tl.t1_ns
    try:
        fp = footprints_for(access_pattern, footprints)
    except DamoPipeError as e:
        fp = None
        tl.notes.append("no memory footprints: %s" % e)
    if fp is not None and fp.nr_snapshots:
        times = fp.time_ns.astype(np.int64)
        shift = _shift_to(t0, t1, int(times[0]), int(times[-1]))
        if shift:
            tl.notes.append("memory footprints are on another clock than the access record: "
                            "drawn from the record's start")
        tl.footprint_times = times + shift
        for metric in ("rss", "vsz", "sys_used"):
            tl.footprints[metric] = np.array(footprint_values(fp, metric, sort=False), np.float64)
    samples = _samples_for(access_pattern, profile, perf_path, tl.notes)
    if samples is not None and len(samples):
        first, last = samples.time_span()
        shift = _shift_to(t0, t1, first, last)
        if shift:
            tl.notes.append("CPU profile is on another clock than the access record: drawn "
                            "from the record's start")
            samples = samples.shifted(shift)
        tl.windows_ns = np.linspace(t0, t1, max(1, nr_windows) + 1).astype(np.int64)
        tl.windows_ns[-1] = t1 + 1
        tl.hotspot_names, tl.hotspot_counts, tl.window_samples = hotspots_over_time(
            samples, tl.windows_ns, top, engine)
        tl.whole_hotspots = hotspots(samples, t0, t1 + 1, top=top, engine=engine)
        if not int(tl.window_samples.sum()):
            tl.notes.append("no CPU-profile sample lies in the record's time")
    return tl


# -- drawing ---------------------------------------------------------------------------
def _short(name, dso, limit=46):
    base = os.path.basename(dso) if dso else "?"
    text = "%s (%s)" % (name, base)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _draw_heatmap(fig, ax, side, tl, sec):
    from matplotlib import colormaps

    from damo_pipe.analyze.plots import size_unit
    g = tl.heatmap
    heat = np.asarray(g.heat, np.float64)
    T, A = heat.shape
    x0 = (float(g.t_start) - tl.t0_ns) / sec
    x1 = x0 + float(g.time_unit) * T / sec
    aspan = int(g.addr_unit) * A
    adiv, aname = size_unit(aspan)
    cmap = colormaps["inferno"].with_extremes(bad="#d0d0d0")
    from damo_pipe.analyze.plots import heat_norm
    im = ax.imshow(np.ma.masked_invalid(heat.T), origin="lower", aspect="auto",
                   interpolation="nearest", extent=(x0, x1, 0.0, aspan / adiv), cmap=cmap,
                   norm=heat_norm(heat))
    ax.set_ylabel("address (%s from\n0x%x)" % (aname, int(g.a_start)))
    who = "" if g.target_id is None else ", target %s" % g.target_id
    ax.set_title("access heatmap (busiest address range%s)" % who, loc="left", fontsize=11)
    cax = side.inset_axes([0.0, 0.08, 0.08, 0.84])
    cb = fig.colorbar(im, cax=cax)
    from damo_pipe.analyze.plots import heat_label
    cb.set_label(heat_label(g.unit).replace("access frequency", "accesses"), fontsize=9)


def _with_gaps(times, values, first_start, gaps):
    """(times, values) of snapshot ends, drawn as steps ending at each snapshot's end
    (``steps-pre``): the first snapshot's value also at its start, a NaN point at the end
    of every gap (the start of the snapshot after it), so that a gap stays blank."""
    times = np.asarray(times, np.int64)
    values = np.asarray(values, np.float64)
    if not len(times) or first_start is None:
        return times, values
    gaps = [g for g in gaps if 0 < g.before < len(times)]
    pos = [0] + [g.before for g in gaps]
    return (np.insert(times, pos, [first_start] + [g.end_ns for g in gaps]),
            np.insert(values, pos, [values[0]] + [np.nan] * len(gaps)))


def _plot_series(ax, series, ylabel, sec, t0, colors, style="-", step="post"):
    """Lines of (label, times, bytes) on ``ax`` in one size unit; returns the handles.
    ``step``: a value holds after its time (``post``: samples) or before it (``pre``:
    a snapshot's value over the aggregation that ends at its time)."""
    from damo_pipe.analyze.plots import size_unit
    top = max((float(np.nanmax(y)) for _, _, y in series if np.any(~np.isnan(
        np.asarray(y, np.float64)))), default=0.0)
    div, unit = size_unit(top)
    handles = []
    for (label, x, y), color in zip(series, colors):
        if not len(x):
            continue
        order = np.argsort(x, kind="stable")
        h, = ax.plot((np.asarray(x, np.float64)[order] - t0) / sec,
                     np.asarray(y, np.float64)[order] / div, style, linewidth=1.3,
                     color=color, drawstyle="steps-" + step if len(x) < 400 else "default",
                     label=label)
        handles.append(h)
    ax.set_ylabel("%s (%s)" % (ylabel, unit))
    ax.set_ylim(bottom=0)
    return handles


def _draw_lines(ax, side, series, title, ylabel, sec, t0, right=None, step="post"):
    """Line panel; ``right``: (series, ylabel) drawn dashed on a second y axis (values
    of another magnitude, e.g. the system's memory beside the targets')."""
    colors = ["C%d" % k for k in range(10)]
    handles = _plot_series(ax, series, ylabel, sec, t0, colors, step=step)
    if right is not None and right[0]:
        ax2 = ax.twinx()
        handles += _plot_series(ax2, right[0], right[1], sec, t0, colors[len(series):], "--")
    ax.grid(True, alpha=0.3)
    ax.set_title(title, loc="left", fontsize=11)
    if handles:
        side.legend(handles=handles, loc="center left", fontsize=9, frameon=False)


def _draw_hotspots(ax, side, tl, sec):
    from matplotlib import colormaps
    edges = (tl.windows_ns.astype(np.float64) - tl.t0_ns) / sec
    widths = np.diff(edges)
    totals = tl.window_samples.astype(np.float64)
    safe = np.where(totals > 0, totals, 1.0)
    bottom = np.zeros(len(widths))
    cmap = colormaps["tab10" if len(tl.hotspot_names) <= 10 else "tab20"]
    handles, labels = [], []
    overall = totals.sum() or 1.0
    for k, (sym, dso) in enumerate(tl.hotspot_names):
        share = tl.hotspot_counts[:, k] / safe * 100
        h = ax.bar(edges[:-1], share, width=widths, bottom=bottom, align="edge",
                   color=cmap(k % cmap.N), edgecolor="white", linewidth=0.4)
        bottom += share
        handles.append(h)
        labels.append("%4.1f%% %s" % (tl.hotspot_counts[:, k].sum() / overall * 100,
                                       _short(sym, dso)))
    rest = np.where(totals > 0, 100 - bottom, 0)
    h = ax.bar(edges[:-1], rest, width=widths, bottom=bottom, align="edge", color="#cccccc",
               edgecolor="white", linewidth=0.4)
    handles.append(h)
    labels.append("other functions")
    ax.set_ylim(0, 100)
    ax.set_ylabel("CPU samples (%)")
    ax.set_title("hotspot functions per time window (share of the window's CPU-profile samples;"
                 " legend: share of all)", loc="left", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    side.legend(handles, labels, loc="center left", fontsize=8, frameon=False)


def _figure(size):
    from damo_pipe.analyze.plots import DPI, _figure_class
    w, h = size or DEFAULT_IMAGE_SIZE
    if w <= 0 or h <= 0:
        from damo_pipe.errors import UsageError
        raise UsageError("image size must be positive")
    return _figure_class()(figsize=(w / DPI, h / DPI), dpi=DPI, layout="constrained")


def draw_timeline(tl, title=None, size=None):
    """A matplotlib Figure of the Timeline: the panels stacked on one time axis, each
    with its legend or colour bar in a column on the right."""
    from damo_pipe.analyze.plots import _human_time
    fig = _figure(size)
    panels = []
    if tl.heatmap is not None:
        panels.append(("heatmap", 3.0))
    panels.append(("wss", 1.6))
    if tl.footprints:
        panels.append(("footprints", 1.6))
    if tl.hotspot_counts is not None:
        panels.append(("hotspots", 2.4))
    span = max(tl.t1_ns - tl.t0_ns, 1)
    sec, tname = 1e9, "s"      # one unit style (analyze/timebase.py)
    gs = fig.add_gridspec(len(panels), 2, width_ratios=[4.2, 1.35],
                          height_ratios=[h for _, h in panels])
    first = None
    axes = []
    for row, (kind, _) in enumerate(panels):
        ax = fig.add_subplot(gs[row, 0], sharex=first)
        side = fig.add_subplot(gs[row, 1])
        side.axis("off")
        first = first or ax
        axes.append(ax)
        if kind == "heatmap":
            _draw_heatmap(fig, ax, side, tl, sec)
        elif kind == "wss":
            series = [("WSS target %s" % k,)
                      + _with_gaps(t, v, *tl.wss_gaps.get(k, (None, ())))
                      for k, (t, v) in tl.wss.items()]
            _draw_lines(ax, side, series, "working set size", "WSS", sec, tl.t0_ns, step="pre")
        elif kind == "footprints":
            t, f = tl.footprint_times, tl.footprints
            _draw_lines(ax, side, [("RSS of the targets", t, f["rss"]),
                                   ("VSZ of the targets", t, f["vsz"])],
                        "memory footprints", "targets", sec, tl.t0_ns,
                        right=([("system memory used\n(right axis)", t, f["sys_used"])],
                               "system"))
        else:
            _draw_hotspots(ax, side, tl, sec)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("time (%s from %s)" % (tname, _human_time(tl.t0_ns)))
    first.set_xlim(0, span / sec)
    head = title or "holistic view: %s" % os.path.basename(tl.source)
    if tl.notes:
        head += "\n" + "\n".join("note: " + n for n in tl.notes)
    fig.suptitle(head, fontsize=12)
    return fig


def check_image_path(path):
    """UsageError unless ``path`` names a picture type we draw (before any work)."""
    from damo_pipe.analyze.plots import _format_of
    return _format_of(path)


def save_holistic_image(tl, path, title=None, size=None):
    """Draw the Timeline into ``path`` (png, svg, pdf, jpeg by extension)."""
    from damo_pipe.analyze.plots import _save
    _save(draw_timeline(tl, title, size), path)   # atomically, like every output


def holistic_image_bytes(tl, title=None, size=None):
    """The picture as PNG bytes (for the HTML report)."""
    import io

    from damo_pipe.analyze.plots import DPI
    buf = io.BytesIO()
    draw_timeline(tl, title, size).savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
