"""Layout of the pages in a 1,400-pixel window (headless Chromium measures the boxes):
the batch table fits, the report page's pictures are shown at the size they were drawn
for (so their text is as large as intended) and the heatmap and the WSS over time are
stacked with their plot frames aligned.

Needs Debian's ``chromium`` (``tools/install-test-deps`` installs it); skipped otherwise.
"""
import json
import re

from damo_pipe.analyze.cli import main
from damo_pipe.analyze.images import IMAGE_SCALE, IMAGE_SIZES
from tests.support.browser import run_chromium
from tests.support.records import make_damo_json

WIDTH = 1400

#: appended to a copy of a page: writes the boxes it measures into the DOM
_MEASURE = """<script>
(function () {
  var out = {viewport: document.documentElement.clientWidth, boxes: {}};
  document.querySelectorAll('table#archives, img.full, table.targets').forEach(function (e, i) {
    var r = e.getBoundingClientRect();
    var key = e.id || (e.className + '#' + i);
    out.boxes[key] = {left: r.left, right: r.right, top: r.top, width: e.clientWidth,
                      natural: e.naturalWidth || null};
  });
  document.body.setAttribute('data-measure', JSON.stringify(out));
})();
</script></body>"""


def measure(exe, tmp_path, page):
    copy = page.with_name("measure-" + page.name)
    copy.write_text(page.read_text().replace("</body>", _MEASURE))
    dom = run_chromium(exe, tmp_path, copy.as_uri(), "--window-size=%d,1200" % WIDTH,
                       "--dump-dom")
    text = re.search(r'data-measure="([^"]*)"', dom).group(1)
    return json.loads(text.replace("&quot;", '"').replace("&amp;", "&"))


def test_batch_table_fits_the_window(chromium, tmp_path, batch_out):
    m = measure(chromium, tmp_path, batch_out / "index.html")
    assert m["viewport"] == WIDTH
    table = m["boxes"]["archives"]
    assert table["right"] <= WIDTH, table


def test_report_pictures_at_their_size(chromium, tmp_path):
    p = tmp_path / "rec.json"
    make_damo_json(p, 30, 20, seed=9)
    out = tmp_path / "rec.html"
    assert main(["report", "html", str(p), "-o", str(out), "--resol", "100", "100"]) == 0
    m = measure(chromium, tmp_path, out)
    imgs = {k.split("kind-")[1].split("#")[0]: v for k, v in m["boxes"].items() if "kind-" in k}
    assert set(imgs) == {"heatmap", "wss_dist", "wss_chron"}
    for kind, box in imgs.items():
        assert box["width"] == IMAGE_SIZES[kind][0]                   # shown as drawn
        assert box["natural"] == IMAGE_SCALE * IMAGE_SIZES[kind][0]   # with 2x the pixels
        assert box["right"] <= WIDTH
    hm, chron, dist = imgs["heatmap"], imgs["wss_chron"], imgs["wss_dist"]
    assert hm["left"] == chron["left"] and chron["top"] > hm["top"]   # stacked, aligned
    assert dist["left"] > hm["right"]                                 # beside them
