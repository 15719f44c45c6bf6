"""``report access``: damo 3.4.3's template renderer (SEMANTICS-ACCESS.md §2–§12).

The records (already loaded and filtered) are wrapped in light views (:mod:`.views`)
whose per-region metrics are numpy columns; aggregations go through :mod:`.metrics`
(the ``_access_kernels`` Cython module or the pure-Python twins of
``access_kernels_py``). :mod:`.templates` builds the five templates and
:mod:`.renderer` expands them with damo's keyword tables (:mod:`.keywords`,
:mod:`.region_list`): a keyword is only evaluated when it occurs in the text being
expanded. One module per style: :mod:`.region_list` (``detailed``, with
:mod:`.snapshot_heatmap`), :mod:`.boxes` (``simple-boxes``, ``cold``, ``hot``),
:mod:`.percentiles`, :mod:`.histograms`; and the other forms, :mod:`.raw_form`
(``--raw_form``) and :mod:`.json_form` (``--json``).

Library code: no printing, no exiting. ``render_report`` returns the text; the command
module decides how to print it (damo's pager newline rule, AQ1).
"""
from damo_pipe.analyze.access.json_form import render_json
from damo_pipe.analyze.access.keywords import filters_passed_type
from damo_pipe.analyze.access.metrics import Metrics
from damo_pipe.analyze.access.options import (AREAS, DEFAULT_MIN_CHARS, DEFAULT_PERCENTILES,
                                              OPS_FILTER_TYPES, STYLES, AccessCrash,
                                              AccessOptions)
from damo_pipe.analyze.access.raw_form import render_raw_form
from damo_pipe.analyze.access.renderer import Renderer, render_report
from damo_pipe.analyze.access.templates import build_templates
from damo_pipe.analyze.access.views import RecordView, SnapshotView, derive_percent_usec

__all__ = [
    "AREAS", "DEFAULT_MIN_CHARS", "DEFAULT_PERCENTILES", "OPS_FILTER_TYPES", "STYLES",
    "AccessCrash", "AccessOptions", "Metrics", "RecordView", "Renderer", "SnapshotView",
    "build_templates", "derive_percent_usec", "filters_passed_type", "render_json",
    "render_raw_form", "render_report",
]
