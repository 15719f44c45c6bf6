"""``report access --json`` (SEMANTICS-ACCESS.md §12)."""
from __future__ import annotations

from damo_pipe.analyze.access.views import derive_percent_usec


def render_json(records) -> str:
    """damo's ``json.dumps(indent=4)`` of the filtered records (percent/usec filled in)."""
    from damo_pipe.formats.writers import json_text
    views = {}

    def region_values(ri, rec):
        if rec.intervals is None or not len(rec.regions):
            return None, None
        if ri not in views:
            pct, usec = derive_percent_usec(rec)
            views[ri] = (pct, usec.tolist() if hasattr(usec, "tolist") else list(usec))
        return views[ri]
    return json_text(records, region_values=region_values)
