"""The HTML pages rendered by headless Chromium: not blank, tables present, sorting works.

Needs Debian's ``chromium`` (``tools/install-test-deps`` installs it); skipped otherwise.
"""
import json
import re

import pytest

from damo_pipe.analyze.cli import main
from tests.support.browser import assert_not_blank, colourful_fraction, run_chromium, screenshot
from tests.support.plotting import real_plot_modules
from tests.support.records import make_damo_json

pytestmark = pytest.mark.skipif(not real_plot_modules(), reason="damo_pipe.analyze.plots not available")


def test_index_screenshot_and_dom(chromium, tmp_path, batch_out):
    url = (batch_out / "index.html").as_uri()
    px = screenshot(chromium, tmp_path, url, tmp_path / "index.png")
    assert_not_blank(px)
    dom = run_chromium(chromium, tmp_path, url, "--dump-dom")
    assert '<table class="sortable" id="archives">' in dom
    assert len(re.findall(r'<tr data-archive="', dom)) == 3
    assert "Failed inputs (1)" in dom and "corrupt.json" in dom


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_index_sorts_by_hash(chromium, tmp_path, batch_out, direction):
    p50 = {}
    for name in ("a_mid.json", "b_small.json", "c_big.json"):
        s = json.loads((batch_out / name / "summary.json").read_text())
        p50[name] = s["targets"][0]["wss_percentiles"]["50"]
    want = sorted(p50, key=p50.get, reverse=direction == "desc")
    assert want != sorted(p50)           # the sort must change the file order
    url = (batch_out / "index.html").as_uri() + "#sort=wss-p50-" + direction
    dom = run_chromium(chromium, tmp_path, url, "--dump-dom")
    got = re.findall(r'<tr data-archive="([^"]+)"', dom)
    assert got == want
    assert re.search(r'data-key="wss-p50"[^>]*aria-sort="%s' % ("ascending" if direction == "asc" else "descending"), dom)


def test_report_html_screenshot(chromium, tmp_path):
    p = tmp_path / "rec.json"
    make_damo_json(p, 30, 20, seed=9)
    out = tmp_path / "rec.html"
    assert main(["report", "html", str(p), "-o", str(out), "--resol", "100", "100"]) == 0
    px = screenshot(chromium, tmp_path, out.as_uri(), tmp_path / "rec.png", size=(1400, 1600))
    assert_not_blank(px)
    assert colourful_fraction(px) > 0.005       # the plots are coloured
    dom = run_chromium(chromium, tmp_path, out.as_uri(), "--dump-dom")
    assert dom.count('src="data:image/png;base64,') == 3
    assert "Record info" in dom and "Last snapshot" in dom
