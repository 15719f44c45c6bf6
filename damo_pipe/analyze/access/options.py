"""Options and names of ``report access`` (SEMANTICS-ACCESS.md §2–§5)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from damo_pipe.errors import ReportError

AREAS = ("record_head", "snapshot_head", "region", "snapshot_tail", "record_tail")

STYLES = ("detailed", "simple-boxes", "cold", "hot", "recency-percentiles",
          "idle-time-percentiles", "temperature-percentiles", "recency-sz-hist",
          "cold-memory-tail", "temperature-sz-hist")

#: operations-layer filter types (§5, *O*)
OPS_FILTER_TYPES = ("anon", "active", "memcg", "young", "hugepage_size", "unmapped")

DEFAULT_MIN_CHARS = [("<index>", 3), ("<start address>", 12), ("<end address>", 11),
                     ("<size>", 11), ("<access rate>", 5), ("<access hz>", 6),
                     ("<age>", 13), ("<filters passed type>", 10)]

DEFAULT_PERCENTILES = [0, 1, 25, 50, 75, 99, 100]


class AccessCrash(ReportError):
    """Raised where damo 3.4.3 dies with a Python exception (a deliberate, documented stop)."""


@dataclasses.dataclass
class AccessOptions:
    """Everything ``report access`` is asked for (the command module fills it from argv)."""

    style: str = "detailed"
    format_overrides: dict = dataclasses.field(default_factory=dict)   # area -> template
    format_ops: list = dataclasses.field(default_factory=list)         # [action, area, text]
    format_object: Optional[dict] = None
    total_sz_only: bool = False
    raw: bool = False
    sort_by: list = dataclasses.field(default_factory=lambda: ["address"])
    sort_dsc: list = dataclasses.field(default_factory=list)
    region_box: bool = False
    box_values: list = dataclasses.field(default_factory=lambda: ["age", "access_rate", "size"])
    box_scales: list = dataclasses.field(default_factory=lambda: ["log", "linear", "log"])
    box_length: tuple = (1, 30)
    box_height: tuple = (1, 5)
    box_colorset: str = "gray"
    box_align: str = "left"
    percentiles_range: Optional[list] = None
    hist_ranges: Optional[list] = None
    hist_logscale: bool = False
    hist_cumulate: bool = False
    temperature_weights: list = dataclasses.field(default_factory=lambda: [0, 100, 100])
    heatmap_width: int = 80
    heatmap_static: bool = False
    heatmap_colorset: str = "gray"
    min_chars_for: list = dataclasses.field(default_factory=list)
    engine: str = "auto"    # "auto"/"cython" or "python"


def min_chars(opts, keyword):
    """Minimum width of a keyword's rendering (``--min_chars_for`` over the defaults)."""
    for kw, n in DEFAULT_MIN_CHARS + list(opts.min_chars_for):
        if kw == keyword:
            return int(n)
    return None


#: the snapshot time line of multi-snapshot and box styles
SNAPSHOT_TIME_LINE = "snapshot time: [<start time>, <end time>] (<duration>)"


def has_ops_filter(records):
    """Whether any record has an operations-layer DAMOS filter (§5, *O*)."""
    return any(f.get("filter_type") in OPS_FILTER_TYPES for r in records for f in r.scheme_filters)
