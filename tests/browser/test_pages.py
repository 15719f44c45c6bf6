"""The HTML pages rendered by headless Chromium: not blank, tables present, sorting works.

Needs Debian's ``chromium`` (``tools/install-test-deps`` installs it); skipped otherwise.
"""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from damo_pipe.analyze.cli import main
from tests.unit.test_batch import make_damo_json, real_plot_modules

pytestmark = pytest.mark.skipif(not real_plot_modules(), reason="damo_pipe.analyze.plots not available")


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


@pytest.fixture(scope="module")
def chromium():
    exe = chromium_binary()
    if exe is None:
        pytest.skip("chromium not installed (run tools/install-test-deps)")
    return exe


def run_chromium(exe, tmp_path, url, *args):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", "--user-data-dir=%s" % (tmp_path / "chrome-profile"),
           *args, url]
    p = subprocess.run(cmd, capture_output=True, timeout=120, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def screenshot(exe, tmp_path, url, png, size=(1400, 1000)):
    run_chromium(exe, tmp_path, url, "--screenshot=%s" % png, "--window-size=%d,%d" % size)
    from PIL import Image
    with Image.open(png) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def assert_not_blank(pixels):
    gray = pixels.mean(axis=2)
    assert gray.std() > 20, "screenshot looks blank (std %.1f)" % gray.std()
    assert (gray < 200).mean() > 0.01, "almost no dark pixels: nothing rendered"


def colourful_fraction(pixels):
    """Fraction of clearly coloured (not gray) pixels: plots, not text."""
    return float(((pixels.max(axis=2) - pixels.min(axis=2)) > 60).mean())


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("batch")
    d = tmp_path / "in"
    d.mkdir()
    # file order a, b, c differs from both WSS orders (small < mid < big)
    make_damo_json(d / "a_mid.json", 25, 10, seed=3, hot=(0.4, 0.7))
    make_damo_json(d / "b_small.json", 24, 6, seed=1, hot=(0.0, 0.2))
    make_damo_json(d / "c_big.json", 26, 16, seed=2, hot=(0.2, 0.9))
    (d / "corrupt.json").write_text("{not json")
    out = tmp_path / "out"
    argv = ["batch", str(d), "--out", str(out), "--workers", "1", "--threads", "--resol", "60", "80",
            "--no_progress"]
    assert main(argv) == 1
    return out


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
