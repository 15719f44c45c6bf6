"""Region boxes of ``report access``: the ``simple-boxes``, ``cold`` and ``hot`` styles and
``--region_box`` (SEMANTICS-ACCESS.md §10.2, §10.3)."""
from __future__ import annotations

import math

import numpy as np

from damo_pipe.analyze.access.options import SNAPSHOT_TIME_LINE, AccessCrash
from damo_pipe.analyze.colors import color_samples, colored
from damo_pipe.numfmt import format_percent, format_sz, format_time_us

STYLES = ("simple-boxes", "cold", "hot")

#: box settings the three styles impose
_STYLE_SETTINGS = dict(box_height=(1, 1), box_length=(1, 40), box_align="right",
                       box_colorset="emotion")


def apply_style(style, t, eff):
    """Set the style's templates in ``t`` and its box/sort settings in ``eff``."""
    if style == "simple-boxes":
        t["snapshot_head"] = SNAPSHOT_TIME_LINE
        t["region"] = "<box> size <size> access <access hz> age <age>"
        eff.update(_STYLE_SETTINGS)
    else:
        t["region"] = "<box> <size> access <access hz> <age>"
        eff.update(_STYLE_SETTINGS)
        eff["sort_by"] = ["temperature"]
        if style == "hot":
            eff["sort_dsc"] = ["temperature"]


class RegionBoxes:
    """Boxes of the regions of ``views`` (RecordViews) drawn with the effective box
    settings ``eff`` (see templates.build_templates)."""

    def __init__(self, opts, eff, views):
        self.opts = opts
        self.raw = opts.raw
        self.eff = eff
        self.views = views
        self._minmax = None

    def value(self, sv, i, name):
        """The region's size, access rate or age (as damo reads it for a box)."""
        if name == "size":
            return sv.py("sizes")[i]
        if name == "access_rate":
            return sv.py("percents")[i] if isinstance(sv.percents, np.ndarray) else sv.percents[i]
        if name == "age":
            return sv.py("usecs")[i] if isinstance(sv.usecs, np.ndarray) else sv.usecs[i]
        raise AccessCrash("UnboundLocalError: region box value %r is not supported" % name)

    def minmax(self):
        """{value name: (min, max) over every region of every record} (cached)."""
        if self._minmax is None:
            mm = {}
            for name in set(self.opts.box_values):
                if name not in ("size", "access_rate", "age"):
                    continue
                lo = hi = None
                for rv in self.views:
                    for sv in rv.snapshots:
                        if sv.n == 0:
                            continue
                        if name == "size":
                            arr = sv.sizes()
                        elif name == "access_rate":
                            arr = sv.percents
                        else:
                            arr = sv.usecs
                        a = np.asarray(arr)
                        mn = a.min().item() if a.dtype != object else min(a.tolist())
                        mx = a.max().item() if a.dtype != object else max(a.tolist())
                        lo = mn if lo is None or mn < lo else lo
                        hi = mx if hi is None or mx > hi else hi
                mm[name] = (lo, hi)
            self._minmax = mm
        return self._minmax

    @staticmethod
    def _scale(v, mn, mx, lo, hi, log):
        """``v`` mapped from [mn, mx] to [lo, hi] (on log2 values when ``log``)."""
        if log:
            v, mn, mx = [math.log(x, 2) if x > 0 else 0 for x in (v, mn, mx)]
        f = (hi - lo) / (mx - mn) if mx - mn > 0 else 1
        return (v - mn) * f + lo

    def box(self, sv, i):
        """``<box>``: the region as a box of coloured digits."""
        o = self.opts
        names = o.box_values
        for name in names:
            if name not in ("size", "access_rate", "age"):
                raise AccessCrash("UnboundLocalError: region box value %r is not supported" % name)
        mm = self.minmax()
        scales = [s == "log" for s in o.box_scales]
        lmin, lmax = self.eff["box_length"]
        hmin, hmax = self.eff["box_height"]
        lv = self.value(sv, i, names[0])
        cv = self.value(sv, i, names[1])
        hv = self.value(sv, i, names[2])
        length = int(self._scale(lv, *mm[names[0]], lmin, lmax, scales[0]))
        level = int(self._scale(cv, *mm[names[1]], 0, 9, scales[1]))
        height = int(self._scale(hv, *mm[names[2]], hmin, hmax, scales[2]))
        row = "|" + colored(str(level) * length, self.eff["box_colorset"], level) + "|"
        if self.eff["box_align"] == "right":
            row = " " * (lmax - length) + row
        return "\n".join([row] * height) + ("\n" if hmax > 1 else "")

    def description(self):
        """``<region box description>``: what length, colour and height mean."""
        o = self.opts
        mm = self.minmax()
        lmin, lmax = self.eff["box_length"]
        hmin, hmax = self.eff["box_height"]

        def rng(name):
            if name not in mm:
                raise AccessCrash("UnboundLocalError: region box value %r is not supported" % name)
            mn, mx = mm[name]
            if name == "size":
                return "[%s, %s]" % (format_sz(mn, self.raw), format_sz(mx, self.raw))
            if name == "access_rate":
                return "[%s, %s]" % (format_percent(mn, self.raw), format_percent(mx, self.raw))
            return "[%s, %s] " % (format_time_us(mn, self.raw), format_time_us(mx, self.raw))

        def scale(s):
            return "logscale" if s == "log" else "linearscale"
        n = o.box_values
        s = o.box_scales
        return "\n".join([
            "# length: %s (represents %s with [%d, %d] columns in %s)" % (
                n[0], rng(n[0]), lmin, lmax, scale(s[0])),
            "# color: %s (represents %s with [0, 9] number and color (%s) in %s)" % (
                n[1], rng(n[1]), color_samples(self.eff["box_colorset"]), scale(s[1])),
            "# height: %s (represents %s with [%d, %d] rows in %s)" % (
                n[2], rng(n[2]), hmin, hmax, scale(s[2])),
        ])
