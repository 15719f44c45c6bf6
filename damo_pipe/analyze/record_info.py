"""damo's ``report record_info``: the time span and contiguous address ranges of each record.

These are exactly the heatmap's guides (one per kdamond, context, scheme and target;
sorted by total space), so the text comes from :mod:`damo_pipe.analyze.heatmap`. Our
``--json`` form gives the same numbers as raw integers.
"""
from __future__ import annotations

__all__ = ["record_guides", "format_record_info", "record_info_json"]


def record_guides(records, engine="cython"):
    """The guides of ``records`` (a RecordSource, Records or paths)."""
    from damo_pipe.analyze.heatmap import compute_guides
    return compute_guides(records, engine=engine)


def format_record_info(guides, raw=False):
    """damo's text: human units unless ``raw`` (damo's ``--raw_numbers``)."""
    from damo_pipe.analyze.heatmap import format_guides
    return format_guides(guides, human=not raw)


def _plain(v):
    """int for whole numbers; a deduced (fractional) first start stays a float."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def record_info_json(guides):
    """A JSON-ready list: one object per guide, times in ns and address ranges in bytes."""
    out = []
    for g in guides:
        out.append({
            "kdamond_idx": g.kdamond_idx, "context_idx": g.context_idx,
            "scheme_idx": g.scheme_idx, "target_id": g.target_id,
            "start_time_ns": _plain(g.start_time), "end_time_ns": _plain(g.end_time),
            "regions": [{"start": int(s), "end": int(e), "size": int(e) - int(s)}
                        for s, e in g.regions()],
        })
    return out
