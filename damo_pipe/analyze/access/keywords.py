"""Record and snapshot keywords of ``report access`` (SEMANTICS-ACCESS.md §6–§9): each
keyword's function takes the Renderer and a RecordView or SnapshotView and returns its
text. Damo's tables are kept in order: a keyword is only evaluated when it occurs in the
text being expanded, in table order.
"""
from __future__ import annotations

from damo_pipe.analyze.access.histograms import histogram_text
from damo_pipe.analyze.access.metrics import exact_sum
from damo_pipe.analyze.access.options import OPS_FILTER_TYPES, AccessCrash
from damo_pipe.analyze.access.percentiles import percentiles_text
from damo_pipe.analyze.access.snapshot_heatmap import snapshot_heatmap_text
from damo_pipe.analyze.colors import color_samples
from damo_pipe.numfmt import (format_bp, format_hz, format_nr, format_percent, format_sz,
                                      format_time_ns, format_time_us)


def _filter_bool(f, key, alt=None):
    v = f.get(key)
    if v is None and alt is not None:
        v = f.get(alt)
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "y", "yes")
    return bool(v)


def filters_passed_type(record):
    """§9.7 text of a record's operations-layer filters (never raw)."""
    words = []
    for f in record.scheme_filters:
        ftype = f.get("filter_type")
        if ftype not in OPS_FILTER_TYPES:
            continue
        w = ["allow" if _filter_bool(f, "allow", "filter_pass") else "reject"]
        if not _filter_bool(f, "matching"):
            w.append("none")
        w.append(ftype)
        if ftype == "memcg":
            w.append(str(f.get("memcg_path")))
        elif ftype == "hugepage_size":
            from damo_pipe.formats.numbers import text_to_bytes
            hs = f.get("hugepage_size") or [None, None]
            w.append("[%s, %s]" % tuple(format_sz(text_to_bytes(x), False) for x in hs[:2]))
        words.append(" ".join(w))
    if not words:
        return "n/a"
    return ", ".join(words)


# ---------------------------------------------------------------- record keywords
def _rec_first_start(rv):
    if not rv.snapshots:
        raise AccessCrash("IndexError: list index out of range (record with no snapshot)")
    return rv.snapshots[0].start


def kw_kdamond(r, rv):
    v = rv.record.kdamond_idx
    return str(0 if v is None else v)


def kw_context(r, rv):
    v = rv.record.context_idx
    return str(0 if v is None else v)


def kw_scheme(r, rv):
    return str(rv.record.scheme_idx)


def kw_target(r, rv):
    return str(rv.record.target_id)


def kw_rec_abs_start(r, rv):
    return format_time_ns(_rec_first_start(rv), r.raw)


def kw_rec_duration(r, rv):
    start = _rec_first_start(rv)
    return format_time_ns(rv.snapshots[-1].end - start, r.raw)


def kw_intervals(r, rv):
    iv = rv.record.intervals
    if iv is None:
        raise AccessCrash("AttributeError: record has no intervals")
    return "sample %s, aggr %s" % (format_time_us(iv.sample_us, r.raw),
                                   format_time_us(iv.aggr_us, r.raw))


def kw_intervals_goal(r, rv):
    iv = rv.record.intervals
    if iv is None:
        raise AccessCrash("AttributeError: record has no intervals")
    g = iv.goal
    if g is None:
        from damo_pipe.model import IntervalsGoal
        g = IntervalsGoal()
    return "target %s accesses per %s aggrs, [%s, %s] sampling interval" % (
        format_bp(g.access_bp, r.raw), format_nr(g.aggrs, r.raw),
        format_time_us(g.min_sample_us, r.raw), format_time_us(g.max_sample_us, r.raw))


def kw_data_source(r, rv):
    return str(rv.record.data_source)


def kw_format_strings(r, rv):
    t = r.templates
    return "\n".join('%s: "%s"' % (name, t[a]) for name, a in (
        ("record head", "record_head"), ("snapshot head", "snapshot_head"),
        ("region", "region"), ("snapshot tail", "snapshot_tail"),
        ("record tail", "record_tail")))


RECORD_TABLE = [
    ("<kdamond index>", kw_kdamond),
    ("<context index>", kw_context),
    ("<scheme index>", kw_scheme),
    ("<target id>", kw_target),
    ("<abs start time>", kw_rec_abs_start),
    ("<duration>", kw_rec_duration),
    ("<intervals>", kw_intervals),
    ("<intervals goal>", kw_intervals_goal),
    ("<data source>", kw_data_source),
    ("<format strings>", kw_format_strings),
]


# ---------------------------------------------------------------- snapshot keywords
def kw_total_bytes(r, sv):
    return format_sz(sv.total_bytes, r.raw)


def kw_snap_duration(r, sv):
    return format_time_ns(sv.end - sv.start, r.raw)


def kw_start_time(r, sv):
    return format_time_ns(sv.start - sv.rec.snapshots[0].start, r.raw)


def kw_end_time(r, sv):
    return format_time_ns(sv.end - sv.rec.snapshots[0].start, r.raw)


def kw_abs_start(r, sv):
    return format_time_ns(sv.start, r.raw)


def kw_abs_end(r, sv):
    return format_time_ns(sv.end, r.raw)


def kw_nr_regions(r, sv):
    return format_nr(sv.n, r.raw)


def kw_box_colors(r, sv):
    return color_samples(r.eff["box_colorset"])


def kw_box_description(r, sv):
    return r.boxes.description()


def _temp_hist(r, sv, df):
    w = list(r.opts.temperature_weights)
    vals = r.metrics.temperatures(sv, [0, w[1], w[2]])
    return histogram_text(r.metrics, r.opts, sv, vals, sv.passed if df else sv.sizes(),
                          "temperature")


def _recency_hist(r, sv, df):
    vals = r.metrics.idle_times(sv)
    return histogram_text(r.metrics, r.opts, sv, vals, sv.passed if df else sv.sizes(),
                          "recency")


def kw_temp_hist(r, sv):
    return _temp_hist(r, sv, False)


def kw_temp_df_hist(r, sv):
    return _temp_hist(r, sv, True)


def kw_rec_hist(r, sv):
    return _recency_hist(r, sv, False)


def kw_rec_df_hist(r, sv):
    return _recency_hist(r, sv, True)


def kw_rec_pct(r, sv):
    return percentiles_text(r.metrics, r.opts, sv, "recency", False)


def kw_rec_df_pct(r, sv):
    return percentiles_text(r.metrics, r.opts, sv, "recency", True)


def kw_temp_pct(r, sv):
    return percentiles_text(r.metrics, r.opts, sv, "temperature", False)


def kw_temp_df_pct(r, sv):
    return percentiles_text(r.metrics, r.opts, sv, "temperature", True)


def kw_heatmap(r, sv):
    return snapshot_heatmap_text(r.metrics, r.opts, sv, False)


def kw_df_heatmap(r, sv):
    return snapshot_heatmap_text(r.metrics, r.opts, sv, True)


def kw_filters_passed_type(r, sv):
    return filters_passed_type(sv.rec.record)


def kw_filters_passed_bytes(r, sv):
    return format_sz(exact_sum(sv.passed), r.raw)


def kw_pos_samples_ratio(r, sv):
    iv = sv.rec.record.intervals
    m = iv.aggr_us / iv.sample_us
    total = sum(sv.py("samples"))
    if sv.n == 0:
        raise AccessCrash("ZeroDivisionError: float division by zero "
                          "(<positive access samples ratio> of a snapshot without regions)")
    return format_percent(total * 100 / (m * sv.n), r.raw)


def _bw(r, sv, weights):
    B = r.metrics.weighted_sum(weights, sv.samples)
    value = B / (sv.aggr / 1000000)
    if r.raw:
        return "%d per second" % value
    return format_sz(value, False) + " per second"


def kw_mem_bw(r, sv):
    return _bw(r, sv, sv.sizes())


def kw_df_mem_bw(r, sv):
    return _bw(r, sv, sv.passed)


def kw_tuning_status(r, sv):
    iv = sv.rec.record.intervals
    m = iv.aggr_us / iv.sample_us
    sizes = sv.py("sizes")
    X = sum(m * s for s in sizes)
    O = sum(s * c for s, c in zip(sizes, sv.py("samples")))
    return "%s (%s / %s) %s %s" % (
        format_percent(O * 100 / max(X, 1), r.raw), format_sz(O, r.raw),
        format_sz(X, r.raw), format_time_us(iv.sample_us, r.raw),
        format_time_us(iv.aggr_us, r.raw))


def kw_damos_stats(r, sv):
    st = sv.damos_stats
    if st is None:
        return "none"
    raw = r.raw
    return "\n".join([
        "tried %s times (%s)" % (format_nr(st["nr_tried"], raw), format_sz(st["sz_tried"], raw)),
        "applied %s times (%s)" % (format_nr(st["nr_applied"], raw),
                                   format_sz(st["sz_applied"], raw)),
        "%s passed filters" % format_sz(st["sz_ops_filter_passed"], raw),
        "quota exceeded %s times" % format_nr(st["qt_exceeds"], raw),
        format_sz(st["sz_ops_filter_passed"], raw),
        "tried %s snapshots (max %s)" % (format_nr(st["nr_snapshots"], raw),
                                         format_nr(st["max_nr_snapshots"], raw)),
    ])


def kw_snapshot_intervals(r, sv):
    iv = sv.rec.record.intervals
    A = sv.aggr
    ratio = iv.aggr_us / iv.sample_us
    return "sample %s aggr %s (max access hz %s)" % (
        format_time_us(A / ratio, r.raw), format_time_us(A, r.raw),
        format_hz(ratio / (A / 1000000), r.raw, suffix=False))


SNAPSHOT_TABLE = [
    ("<total bytes>", kw_total_bytes),
    ("<duration>", kw_snap_duration),
    ("<start time>", kw_start_time),
    ("<end time>", kw_end_time),
    ("<abs start time>", kw_abs_start),
    ("<abs end time>", kw_abs_end),
    ("<number of regions>", kw_nr_regions),
    ("<region box colors>", kw_box_colors),
    ("<region box description>", kw_box_description),
    ("<temperature-sz histogram>", kw_temp_hist),
    ("<temperature-df-passed-sz histogram>", kw_temp_df_hist),
    ("<recency-sz histogram>", kw_rec_hist),
    ("<recency-df-passed-sz histogram>", kw_rec_df_hist),
    ("<recency percentiles>", kw_rec_pct),
    ("<df-passed recency percentiles>", kw_rec_df_pct),
    ("<temperature percentiles>", kw_temp_pct),
    ("<df-passed temperature percentiles>", kw_temp_df_pct),
    ("<heatmap>", kw_heatmap),
    ("<filters passed heatmap>", kw_df_heatmap),
    ("<filters passed type>", kw_filters_passed_type),
    ("<filters passed bytes>", kw_filters_passed_bytes),
    ("<positive access samples ratio>", kw_pos_samples_ratio),
    ("<estimated memory bandwidth>", kw_mem_bw),
    ("<filters passed estimated memory bandwidth>", kw_df_mem_bw),
    ("<intervals tuning status>", kw_tuning_status),
    ("<damos stats>", kw_damos_stats),
    ("<snapshot intervals>", kw_snapshot_intervals),
]
