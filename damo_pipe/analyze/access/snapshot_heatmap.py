"""The snapshot heatmap line of ``report access``'s default (``detailed``) style:
``<heatmap>`` and ``<filters passed heatmap>`` (SEMANTICS-ACCESS.md §9.5)."""
from __future__ import annotations

import math

import numpy as np

from damo_pipe.analyze.access.options import AccessCrash
from damo_pipe.analyze.colors import colored
from damo_pipe.numfmt import format_nr, format_sz


def snapshot_heatmap_text(metrics, opts, sv, df):
    """``<heatmap>`` / ``<filters passed heatmap>``: one line of temperature digits over
    the snapshot's address space (df: only the regions that passed the filters)."""
    if df:
        sel = np.nonzero(sv.passed != 0)[0]
        starts, ends = sv.starts[sel], sv.ends[sel]
        percents = sv.percents[sel] if isinstance(sv.percents, np.ndarray) \
            else [sv.percents[i] for i in sel]
        usecs = sv.usecs[sel] if isinstance(sv.usecs, np.ndarray) else [sv.usecs[i] for i in sel]
    else:
        starts, ends, percents, usecs = sv.starts, sv.ends, sv.percents, sv.usecs
    if len(starts) == 0:
        return "n/a (no region)"
    width = opts.heatmap_width
    if width <= 0:
        raise AccessCrash("ZeroDivisionError: --snapshot_heatmap_width must be positive")
    if opts.heatmap_static:
        span = int(ends[-1]) - int(starts[0])
    else:
        span = int((np.asarray(ends, np.uint64) - np.asarray(starts, np.uint64)).sum(
            dtype=np.uint64)) if len(starts) < (1 << 20) else sum(
            int(e) - int(s) for s, e in zip(starts, ends))
    u = span / width
    if u <= 0 or u < math.ulp(float(ends[-1])):
        # damo divides by zero or never leaves the first column here
        raise AccessCrash("snapshot heatmap column size %r is below the address "
                          "resolution (damo 3.4.3 crashes or never terminates)" % u)
    try:
        pixels, u = metrics.heatmap_pixels(starts, ends, percents, usecs,
                                           list(opts.temperature_weights), width,
                                           opts.heatmap_static, bounds=sv.rec.bounds())
    except ArithmeticError as e:
        raise AccessCrash(str(e))
    temps = [p[2] for p in pixels if p[2] is not None]
    tmin = min(temps) if temps else None
    tmax = max(temps) if temps else None
    if tmin is None:
        raise AccessCrash("TypeError: snapshot heatmap without any non-void pixel")
    k = (tmax - tmin) / 9
    if k == 0:
        k = tmax / 9
        if k == 0:
            k = 1
    cs = opts.heatmap_colorset
    digits = [colored("%d" % lv, cs, lv) for lv in range(10)]
    parts = []
    for s, e, temp in pixels:
        if temp is not None:
            level = int((temp - tmin) / k)
            parts.append(digits[level] if 0 <= level <= 9 else colored("%d" % level, cs, level))
        else:
            n = (e - s) / u
            if not opts.heatmap_static and n > 4:
                parts.append("[...]")
            else:
                parts.append("." * int(n))
    return "".join(parts) + "\n# min/max temperatures: %s, %s, column size: %s" % (
        format_nr(tmin, opts.raw), format_nr(tmax, opts.raw), format_sz(u, opts.raw))
