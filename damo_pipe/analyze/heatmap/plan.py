"""``report heatmap`` from records to grids: the consistency check, the resolution of ids
and ranges (guides when needed) and one grid per address range (SEMANTICS.md §2.1)."""
from __future__ import annotations

from damo_pipe._engine import check_engine
from damo_pipe.analyze._chunks import RecordSource
from damo_pipe.analyze.heatmap.grid import accumulate_heatmap
from damo_pipe.analyze.heatmap.guide import compute_guides, record_key
from damo_pipe.analyze.heatmap.ranges import (guided_address_ranges, resolve_address_ranges,
                                              resolve_time_range)
from damo_pipe.errors import ReportError


def check_intervals_consistency(metas):
    """'hz' when all records have intervals, 'samples' when none has; error if mixed."""
    have = [m.intervals is not None for m in metas]
    if any(have) and not all(have):
        raise ReportError("Some records have intervals while some not.  Cannot proceed.")
    return "hz" if (have and all(have)) else "samples"


def plan_heatmaps(src, kdamond_idx=None, context_idx=None, scheme_idx=None, tid=None,
                  time_range=None, address_ranges=None, draw_range="hottest",
                  engine="cython", given=None):
    """Resolve ids and ranges as damo does (§2.1 step 4).

    ``time_range``/``address_ranges`` are damo's word lists (``["20s", "30s", "guided"]``).
    ``given``: names of the id options given on the command line (default: those not None).
    Returns (key, [t_start, t_end], [[a_start, a_end], ...], guide or None).
    """
    args = {"kdamond_idx": kdamond_idx, "context_idx": context_idx,
            "scheme_idx": scheme_idx, "tid": tid}
    if given is None:
        given = {k for k, v in args.items() if v is not None}
    all_given = (len(given) == 4 and time_range is not None and address_ranges)
    needs_guide = not all_given
    if time_range is not None and len(time_range) > 2 and time_range[2] in ("guided", "guided_end"):
        needs_guide = True
    if address_ranges and any(len(r) > 2 and r[2] == "guided" for r in address_ranges):
        needs_guide = True
    guide = None
    if needs_guide:
        guides = compute_guides(src, engine=engine,
                                with_heats=(draw_range != "all" and (
                                    not address_ranges
                                    or any(len(r) > 2 and r[2] == "guided" for r in address_ranges))))
        if not guides:
            raise ReportError("no record to draw a heatmap from")
        g0 = guides[0]
        for name, gv in (("kdamond_idx", g0.kdamond_idx), ("context_idx", g0.context_idx),
                         ("scheme_idx", g0.scheme_idx), ("tid", g0.target_id)):
            if name not in given:
                args[name] = gv
        want = (args["kdamond_idx"], args["context_idx"], args["scheme_idx"], args["tid"])
        for g in guides:
            if g.key == want:
                guide = g
                break
        if guide is None:
            raise ReportError("no proper guide")
    key = (args["kdamond_idx"], args["context_idx"], args["scheme_idx"], args["tid"])
    t_range = resolve_time_range(time_range, guide)
    guided = guided_address_ranges(guide, draw_range) if guide is not None else []
    a_ranges = resolve_address_ranges(address_ranges, guided)
    return key, t_range, a_ranges, guide


def compute_heatmaps(records, resol=(500, 500), time_range=None, address_ranges=None,
                     draw_range="hottest", abs_time=False, abs_addr=False, df_passed=False,
                     kdamond_idx=None, context_idx=None, scheme_idx=None, tid=None,
                     engine="cython"):
    """Heatmaps of ``records`` (list of Records, paths or a RecordSource) as damo draws them.

    Ranges are damo's word lists or plain numbers (``time_range=(start_ns, end_ns)``,
    ``address_ranges=[(start, end), ...]``). ``abs_time``/``abs_addr`` only matter for
    renderings. Returns a list of :class:`HeatmapGrid` (one per address range).
    """
    del abs_time, abs_addr
    check_engine(engine)
    src = RecordSource.of(records)
    unit = check_intervals_consistency(src.metas)
    if time_range is not None:
        time_range = [str(x) if not isinstance(x, str) else x for x in time_range]
    if address_ranges is not None:
        address_ranges = [[str(x) if not isinstance(x, str) else x for x in r] for r in address_ranges]
    key, t_range, a_ranges, _ = plan_heatmaps(
        src, kdamond_idx, context_idx, scheme_idx, tid, time_range, address_ranges,
        draw_range, engine)
    indices = [i for i, m in enumerate(src.metas) if record_key(m) == key]
    return [accumulate_heatmap(src, indices, t_range, a, resol, df_passed, engine, unit, key)
            for a in a_ranges]
