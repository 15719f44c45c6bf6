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
import importlib

#: public name -> submodule; imported when first used, so that a command needing only
#: ``ranges`` (the --time_range words of wss, nr_regions...) does not load the kernels
_WHERE = {
    "HeatmapGrid": "grid", "accumulate_heatmap": "grid",
    "Guide": "guide", "GuideBuilder": "guide", "compute_guides": "guide",
    "format_guides": "guide", "record_key": "guide",
    "check_intervals_consistency": "plan", "compute_heatmaps": "plan", "plan_heatmaps": "plan",
    "guided_address_ranges": "ranges", "resolve_address_ranges": "ranges",
    "resolve_time_range": "ranges",
    "format_ascii": "render", "format_raw": "render", "format_raw_bytes": "render",
    "heatmaps_csv": "render", "heatmaps_json": "render",
}


def __getattr__(name):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    value = getattr(importlib.import_module("%s.%s" % (__name__, where)), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_WHERE))


__all__ = [
    "Guide", "GuideBuilder", "HeatmapGrid", "accumulate_heatmap", "check_intervals_consistency",
    "compute_guides", "compute_heatmaps", "format_ascii", "format_guides", "format_raw",
    "format_raw_bytes", "guided_address_ranges", "heatmaps_csv", "heatmaps_json", "plan_heatmaps", "record_key",
    "resolve_address_ranges", "resolve_time_range",
]
