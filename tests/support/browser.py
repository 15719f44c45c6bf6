"""Headless Chromium for the browser tests: run it, take screenshots, judge the pixels."""
import shutil
import subprocess

import numpy as np


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


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
