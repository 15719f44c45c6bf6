"""``damo report heatmap``: guides, pixel grids and their text renderings (SEMANTICS.md §2).

* :mod:`.guide` (with :mod:`.one_pass_heats`): damo's guides, the archive's guide summary
  (:class:`GuideBuilder`);
* :mod:`.ranges`: ``--time_range`` / ``--address_range`` words;
* :mod:`.plan`: ids and ranges resolved, one grid per address range
  (:func:`compute_heatmaps`);
* :mod:`.grid`: the pixel accumulation (Cython kernel or the pure-Python twin);
* :mod:`.render`: ``--output raw``, the terminal map, ``--json`` and ``--csv``.

Every pass walks the records chunk by chunk through
:class:`damo_pipe.analyze._chunks.RecordSource`, so memory does not grow with the record.
"""
from damo_pipe.analyze.heatmap.grid import HeatmapGrid, accumulate_heatmap
from damo_pipe.analyze.heatmap.guide import (Guide, GuideBuilder, compute_guides, format_guides,
                                             record_key)
from damo_pipe.analyze.heatmap.plan import (check_intervals_consistency, compute_heatmaps,
                                            plan_heatmaps)
from damo_pipe.analyze.heatmap.ranges import (guided_address_ranges, resolve_address_ranges,
                                              resolve_time_range)
from damo_pipe.analyze.heatmap.render import (format_ascii, format_raw, format_raw_bytes,
                                              heatmaps_csv, heatmaps_json)

__all__ = [
    "Guide", "GuideBuilder", "HeatmapGrid", "accumulate_heatmap", "check_intervals_consistency",
    "compute_guides", "compute_heatmaps", "format_ascii", "format_guides", "format_raw",
    "format_raw_bytes", "guided_address_ranges", "heatmaps_csv", "heatmaps_json", "plan_heatmaps", "record_key",
    "resolve_address_ranges", "resolve_time_range",
]
