"""Fixtures of the browser tests: the Chromium binary, a batch run's output pages."""
import pytest

from damo_pipe.analyze.cli import main
from tests.support.browser import chromium_binary
from tests.support.records import make_damo_json


@pytest.fixture(scope="module")
def chromium():
    exe = chromium_binary()
    if exe is None:
        pytest.skip("chromium not installed (run tools/install-test-deps)")
    return exe


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
