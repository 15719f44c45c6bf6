"""The ``report access`` renderer (SEMANTICS-ACCESS.md §2): the five templates expanded
record by record and snapshot by snapshot with damo's keyword tables."""
from __future__ import annotations

from damo_pipe.analyze.access.boxes import RegionBoxes
from damo_pipe.analyze.access.keywords import RECORD_TABLE, SNAPSHOT_TABLE
from damo_pipe.analyze.access.metrics import Metrics
from damo_pipe.analyze.access.options import AccessCrash, AccessOptions, min_chars
from damo_pipe.analyze.access.region_list import RegionLister
from damo_pipe.analyze.access.templates import build_templates
from damo_pipe.analyze.access.views import RecordView


class Renderer:
    """One rendering: the options, the templates, the record views and the caches that
    keyword functions share (they receive the Renderer as their first argument)."""

    def __init__(self, records, opts: AccessOptions):
        self.records = records
        self.opts = opts
        self.raw = opts.raw
        self.metrics = Metrics(opts)
        self.templates, self.eff = build_templates(records, opts)
        self.views = [RecordView(r) for r in records]
        self.boxes = RegionBoxes(opts, self.eff, self.views)
        self.regions = RegionLister(self)
        self._widths = {}

    def render(self):
        """The whole report text."""
        t = self.templates
        total_sz_only = (t["snapshot_head"] == "" and t["region"] == ""
                         and t["snapshot_tail"] == "<total bytes>")
        out = []
        for rv in self.views:
            out.append(self.expand(t["record_head"], RECORD_TABLE, (self, rv)))
            nsnap = len(rv.snapshots)
            for k, sv in enumerate(rv.snapshots):
                out.append(self.expand(t["snapshot_head"], SNAPSHOT_TABLE, (self, sv)))
                if t["region"] != "":
                    # the snapshot's region lines as one "\n"-joined block (None: no line)
                    out.append(self.regions.block(t["region"], sv))
                out.append(self.expand(t["snapshot_tail"], SNAPSHOT_TABLE, (self, sv)))
                if k < nsnap - 1 and not total_sz_only:
                    out.append("")
            out.append(self.expand(t["record_tail"], RECORD_TABLE, (self, rv)))
        return "\n".join([x for x in out if x is not None])

    def width(self, kw):
        """Minimum width of keyword ``kw``'s rendering, or None (cached)."""
        if kw not in self._widths:
            self._widths[kw] = min_chars(self.opts, kw)
        return self._widths[kw]

    def expand(self, template, table, ctx):
        """damo's expansion (§2.1): every keyword of ``table`` found in the text, in table
        order, replaced by its function's rendering of ``ctx``; None for an empty template."""
        if template == "":
            return None
        text = template
        for kw, fn in table:
            if kw in text:
                rendered = fn(*ctx)
                width = self.width(kw)
                if width is not None:
                    rendered = rendered.ljust(width)
                text = text.replace(kw, rendered)
        return text.replace("\\n", "\n")


def render_report(records, opts: AccessOptions) -> str:
    """The text damo prints for ``report access`` (without the final print newline).

    Raises AccessCrash where damo 3.4.3 dies with a Python exception."""
    try:
        return Renderer(records, opts).render()
    except ZeroDivisionError as e:     # e.g. a zero sampling interval in the record
        raise AccessCrash("ZeroDivisionError: %s" % e)
