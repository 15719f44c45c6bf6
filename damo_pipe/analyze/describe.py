"""What ``info --json`` adds to a file's description beyond counts: per record the gaps
between snapshots, and for the file the clock its times are on, its side tables (an
archive's ``/collect`` tables, damo's side files) and its CPU profile.

* Gaps: :func:`damo_pipe.analyze.timebase.find_gaps` (a space between snapshots longer
  than half the usual snapshot).
* Clock (docs/format.md, "Clocks"): an archive of ``damo-collect record`` (source
  ``damon_sysfs``) stamps snapshots with the wall clock (``CLOCK_REALTIME``, ns since
  the epoch); damo's files and the archives converted from them keep perf's clock and
  trace records the trace clock (both seconds since boot); otherwise the magnitude of
  the times decides (:func:`damo_pipe.analyze.timebase.is_wall_clock`). Side tables are
  stamped with the wall clock (their ``clock`` attribute says so when written by a
  conversion); the CPU profile's clock is its ``perf_clock`` attribute, and its sample
  times are moved onto the record's clock by ``time_offset_ns``.
"""
from __future__ import annotations

import os

__all__ = ["record_gaps", "recording_clock", "side_data"]

_CLOCKS = {
    "realtime": "wall clock (CLOCK_REALTIME): ns since 1970-01-01 UTC",
    "boot": "ns since boot (perf's clock or the trace clock)",
}


def record_gaps(snaps, origin_ns):
    """The gaps of one record's snapshot table: JSON-ready dicts (ns and seconds from
    ``origin_ns``; ``before_snapshot``: index of the snapshot after the gap)."""
    from damo_pipe.analyze.export import time_fields
    from damo_pipe.analyze.timebase import find_gaps
    out = []
    for g in find_gaps(snaps.start_ns, snaps.end_ns):
        entry = {"before_snapshot": g.before}
        entry.update(time_fields("start", g.start_ns, origin_ns))
        entry.update(time_fields("end", g.end_ns, origin_ns))
        entry["duration_ns"] = g.duration_ns
        out.append(entry)
    return out


def recording_clock(origin_ns, archive_attrs=None):
    """``{"name", "description", "decided_by"}`` of the clock of the records' times."""
    from damo_pipe.analyze.timebase import is_wall_clock
    attrs = archive_attrs or {}
    if attrs.get("source_format") == "damon_sysfs":
        name, why = "realtime", "archive source damon_sysfs (damo-collect record)"
    elif origin_ns is None:
        return {"name": None, "description": "no snapshot", "decided_by": None}
    else:
        name, why = ("realtime" if is_wall_clock(origin_ns) else "boot"), "magnitude of the times"
    return {"name": name, "description": _CLOCKS[name], "decided_by": why}


def _archive_side_data(path):
    from damo_pipe.archive.profile import PROFILE_GROUP, profile_attrs
    from damo_pipe.archive.sidetables import list_side_tables
    tables = list_side_tables(path)
    clocks = {t["name"]: t["attrs"].get("clock", "realtime") for t in tables
              if t["name"] != PROFILE_GROUP}
    attrs = profile_attrs(path)
    profile = None
    if attrs is not None:
        samples = next((t for t in tables if t["name"] == PROFILE_GROUP), None)
        profile = dict(attrs, sample_table=samples is not None,
                       nr_sample_rows=None if samples is None else samples["nr_rows"])
        clocks[PROFILE_GROUP] = attrs.get("perf_clock", "perf")
    return {"side_tables": tables, "side_files": [], "profile": profile}, clocks


def _damo_side_data(path):
    from damo_pipe import sources
    files = [{"kind": kind, "path": p, "size_on_disk": os.path.getsize(p)}
             for kind, p in sorted(sources.side_files(path).items())]
    profile = next(({"path": f["path"], "size_on_disk": f["size_on_disk"],
                     "perf_clock": "perf", "time_offset_ns": 0}
                    for f in files if f["kind"] == "profile"), None)
    clocks = {f["kind"]: ("realtime" if f["kind"] == "mem_footprint" else "perf")
              for f in files}
    return {"side_tables": [], "side_files": files, "profile": profile}, clocks


def side_data(path, is_archive, origin_ns, archive_attrs=None):
    """``{"clock", "side_tables", "side_files", "profile"}`` of a record file."""
    data, clocks = (_archive_side_data if is_archive else _damo_side_data)(os.fspath(path))
    data["clock"] = {"records": recording_clock(origin_ns, archive_attrs),
                     "side_data": clocks}
    return data
