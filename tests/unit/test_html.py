"""HTML pages: batch index and the self-contained report html page."""
import base64
import re

import pytest

from damo_pipe.analyze import html as H
from damo_pipe.analyze.cli import main
from damo_pipe.analyze.summary import summarize_records
from damo_pipe.formats import read_records
from tests.support.plotting import PNG_MAGIC
from tests.support.records import make_damo_json

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//|ftp:)|<link\b|@import|url\(\s*["']?https?:""", re.I)


def ok_result(tmp_path, name, seed, nr_targets=1):
    p = tmp_path / (name + ".json")
    make_damo_json(p, 25, 8, seed=seed, nr_targets=nr_targets)
    s = summarize_records(read_records(p), p)
    s["format"] = "json"
    return {"name": name, "path": str(p), "ok": True, "error": None, "summary": s,
            "images": {"heatmap": "heatmap.png", "wss_dist": "wss_dist.png"}, "seconds": 0.5}


def failed_result(path, error):
    return {"name": "bad", "path": path, "ok": False, "error": error, "summary": None, "images": {}}


def test_index_lists_archives_targets_and_failures(tmp_path):
    results = [ok_result(tmp_path, "one", 1), ok_result(tmp_path, "two", 2, nr_targets=3),
               failed_result("/x/<b>evil</b>.data", "bad <script>alert(1)</script> & more")]
    page = H.render_index(results, title="T & <t>", generated="now")
    assert "<title>T &amp; &lt;t&gt;</title>" in page
    table = page[page.index('<table class="sortable" id="archives">'):]
    table = table[:table.index("</table>")]
    assert table.count('<tr data-archive="one">') == 1
    assert table.count('<tr data-archive="two">') == 3          # one row per target
    assert "Failed inputs (1)" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<script>alert" not in page and "<b>evil" not in page
    assert 'src="one/heatmap.png"' in page and 'src="one/wss_dist.png"' in page
    assert "wss_chron_change.png" not in page                    # not written -> not linked
    for k in ("wss-p0", "wss-p50", "wss-p100", "footprint", "archive"):
        assert 'data-key="%s"' % k in page
    assert not EXTERNAL.search(page)
    assert page.count("<script>") == 1                             # the inline sorter only


def test_index_numeric_sort_keys_are_raw_numbers(tmp_path):
    r = ok_result(tmp_path, "one", 1)
    page = H.render_index([r], generated="now")
    t = r["summary"]["targets"][0]
    want = t["wss_percentiles"]["50"]
    assert 'data-sort="%d"' % want in page


@pytest.mark.parametrize("n,rgb", [(0, "#000000"), (9, "#ff0000"), (16, "#000000"), (21, "#0000ff"),
                                   (196, "#ff0000"), (231, "#ffffff"), (232, "#080808"),
                                   (255, "#eeeeee"), (67, "#5f87af")])
def test_xterm256(n, rgb):
    assert H.xterm256(n) == rgb


def test_ansi_to_html():
    text = "a<\x1b[48;5;232m\x1b[38;5;255m9\x1b[0m&\x1b[1mb"
    got = H.ansi_to_html(text)
    assert got == 'a&lt;<span style="background:#080808;color:#eeeeee">9</span>&amp;b'


def test_record_report_is_self_contained(tmp_path, plotting):
    p = tmp_path / "rec.json"
    dicts = make_damo_json(p, 24, 9, seed=5, nr_targets=2)
    out = tmp_path / "rec.html"
    assert main(["report", "html", str(p), "-o", str(out), "--resol", "40", "50"]) == 0
    page = out.read_text()
    assert not EXTERNAL.search(page)
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 3
    for u in uris:
        assert base64.b64decode(u)[:8] == PNG_MAGIC
    assert re.findall(r'<img [^>]*src="(?!data:)', page) == []
    assert "Record info" in page and "Last snapshot" in page
    # both targets' counts in the info table
    assert page.count("<td>0</td>") >= 1 and page.count("<td>1</td>") >= 1
    assert ">24</td>" in page and ">216</td>" in page             # snapshots, regions per target
    del dicts


def test_record_report_region_table_fallback(tmp_path, plotting, monkeypatch):
    p = tmp_path / "rec.json"
    dicts = make_damo_json(p, 3, 7, seed=6)
    monkeypatch.setattr(H, "access_text", lambda records: None)
    out = tmp_path / "rec.html"
    assert main(["report", "html", "--input", str(p), "--output", str(out)]) == 0
    page = out.read_text()
    table = page[page.index('<table class="sortable regions">'):]
    table = table[:table.index("</table>")]
    last = dicts[0]["snapshots"][-1]["regions"]
    rows = re.findall(r"<tr>(.*?)</tr>", table[table.index("<tbody>"):])
    assert len(rows) == len(last)
    for row, reg in zip(rows, last):
        assert '>%#x</td>' % reg["start"] in row and '>%#x</td>' % reg["end"] in row


def test_record_report_uses_access_text_when_available(tmp_path, plotting):
    pytest.importorskip("damo_pipe.analyze.access")
    p = tmp_path / "rec.json"
    make_damo_json(p, 3, 5, seed=7)
    text = H.access_text(read_records(p))
    assert text is not None and "total size:" in text
    out = tmp_path / "rec.html"
    assert main(["report", "html", str(p), "-o", str(out)]) == 0
    assert '<pre class="access">' in out.read_text()


def test_record_report_bad_input(tmp_path, capsys):
    p = tmp_path / "bad.json"
    p.write_text("[{")
    assert main(["report", "html", str(p), "-o", str(tmp_path / "x.html")]) != 0
    assert "bad.json" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_record_report_unwritable_output(tmp_path, capsys, plotting):
    p = tmp_path / "rec.json"
    make_damo_json(p, 2, 3, seed=1)
    rc = main(["report", "html", str(p), "-o", str(tmp_path / "no" / "such" / "dir.html")])
    assert rc != 0
    err = capsys.readouterr().err
    assert "cannot write" in err and "dir.html" in err and "Traceback" not in err
