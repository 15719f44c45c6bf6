"""damo's ``report record_info``: the time span and contiguous address ranges of each record.

These are exactly the heatmap's guides (one per kdamond, context, scheme and target;
sorted by total space), so the text comes from :mod:`damo_pipe.analyze.heatmap`. Our
``--json`` and ``--csv`` forms give the same numbers as raw integers (docs/json.md).
"""
from __future__ import annotations

__all__ = ["record_guides", "format_record_info", "record_entries", "record_info_json",
           "record_info_csv"]


def record_guides(records, engine="cython"):
    """The guides of ``records`` (a RecordSource, Records or paths)."""
    from damo_pipe.analyze.heatmap import compute_guides
    return compute_guides(records, engine=engine)


def format_record_info(guides, raw=False):
    """damo's text: human units unless ``raw`` (damo's ``--raw_numbers``)."""
    from damo_pipe.analyze.heatmap import format_guides
    return format_guides(guides, human=not raw)


def record_entries(guides, origin_ns=None):
    """One JSON-ready object per guide: ids, time span (ns ints and seconds from
    ``origin_ns``) and the contiguous address ranges (bytes)."""
    from damo_pipe.analyze.export import time_fields
    out = []
    for g in guides:
        entry = {"kdamond_idx": g.kdamond_idx, "context_idx": g.context_idx,
                 "scheme_idx": g.scheme_idx, "target_id": g.target_id}
        entry.update(time_fields("start_time", g.start_time, origin_ns))
        entry.update(time_fields("end_time", g.end_time, origin_ns))
        entry["regions"] = [{"start": int(s), "end": int(e), "size": int(e) - int(s)}
                            for s, e in g.regions()]
        out.append(entry)
    return out


def record_info_json(guides, *, inputs=None, origin_ns=None):
    """``report record_info --json`` (docs/json.md, ``damo-pipe/record_info``): the
    guides' numbers; a deduced fractional start is rounded to whole ns."""
    from damo_pipe.analyze.export import document
    return document("record_info", {"records": record_entries(guides, origin_ns)},
                    inputs=inputs, time_origin_ns=origin_ns)


def record_info_csv(doc):
    """``report record_info --csv``: one row per address range of each record."""
    from damo_pipe.analyze.export import csv_text
    header = ["kdamond_idx", "context_idx", "scheme_idx", "target_id", "start_time_ns",
              "end_time_ns", "start_time_s", "end_time_s", "region", "start", "end", "size"]
    rows = []
    for r in doc["records"]:
        head = [r[k] for k in header[:8]]
        rows += [head + [k, reg["start"], reg["end"], reg["size"]]
                 for k, reg in enumerate(r["regions"])]
    return csv_text(header, rows)
