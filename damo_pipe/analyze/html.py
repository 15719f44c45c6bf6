"""HTML pages: the batch ``index.html`` and the self-contained ``report html`` page.

Both pages are static, need no network (no CDN, no web fonts), and use a few lines of
inline JavaScript only to sort tables: click a column header, or open the page with
``#sort=<column-key>-asc|desc`` in the URL (e.g. ``index.html#sort=wss-p50-desc``).
"""
from __future__ import annotations

import base64
import datetime
import html
import os
import re
import urllib.parse

from damo_pipe.analyze.summary import format_bytes_short

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; margin-bottom: .3em; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: .5em 0; font-size: .85em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; vertical-align: middle; }
th { background: #eef2f7; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th::after { content: " \\21C5"; color: #999; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; color: #222; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; color: #222; }
tr:nth-child(even) td { background: #fafafa; }
img.thumb { width: 100px; height: auto; border: 1px solid #ddd; display: block; }
.thumbs { display: flex; gap: 4px; }
img.full { max-width: 100%; height: auto; border: 1px solid #ddd; }
img.kind-heatmap, img.kind-wss_chron { width: 760px; }
img.kind-wss_dist { width: 520px; }
img.kind-holistic { width: 1100px; }
.figcol { display: flex; flex-direction: column; gap: .6em; }
table#archives { font-size: .8em; }
table#archives th, table#archives td { padding: .2em .35em; }
table#archives th { white-space: normal; }
table#archives td.num { white-space: nowrap; }
img.thumb { width: 72px; }
.failed { color: #a00; }
.warn { color: #850; margin: .2em 0; }
table.failures td { background: #fff3f3; }
.ok { color: #070; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: .6em; overflow-x: auto;
      font-size: .85em; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.figs figure { margin: 0; display: table; }
.figs figcaption { display: table-caption; caption-side: bottom; }
figcaption { font-size: .85em; color: #555; }
"""

_SORT_JS = """
(function () {
  function key(cell, numeric) {
    var v = cell.getAttribute('data-sort');
    if (v === null) { v = cell.textContent.trim(); }
    if (!numeric) { return v.toLowerCase(); }
    var x = parseFloat(v);
    return isNaN(x) ? null : x;
  }
  function sortTable(table, col, asc) {
    var th = table.tHead.rows[0].cells[col];
    var numeric = th.getAttribute('data-type') === 'number';
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute('aria-sort');
    });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.forEach(function (r, i) { r._pos = i; });
    rows.sort(function (a, b) {
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      if (x === y) { return a._pos - b._pos; }
      if (x === null) { return 1; }      /* empty cells last either way */
      if (y === null) { return -1; }
      var c = x < y ? -1 : 1;
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function findColumn(k) {
    var th = document.querySelector('table.sortable th[data-key="' + k + '"]');
    if (!th) { return null; }
    var table = th.closest('table');
    return [table, Array.prototype.indexOf.call(th.parentNode.cells, th)];
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener('click', function () {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        sortTable(table, col, asc);
        var k = th.getAttribute('data-key');
        if (k && history.replaceState) {
          history.replaceState(null, '', '#sort=' + k + (asc ? '-asc' : '-desc'));
        }
      });
    });
  });
  var m = /^#sort=(.+)-(asc|desc)$/.exec(window.location.hash);
  if (m) {
    var found = findColumn(decodeURIComponent(m[1]));
    if (found) { sortTable(found[0], found[1], m[2] === 'asc'); }
  }
})();
"""

_e = html.escape


def _page(title, body):
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"generator\" content=\"damo-pipe\">\n"
            "<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n%s\n<script>%s</script>\n"
            "</body>\n</html>\n" % (_e(title), _CSS, body, _SORT_JS))


def _num_cell(value, text=None):
    if value is None:
        return '<td class="num" data-sort="">-</td>'
    return '<td class="num" data-sort="%s">%s</td>' % (_e(repr(value) if isinstance(value, float) else str(value)),
                                                       _e(text if text is not None else str(value)))


def _size_cells(t, pct_keys):
    """A target's monitored and footprint bytes, WSS percentiles and average (cells)."""
    def cell(v):
        return _num_cell(v, format_bytes_short(v) if v is not None else None)
    return ([cell(t["monitored_bytes"]), cell(t["footprint_bytes"])]
            + [cell(t["wss_percentiles"].get(k)) for k in pct_keys]
            + [cell(t.get("wss_avg_bytes"))])

def _text_cell(text, sort=None, cls=None):
    attrs = ""
    if sort is not None:
        attrs += ' data-sort="%s"' % _e(str(sort))
    if cls:
        attrs += ' class="%s"' % cls
    return "<td%s>%s</td>" % (attrs, text)


def _th(label, key, numeric=False, title=None):
    return '<th data-key="%s"%s%s>%s</th>' % (
        _e(key), ' data-type="number"' if numeric else "",
        ' title="%s"' % _e(title) if title else "", _e(label))


def _pct_keys(summaries):
    keys = set()
    for s in summaries:
        for t in s.get("targets", []):
            keys.update(t.get("wss_percentiles", {}).keys())
    return sorted(keys, key=float) or ["0", "25", "50", "75", "100"]


def _plain(x):
    """A number without exponent notation (integral values without a decimal point)."""
    x = float(x)
    return "%d" % x if x == int(x) else "%s" % x


def _ids(t):
    parts = []
    for k, label in (("kdamond_idx", "k"), ("context_idx", "c"), ("scheme_idx", "s")):
        if t.get(k) is not None:
            parts.append("%s%s" % (label, t[k]))
    return "/".join(parts)


def _fmt_time_range(s, origin=None):
    """A summary's time span in the one style (analyze/timebase.py): the start as an UTC
    date and the length (``origin`` None), or seconds from ``origin``."""
    from damo_pipe.analyze.timebase import instant_text, seconds_text, span_text
    if s.get("start_ns") is None:
        return "-"
    if origin is None:
        return "from %s, %s" % (instant_text(s["start_ns"], 3),
                                seconds_text(s["duration_ns"] / 1e9))
    return span_text(s["start_ns"], s["end_ns"], origin)


def _fmt_gaps(t, origin):
    """``2 (4.446 s in all): at 2.000 s for 2.224 s, ...`` or ``none``."""
    from damo_pipe.analyze.timebase import seconds_text
    gaps = t.get("gaps") or []
    if not gaps:
        return "none"
    origin = t["start_ns"] if origin is None else origin
    total = sum(g["end_ns"] - g["start_ns"] for g in gaps) / 1e9
    first = ", ".join("at %s for %s" % (seconds_text((g["start_ns"] - origin) / 1e9),
                                      seconds_text((g["end_ns"] - g["start_ns"]) / 1e9))
                      for g in gaps[:3])
    return "%d (%s in all): %s%s" % (len(gaps), seconds_text(total), first,
                                     ", ..." if len(gaps) > 3 else "")


def _hottest_table(ranges, drawn=None):
    """The hottest ranges (summary.hottest_ranges, most access first) with the mean
    access frequency in Hz and in samples per aggregation; ``drawn``: the heatmap
    picture's [start, end) address range, whose rows are marked."""
    if not ranges:
        return "<p>No accessed region.</p>"
    head = ["address range", "size", "mean access frequency (Hz)",
            "mean nr_accesses (samples / aggregation)", "share of all access"]
    if drawn is not None:
        head.append("in the heatmap")
    rows = ["<table class=\"hottest\"><thead><tr>%s</tr></thead><tbody>"
            % "".join("<th>%s</th>" % _e(h) for h in head)]
    for r in ranges:
        share = 100.0 * r["access_share"]
        hz = r.get("mean_access_hz")
        cells = ("<td><code>[%#x, %#x)</code></td><td class=\"num\">%s</td>"
                 "<td class=\"num\">%s</td><td class=\"num\">%.3f</td><td class=\"num\">%s</td>"
                 % (r["start"], r["end"], _e(format_bytes_short(r["size"])),
                    "-" if hz is None else "%.3f" % hz, r["mean_nr_accesses"],
                    "%.1f %%" % share if share >= 0.05 or share == 0 else "&lt; 0.1 %"))
        if drawn is not None:
            inside = drawn[0] <= r["start"] and r["end"] <= drawn[1]
            cells += "<td>%s</td>" % ("yes" if inside else "no")
        rows.append("<tr>%s</tr>" % cells)
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _heatmap_note(summary, target_id):
    """Which address range the heatmap picture draws (None: not this target's)."""
    hm = summary.get("heatmap")
    if not hm or hm.get("target_id") != target_id:
        return None
    return hm["address_range"]


def _targets_table(summary, pct_keys):
    head = ["target", "ids", "intervals (sample/aggr/update us)", "snapshots", "regions",
            "time (s from the start)", "gaps", "monitored", "footprint"] \
        + ["WSS p%s" % k for k in pct_keys] + ["WSS avg"]
    origin = summary.get("time_origin_ns")
    rows = ["<table class=\"targets\"><thead><tr>%s</tr></thead><tbody>"
            % "".join("<th>%s</th>" % _e(h) for h in head)]
    for t in summary["targets"]:
        iv = t.get("intervals_us")
        ivs = " / ".join(_plain(iv[k]) for k in ("sample_us", "aggr_us", "ops_update_us")) if iv else "unknown"
        cells = ["<td>%s</td>" % _e(str(t["target_id"])), "<td>%s</td>" % _e(_ids(t) or "-"),
                 "<td>%s</td>" % _e(ivs), _num_cell(t["nr_snapshots"]), _num_cell(t["nr_regions"]),
                 "<td>%s</td>" % _e(_fmt_time_range(t, origin)),
                 "<td>%s</td>" % _e(_fmt_gaps(t, origin))] + _size_cells(t, pct_keys)
        rows.append("<tr>%s</tr>" % "".join(cells))
    rows.append("</tbody></table>")
    if any(not t["wss_percentiles"] and t["nr_snapshots"] for t in summary["targets"]):
        rows.append("<p class=\"meta\">WSS percentiles are empty for records with at most %d "
                    "snapshots (the first %d are skipped, like damo report wss).</p>"
                    % (summary["wss_options"]["exclude_samples"], summary["wss_options"]["exclude_samples"]))
    return "\n".join(rows)


# --------------------------------------------------------------------------- index.html

def render_index(results, title=None, generated=None):
    """HTML text of the batch index page for ``results`` (dicts from batch.analyze_archive)."""
    from damo_pipe.analyze.timebase import seconds_text
    title = title or "damo-analyze batch"
    generated = generated or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    ok = [r for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    pct_keys = _pct_keys([r["summary"] for r in ok])
    out = ["<h1>%s</h1>" % _e(title),
           "<p class=\"meta\">%d input(s): <span class=\"ok\">%d analysed</span>, "
           "<span class=\"%s\">%d failed</span>. Generated %s by damo-pipe. "
           "Click a column header to sort.</p>"
           % (len(results), len(ok), "failed" if failed else "ok", len(failed), _e(generated))]
    if failed:
        out.append("<h2 class=\"failed\" id=\"failed\">Failed inputs (%d)</h2>" % len(failed))
        out.append("<table class=\"failures\"><thead><tr><th>input</th><th>error</th></tr></thead><tbody>")
        for r in failed:
            out.append("<tr class=\"failed-row\"><td><code>%s</code></td><td>%s</td></tr>"
                       % (_e(r["path"]), _e(r["error"] or "unknown error")))
        out.append("</tbody></table>")

    out.append("<h2 id=\"comparison\">WSS per archive and target</h2>")
    head = [_th("archive", "archive"), _th("target", "target", True),
            _th("snapshots", "snapshots", True), _th("regions", "regions", True),
            _th("duration", "duration", True), _th("monitored", "monitored", True,
                                                   "largest total size of monitored regions"),
            _th("footprint", "footprint", True, "bytes ever seen accessed")]
    head += [_th("WSS p%s" % k, "wss-p%s" % k, True) for k in pct_keys]
    head += [_th("WSS avg", "wss-avg", True),
             _th("pictures", "pictures", title="heatmap, WSS distribution, WSS over time")]
    out.append("<table class=\"sortable\" id=\"archives\"><thead><tr>%s</tr></thead><tbody>" % "".join(head))
    for r in ok:
        s = r["summary"]
        name = r["name"]
        q = urllib.parse.quote(name)
        thumbs = []
        for kind in ("heatmap", "wss_dist", "wss_chron"):
            f = r["images"].get(kind)
            if f:
                src = "%s/%s" % (q, urllib.parse.quote(f))
                thumbs.append('<a href="%s"><img class="thumb" loading="lazy" src="%s" alt="%s %s" title="%s"></a>'
                              % (src, src, _e(name), kind, _e(kind)))
        thumbs = [_text_cell('<div class="thumbs">%s</div>' % "".join(thumbs) if thumbs else "-")]
        targets = s["targets"] or [None]
        for t in targets:
            cells = [_text_cell('<a href="#a-%s" title="%s">%s</a>' % (_e(name), _e(r["path"]), _e(name)),
                                sort=name)]
            if t is None:
                cells += [_num_cell(None)] * (6 + len(pct_keys) + 1)
            else:
                cells += [_num_cell(t["target_id"]), _num_cell(t["nr_snapshots"]),
                          _num_cell(t["nr_regions"]),
                          _num_cell(t["duration_ns"], seconds_text(t["duration_ns"] / 1e9)
                                    if t["duration_ns"] is not None else None)]
                cells += _size_cells(t, pct_keys)
            cells += thumbs
            out.append("<tr data-archive=\"%s\">%s</tr>" % (_e(name), "".join(cells)))
    out.append("</tbody></table>")

    if ok:
        out.append("<h2 id=\"details\">Archives</h2>")
    for r in ok:
        s = r["summary"]
        name = r["name"]
        q = urllib.parse.quote(name)
        out.append("<section id=\"a-%s\"><h3>%s</h3>" % (_e(name), _e(name)))
        out.append("<p class=\"meta\"><code>%s</code> &middot; %s &middot; %s &middot; "
                   "%d record(s), %d snapshots, %d regions &middot; time %s &middot; "
                   "<a href=\"%s/%s\">summary.json</a> &middot; analysed in %.2f s</p>"
                   % (_e(r["path"]), _e(s.get("format") or "?"),
                      _e(format_bytes_short(s.get("file_bytes"))), s["nr_records"], s["nr_snapshots"],
                      s["nr_regions"], _e(_fmt_time_range(s)), q, "summary.json",
                      r.get("seconds") or 0.0))
        for w in r.get("warnings") or []:
            out.append("<p class=\"warn\">note: %s</p>" % _e(w))
        out.append(_targets_table(s, pct_keys))
        for t in s["targets"]:
            if t["hottest_ranges"]:
                out.append("<p>Hottest address ranges of target %s:</p>" % _e(str(t["target_id"])))
                out.append(_hottest_table(t["hottest_ranges"], _heatmap_note(s, t["target_id"])))
        out.append("</section>")
    return _page(title, "\n".join(out))


def write_index(results, out_dir, title=None):
    """Write ``out_dir/index.html`` atomically; return its path."""
    from damo_pipe._atomic import atomic_output
    path = os.path.join(out_dir, "index.html")
    text = render_index(results, title=title)
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    return path


# --------------------------------------------------------------------------- report html

def data_uri(png_bytes, mime="image/png"):
    return "data:%s;base64,%s" % (mime, base64.b64encode(png_bytes).decode("ascii"))


def _region_table(record, k, limit, origin=None):
    from damo_pipe.analyze.timebase import span_text
    snaps = record.snapshots
    lo, hi = record.region_bounds(k)
    reg = record.regions
    n = hi - lo
    origin = int(snaps.start_ns[0]) if origin is None else origin
    rows = ["<p>Snapshot %d of %d: %s, %d regions, %s.</p>"
            % (k + 1, record.nr_snapshots, _e(span_text(int(snaps.start_ns[k]),
                                                        int(snaps.end_ns[k]), origin)), n,
               _e(format_bytes_short(int(snaps.total_bytes[k]))))]
    rows.append("<table class=\"sortable regions\"><thead><tr>%s%s%s%s%s%s</tr></thead><tbody>"
                % (_th("#", "r-idx", True), _th("start", "r-start", True), _th("end", "r-end", True),
                   _th("size", "r-size", True), _th("nr_accesses", "r-acc", True),
                   _th("age", "r-age", True)))
    for i in range(lo, min(hi, lo + limit)):
        size = int(reg.end[i] - reg.start[i])
        age = int(reg.age[i])
        rows.append("<tr>%s%s%s%s%s%s</tr>" % (
            _num_cell(i - lo), _num_cell(int(reg.start[i]), "%#x" % int(reg.start[i])),
            _num_cell(int(reg.end[i]), "%#x" % int(reg.end[i])), _num_cell(size, format_bytes_short(size)),
            _num_cell(int(reg.nr_accesses[i])), _num_cell(age if age >= 0 else None)))
    rows.append("</tbody></table>")
    if n > limit:
        rows.append("<p class=\"meta\">%d more regions not shown.</p>" % (n - limit))
    return "\n".join(rows)


def access_text(records):
    """damo ``report access`` text (default style, default record filter) of the last
    snapshot of each record, or None when the access module is unavailable or cannot
    render these records (e.g. records without intervals, where damo refuses)."""
    try:
        from damo_pipe.analyze.access import AccessOptions, render_report
        from damo_pipe.analyze.record_filter import apply_record_filter
    except ImportError:
        return None
    if not records or any(r.intervals is None for r in records):
        return None
    try:
        filtered = apply_record_filter(records)
        last = [r.slice_snapshots(r.nr_snapshots - 1, r.nr_snapshots)
                for r in filtered if r.nr_snapshots]
        if not last:
            return None
        return render_report(last, AccessOptions())
    except Exception:  # noqa: BLE001 - damo's crash cases etc.: fall back to the region table
        return None


def _last_snapshot_note(records, origin=None):
    from damo_pipe.analyze.timebase import recording_origin, span_text
    origin = recording_origin(records) if origin is None else origin
    parts = []
    for r in records:
        if r.nr_snapshots:
            k = r.nr_snapshots - 1
            parts.append("target %s: snapshot %d of %d, %s"
                         % (r.target_id, k + 1, r.nr_snapshots,
                            span_text(int(r.snapshots.start_ns[k]), int(r.snapshots.end_ns[k]),
                                      origin)))
    return "; ".join(parts)


_BASIC16 = ["#000000", "#800000", "#008000", "#808000", "#000080", "#800080", "#008080", "#c0c0c0",
            "#808080", "#ff0000", "#00ff00", "#ffff00", "#0000ff", "#ff00ff", "#00ffff", "#ffffff"]
_ANSI = re.compile(r"\x1b\[([0-9;]*)m")


def xterm256(n):
    """``#rrggbb`` of xterm 256-colour palette entry ``n``."""
    if n < 16:
        return _BASIC16[n]
    if n < 232:
        n -= 16
        levels = (0, 95, 135, 175, 215, 255)
        return "#%02x%02x%02x" % (levels[n // 36], levels[(n // 6) % 6], levels[n % 6])
    g = 8 + 10 * (n - 232)
    return "#%02x%02x%02x" % (g, g, g)


def ansi_to_html(text):
    """Escape ``text`` for HTML and turn its 256-colour SGR escapes (damo's heatmap and
    box colours: ``ESC[48;5;Nm``, ``ESC[38;5;Nm``, ``ESC[0m``) into styled spans."""
    out = []
    bg = fg = None
    current = None          # style of the open span, None when no span is open

    def emit(chunk):
        nonlocal current
        if not chunk:
            return
        style = ";".join(x for x in (("background:" + bg) if bg else "",
                                      ("color:" + fg) if fg else "") if x) or None
        if style != current:
            if current is not None:
                out.append("</span>")
            if style is not None:
                out.append('<span style="%s">' % style)
            current = style
        out.append(_e(chunk))

    pos = 0
    for m in _ANSI.finditer(text):
        emit(text[pos:m.start()])
        pos = m.end()
        codes = [c for c in m.group(1).split(";") if c != ""] or ["0"]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c in ("38", "48") and i + 2 < len(codes) and codes[i + 1] == "5":
                color = xterm256(int(codes[i + 2]) % 256)
                if c == "38":
                    fg = color
                else:
                    bg = color
                i += 3
                continue
            if c == "0":
                bg = fg = None
            i += 1
    emit(text[pos:])
    if current is not None:
        out.append("</span>")
    return "".join(out)


def render_record_report(records, path, summary, images, *, max_table_rows=500,
                         generated=None, access=None, warnings=(), holistic=None):
    """Self-contained HTML for one record file.

    ``images``: list of (caption, png bytes[, kind]). ``access``: text of damo's ``report
    access`` for the last snapshot, or None to show a region table instead.
    ``holistic``: (png bytes, whole-record Hotspots, notes) of the holistic view, or None
    when the record has no memory footprints nor CPU profile.
    """
    generated = generated or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    name = os.path.basename(os.fspath(path))
    pct_keys = _pct_keys([summary])
    out = ["<h1>DAMON record: %s</h1>" % _e(name),
           "<p class=\"meta\"><code>%s</code> &middot; %s &middot; %s &middot; %d record(s), "
           "%d snapshots, %d regions &middot; time %s &middot; generated %s by damo-pipe</p>"
           % (_e(os.fspath(path)), _e(summary.get("format") or "?"),
              _e(format_bytes_short(summary.get("file_bytes"))), summary["nr_records"],
              summary["nr_snapshots"], summary["nr_regions"], _e(_fmt_time_range(summary)),
              _e(generated))]
    out.append("<h2 id=\"info\">Record info</h2>")
    out.append(_targets_table(summary, pct_keys))
    out.append("<h2 id=\"plots\">Heatmap and working set size</h2>")
    for w in warnings:
        out.append("<p class=\"warn\">note: %s</p>" % _e(w))
    if images:
        # the heatmap and the WSS over time stacked (their time axes line up), the
        # distribution beside them
        def figure(item):
            caption, png = item[0], item[1]
            kind = item[2] if len(item) > 2 else "other"
            return ("<figure><img class=\"full kind-%s\" src=\"%s\" alt=\"%s\">"
                    "<figcaption>%s</figcaption></figure>"
                    % (_e(kind), data_uri(png), _e(caption), _e(caption)))
        timed = [i for i in images if len(i) > 2 and i[2] in ("heatmap", "wss_chron")]
        others = [i for i in images if i not in timed]
        out.append("<div class=\"figs\">")
        if timed:
            out.append("<div class=\"figcol\">%s</div>" % "".join(figure(i) for i in timed))
        out.extend(figure(i) for i in others)
        out.append("</div>")
    else:
        out.append("<p>No snapshot: nothing to plot.</p>")
    if holistic is not None:
        out.append(_holistic_section(*holistic))
    out.append("<h2 id=\"hottest\">Hottest address ranges</h2>")
    for t in summary["targets"]:
        out.append("<h3>target %s</h3>" % _e(str(t["target_id"])))
        out.append(_hottest_table(t["hottest_ranges"], _heatmap_note(summary, t["target_id"])))
    out.append("<h2 id=\"access\">Last snapshot</h2>")
    if access is not None:
        out.append("<p class=\"meta\">damo report access (default style) of the last snapshot "
                   "&mdash; %s</p>" % _e(_last_snapshot_note(records,
                                                              summary.get("time_origin_ns"))))
        out.append("<pre class=\"access\">%s</pre>" % ansi_to_html(access))
    else:
        shown = False
        for r in records:
            if r.nr_snapshots:
                out.append("<h3>target %s</h3>" % _e(str(r.target_id)))
                out.append(_region_table(r, r.nr_snapshots - 1, max_table_rows,
                                         summary.get("time_origin_ns")))
                shown = True
        if not shown:
            out.append("<p>No snapshot.</p>")
    return _page("damo-pipe report: %s" % name, "\n".join(out))


def _holistic_section(png, spots, notes):
    """The holistic view: the stacked picture and the record's hotspot functions."""
    out = ["<h2 id=\"holistic\">Holistic view: access, memory footprints and hotspot "
           "functions on one time axis</h2>"]
    for n in notes:
        out.append("<p class=\"warn\">note: %s</p>" % _e(n))
    out.append("<figure><img class=\"full kind-holistic\" src=\"%s\" alt=\"holistic view\">"
               "<figcaption>heatmap, working set size, memory footprints and hotspot "
               "functions per time window</figcaption></figure>" % data_uri(png))
    if spots:
        out.append("<h3>Hotspot functions of the whole record</h3>")
        out.append("<table class=\"sortable hotspots\"><thead><tr>%s%s%s%s</tr></thead><tbody>"
                   % (_th("share", "hs-share", True), _th("samples", "hs-samples", True),
                      _th("function", "hs-function"), _th("binary", "hs-dso")))
        for h in spots:
            out.append("<tr>%s%s%s%s</tr>" % (
                _num_cell(h.share, "%.2f%%" % (h.share * 100)), _num_cell(h.samples),
                _text_cell(_e(h.symbol)), _text_cell(_e(h.dso))))
        out.append("</tbody></table>")
    return "\n".join(out)


def holistic_view(path, input_type=None, warnings=None):
    """(png, hotspots, notes) for the report page, or None when the record has no side
    data (footprints, CPU profile); problems become ``warnings``."""
    from damo_pipe.analyze.holistic_picture import (compute_timeline, holistic_image_bytes,
                                                    side_data_available)
    from damo_pipe.errors import DamoPipeError
    try:
        if not side_data_available(path):
            return None
        tl = compute_timeline(path, input_type=input_type)
        if not tl.has_side_data:
            return None
        return holistic_image_bytes(tl, size=(1100, 1200)), tl.whole_hotspots, tl.notes
    except DamoPipeError as e:
        if warnings is not None:
            warnings.append("holistic view: %s" % e)
        return None


def image_captions(summary, options):
    """What each picture shows, in words (the page's figure captions)."""
    hm = summary.get("heatmap")
    where = ""
    if hm:
        a, b = hm["address_range"]
        where = ": target %s, [%#x, %#x) (%s), the contiguous address range with the most " \
                "access; gray: no snapshot" % (hm["target_id"], a, b, format_bytes_short(b - a))
    skip = options.exclude_samples
    return {"heatmap": "access heatmap" + where,
            "wss_dist": "working set size distribution (%s)"
                        % ("the first %d snapshots skipped, as by report wss" % skip
                           if skip else "every snapshot"),
            "wss_chron": "working set size of every snapshot over the whole recording%s"
                         % ("; shaded: the first %d, which report wss skips" % skip
                            if options.mark_skipped and skip else "")}


def write_record_report(path, output, *, options=None, input_type=None, max_table_rows=500):
    """Read ``path``, render its self-contained report page and write it to ``output``."""
    import tempfile

    from damo_pipe.analyze.images import IMAGE_FILES, BatchOptions, write_images
    from damo_pipe.analyze.selection import apply_batch_selection, selection_note
    from damo_pipe.analyze.summary import summarize_records
    from damo_pipe.sources import detect_format, read_records

    options = options or BatchOptions()
    fmt = input_type or detect_format(path)
    whole = read_records(path, input_type=input_type)
    records, options, selection = apply_batch_selection(whole, options)
    summary = summarize_records(records, path, exclude_samples=options.exclude_samples,
                                acc_thres=options.acc_thres, sz_thres=options.sz_thres)
    summary["format"] = fmt
    summary["selection"] = selection.as_json() if selection else None
    images = []
    warnings = [selection_note(selection, whole)] if selection else []
    shown = {}
    with tempfile.TemporaryDirectory(prefix="damo-pipe-html-") as tmp:
        written = write_images(records, tmp, options, os.path.basename(os.fspath(path)), warnings,
                               info=shown)
        summary["heatmap"] = shown.get("heatmap")
        captions = image_captions(summary, options)
        for kind in IMAGE_FILES:
            if kind in written:
                with open(os.path.join(tmp, written[kind]), "rb") as f:
                    images.append((captions[kind], f.read(), kind))
    holistic = None if selection else holistic_view(path, input_type, warnings)
    text = render_record_report(records, path, summary, images, max_table_rows=max_table_rows,
                                access=access_text(records), warnings=warnings,
                                holistic=holistic)
    from damo_pipe._atomic import atomic_output
    with atomic_output(output) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    return summary
