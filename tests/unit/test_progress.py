"""Progress bars: on a terminal only (tqdm's ``disable=None`` rule).

The commands run in a child process whose stderr is a pseudo-terminal (with a window
size, as a real terminal has) or a plain file; a bar is drawn with carriage returns,
so the redirected runs must have none.
"""
import fcntl
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

import damo_pipe

pytest.importorskip("tqdm")

SAMPLE = Path(damo_pipe.__file__).parent / "data" / "sample.h5"
CLI = [sys.executable, "-m", "damo_pipe.analyze.cli"]


def run_on_pty(args, cwd, timeout=300):
    """(returncode, text written to the terminal) of ``args`` with stderr on a pty."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    p = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=slave)
    os.close(slave)
    out = bytearray()
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:          # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(master)
    return p.wait(timeout=timeout), out.decode("utf-8", "replace")


def run_redirected(args, cwd, timeout=300):
    p = subprocess.run(args, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stderr


def test_single_file_convert_shows_a_bar_on_a_terminal(tmp_path):
    rc, text = run_on_pty(CLI + ["convert", str(SAMPLE), str(tmp_path / "out.json")], tmp_path)
    assert rc == 0, text
    from damo_pipe.archive import ArchiveReader
    with ArchiveReader(SAMPLE) as r:
        total = r.nr_regions(0)
    # the archive tells its size first: a bar out of every region, ending full
    assert "convert:" in text and "regions" in text and "\r" in text
    assert "100%" in text
    assert "%.2fk/%.2fk" % (total / 1000, total / 1000) in text
    rc, text = run_on_pty(CLI + ["convert", str(tmp_path / "out.json"), str(tmp_path / "b.h5")],
                          tmp_path)
    assert rc == 0 and "convert:" in text and "regions" in text   # a count, no total


def test_convert_draws_no_bar_into_a_redirected_stderr(tmp_path):
    for extra in ([], ["-v"]):
        rc, err = run_redirected(CLI + extra + ["convert", str(SAMPLE),
                                                str(tmp_path / "out.json")], tmp_path)
        assert rc == 0
        assert "\r" not in err and "%|" not in err and "regions/s" not in err
    os.mkdir(tmp_path / "many")
    rc, err = run_redirected(CLI + ["-v", "convert", str(SAMPLE), str(tmp_path / "out.json"),
                                    str(tmp_path / "many")], tmp_path)
    assert rc == 0 and "\r" not in err and "file/s" not in err
    assert sorted(os.listdir(tmp_path / "many")) == ["out.h5", "sample.h5"]


@pytest.mark.slow
def test_batch_bar_only_on_a_terminal(tmp_path):
    pytest.importorskip("distributed")
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copyfile(SAMPLE, inp / "a.h5")
    args = CLI + ["batch", str(inp), "--out", str(tmp_path / "out"), "--threads",
                  "--workers", "1", "--resol", "20", "20"]
    rc, err = run_redirected(args + ["--title", "redirected"], tmp_path)
    assert rc == 0, err
    assert "\r" not in err and "damo-analyze batch:" not in err
    rc, text = run_on_pty(args, tmp_path)
    assert rc == 0, text
    assert "damo-analyze batch:" in text and "\r" in text and "1/1" in text
