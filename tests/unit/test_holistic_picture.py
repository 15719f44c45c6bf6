"""The holistic picture (analyze/holistic_picture.py): one time axis for the access
record, the memory footprints and the hotspot functions; ``report holistic --output``
and the HTML report's holistic section."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from damo_pipe.analyze import holistic_picture as HP
from damo_pipe.analyze.cli import main
from damo_pipe.analyze.hotspots import hotspots_over_time
from tests.golden.conftest import FIXTURES
from tests.support.records import WALL_T0 as T0, recorded_archive

HOLI = FIXTURES / "damo-holistic" / "inputs" / "holi"
HAVE_PERF = shutil.which("perf") is not None


def test_same_clock_archive(tmp_path):
    h5 = recorded_archive(tmp_path / "a.h5")
    tl = HP.compute_timeline(h5, nr_windows=4, top=3)
    assert tl.notes == []
    assert (tl.t0_ns, tl.t1_ns) == (T0, T0 + 100 * 100_000_000)
    assert tl.heatmap is not None and list(tl.wss) == [0] and len(tl.wss[0][0]) == 100
    assert tl.footprint_times[0] == T0          # no shift: one clock
    assert tl.footprints["rss"][0] == 10 << 20
    assert tl.footprints["sys_used"][0] == (4 << 30)
    names = [n for n, _ in tl.hotspot_names]
    assert set(names) == {"phase_a", "phase_b", "helper"}
    k_a, k_b = names.index("phase_a"), names.index("phase_b")
    # phase_a fills the first two windows, phase_b the last two
    assert tl.hotspot_counts[:2, k_a].min() > 300 and tl.hotspot_counts[2:, k_a].sum() == 0
    assert tl.hotspot_counts[2:, k_b].min() > 300 and tl.hotspot_counts[:2, k_b].sum() == 0
    assert int(tl.window_samples.sum()) == 2000
    from damo_pipe.archive.profile import read_profile
    s, _ = read_profile(h5)
    ref = hotspots_over_time(s, tl.windows_ns, 3)
    assert ref[0] == tl.hotspot_names and np.array_equal(ref[1], tl.hotspot_counts)


def test_other_clock_is_moved_to_the_record_start():
    assert HP._shift_to(100, 200, 150, 190) == 0
    assert HP._shift_to(10**9, 2 * 10**9, 10**18, 10**18 + 5) == 10**9 - 10**18


def test_no_side_data(tmp_path):
    h5 = recorded_archive(tmp_path / "a.h5", with_footprints=False, with_profile=False)
    tl = HP.compute_timeline(h5)
    assert not tl.has_side_data and tl.hotspot_counts is None
    assert any("no memory footprints" in n for n in tl.notes)
    assert any("no CPU profile" in n for n in tl.notes)
    out = tmp_path / "p.png"
    HP.save_holistic_image(tl, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _pixels(path):
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def test_picture_cli(tmp_path):
    h5 = recorded_archive(tmp_path / "a.h5")
    out = tmp_path / "h.png"
    assert main(["report", "holistic", "--access_pattern", h5, "--output", str(out),
                 "--hotspot_windows", "6", "--hotspot_top", "3", "--image_size", "900", "1000"]) == 0
    px = _pixels(out)
    assert px.shape == (1000, 900, 3)
    colourful = ((px.max(axis=2) - px.min(axis=2)) > 60).mean()
    assert colourful > 0.1          # heatmap and hotspot bars
    # the hotspot panel (bottom quarter) shows the phases' colours C0..C2 side by side
    bottom = px[750:950, 50:700].reshape(-1, 3)
    tab10 = {(31, 119, 180), (255, 127, 14), (44, 160, 44)}
    seen = {tuple(int(v) for v in p) for p in bottom[::7]}
    assert len(tab10 & seen) == 3
    assert main(["report", "holistic", "--access_pattern", h5, "--output",
                 str(tmp_path / "h.bmp")]) == 2
    assert main(["report", "holistic", "--access_pattern", h5, "--output", str(out),
                 "--hotspot_windows", "0"]) == 2


@pytest.fixture
def damo_rec1(tmp_path):
    if not HOLI.exists():
        pytest.skip("../shared fixtures not available")
    d = tmp_path / "in"
    d.mkdir()
    for name in ("rec1.data", "rec1.data.mem_footprint", "rec1.data.profile"):
        shutil.copyfile(HOLI / name, d / name)
    return str(d / "rec1.data")


@pytest.mark.skipif(not HAVE_PERF, reason="perf is not installed")
def test_damo_files_and_their_archive_agree(damo_rec1, tmp_path):
    from damo_pipe.convert import convert_file
    h5 = str(tmp_path / "r.h5")
    convert_file(damo_rec1, h5, "hdf5")
    a = HP.compute_timeline(damo_rec1)
    b = HP.compute_timeline(h5)
    # damo's footprints are wall-clock stamped, its record and profile perf-clock
    assert a.notes == b.notes and len(a.notes) == 1 and "another clock" in a.notes[0]
    assert (a.t0_ns, a.t1_ns) == (b.t0_ns, b.t1_ns) == (19573278169000, 19579086722000)
    assert np.array_equal(a.footprint_times, b.footprint_times)
    assert a.footprint_times[0] == a.t0_ns
    assert a.hotspot_names == b.hotspot_names
    assert np.array_equal(a.hotspot_counts, b.hotspot_counts)
    assert int(a.window_samples.sum()) > 2000     # the profile overlaps the record


def test_html_holistic_section(tmp_path):
    from damo_pipe.analyze.html import write_record_report
    h5 = recorded_archive(tmp_path / "a.h5")
    out = tmp_path / "r.html"
    write_record_report(h5, out)
    text = out.read_text()
    assert 'id="holistic"' in text and 'class="full kind-holistic"' in text
    assert "<td>phase_a</td>" in text and "<td>/usr/bin/app</td>" in text
    plain = recorded_archive(tmp_path / "b.h5", with_footprints=False, with_profile=False)
    write_record_report(plain, tmp_path / "b.html")
    assert 'id="holistic"' not in (tmp_path / "b.html").read_text()
