"""The HTML report's holistic section rendered by headless Chromium: the stacked
picture shows, the hotspot table is there and sorts.

Needs Debian's ``chromium`` (``tools/install-test-deps`` installs it); skipped otherwise.
"""
import re

from damo_pipe.analyze.cli import main
from tests.support.browser import assert_not_blank, colourful_fraction, run_chromium, screenshot
from tests.support.records import recorded_archive


def test_holistic_section(chromium, tmp_path):
    h5 = recorded_archive(tmp_path / "app.h5")
    out = tmp_path / "app.html"
    assert main(["report", "html", h5, "-o", str(out), "--resol", "80", "80"]) == 0
    px = screenshot(chromium, tmp_path, out.as_uri(), tmp_path / "h.png", size=(1300, 3400))
    assert_not_blank(px)
    # the stacked picture sits below the record's own pictures: the lower half is coloured
    assert colourful_fraction(px[1700:]) > 0.05
    dom = run_chromium(chromium, tmp_path, out.as_uri(), "--dump-dom")
    assert 'id="holistic"' in dom and dom.count('src="data:image/png;base64,') == 4
    rows = re.findall(r'<tr><td class="num" data-sort="[^"]*">[^<]*</td><td class="num" '
                      r'data-sort="(\d+)">', dom)
    assert [int(x) for x in rows] == [750, 750, 500]      # most samples first
    dom = run_chromium(chromium, tmp_path, out.as_uri() + "#sort=hs-samples-asc", "--dump-dom")
    rows = re.findall(r'<tr><td class="num" data-sort="[^"]*">[^<]*</td><td class="num" '
                      r'data-sort="(\d+)">', dom)
    assert [int(x) for x in rows] == [500, 750, 750]
