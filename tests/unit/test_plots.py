"""matplotlib pictures: valid files of the requested size with non-trivial content."""
import numpy as np
import pytest

from damo_pipe.analyze import plots
from damo_pipe.analyze.heatmap import HeatmapGrid


def _grid():
    heat = np.outer(np.linspace(0, 1, 30), np.linspace(1, 20, 40))
    heat[0, :5] = np.nan
    return HeatmapGrid(heat=heat, t_start=10**12, time_unit=10**8, a_start=0x7f0000000000,
                       addr_unit=1 << 20, unit="hz", target_id=3)


def _png_pixels(path):
    from PIL import Image
    with Image.open(path) as im:
        return im.size, np.asarray(im.convert("RGB"))


def test_heatmap_png_size_and_content(tmp_path):
    p = tmp_path / "hm.png"
    plots.save_heatmap_image(_grid(), p, size=(640, 480))
    size, px = _png_pixels(p)
    assert size == (640, 480)
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 50    # a colour gradient, not blank


@pytest.mark.parametrize("ext,magic", [("svg", b"<?xml"), ("pdf", b"%PDF"), ("jpeg", b"\xff\xd8")])
def test_heatmap_other_formats(tmp_path, ext, magic):
    p = tmp_path / ("hm." + ext)
    plots.save_heatmap_image(_grid(), p, abs_addr=True, abs_time=True)
    assert p.read_bytes().startswith(magic)


def test_wss_plots(tmp_path):
    p1, p2 = tmp_path / "d.png", tmp_path / "t.png"
    plots.save_wss_distribution(list(range(101)), [i * 4096 * 100 for i in range(101)], p1,
                                size=(500, 300))
    plots.save_wss_over_time(np.arange(50) * 10**8, (np.arange(50) % 7) * 1 << 20, p2)
    assert _png_pixels(p1)[0] == (500, 300)
    size, px = _png_pixels(p2)
    assert size == (1200, 800)
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 5


def test_unsupported_extension(tmp_path):
    from damo_pipe.errors import UsageError
    with pytest.raises(UsageError):
        plots.save_heatmap_image(_grid(), tmp_path / "x.bmp")
