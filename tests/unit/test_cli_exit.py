"""The console scripts' fast exit (``_cli_common.exit_fast``): same output and exit code
as a normal exit, atexit callbacks still run, and a normal exit whenever another thread
runs or an HDF5 file is open."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import h5py
import numpy as np
import pytest

from damo_pipe.data import sample_path


def run_py(code, *args):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)


def test_exit_fast_runs_atexit_flushes_and_keeps_the_code():
    r = run_py("import atexit, sys\n"
               "atexit.register(lambda: print('atexit ran'))\n"
               "sys.stdout.write('buffered;')\n"
               "sys.stderr.write('err;')\n"
               "from damo_pipe._cli_common import exit_fast\n"
               "exit_fast(3)\n"
               "print('not reached')\n")
    assert r.returncode == 3
    assert r.stdout == "buffered;atexit ran\n"
    assert r.stderr == "err;"


def test_exit_fast_returns_while_another_thread_runs():
    r = run_py("import threading, time\n"
               "stop = threading.Event()\n"
               "t = threading.Thread(target=stop.wait); t.start()\n"
               "from damo_pipe._cli_common import exit_fast\n"
               "rc = exit_fast(4)\n"
               "print('returned', rc)\n"
               "stop.set(); t.join()\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "returned 4\n"


def test_exit_fast_returns_while_an_hdf5_file_is_open(tmp_path):
    path = tmp_path / "open.h5"
    r = run_py("import sys, h5py, numpy as np\n"
               "f = h5py.File(sys.argv[1], 'w')\n"
               "f.create_dataset('x', data=np.arange(1000))\n"
               "from damo_pipe._cli_common import exit_fast\n"
               "print('returned', exit_fast(0))\n", str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "returned 0\n"
    with h5py.File(path, "r") as f:   # the normal exit closed (and flushed) it
        assert np.array_equal(f["x"][:], np.arange(1000))


def console_script(name):
    exe = Path(sysconfig.get_path("scripts")) / name
    if not exe.exists():
        pytest.skip("%s is not installed in this environment" % exe)
    return str(exe)


def test_console_script_prints_what_main_prints():
    exe = console_script("damo-analyze")
    args = ["report", "heatmap", "--input", sample_path(), "--output", "raw"]
    fast = subprocess.run([exe, *args], capture_output=True, timeout=300)
    plain = subprocess.run([sys.executable, "-c",
                            "import sys; from damo_pipe.analyze.cli import main; sys.exit(main())",
                            *args], capture_output=True, timeout=300)
    assert fast.returncode == plain.returncode == 0, fast.stderr
    assert len(fast.stdout) > 1000 and fast.stdout == plain.stdout


def test_console_script_error_exit_code():
    exe = console_script("damo-analyze")
    r = subprocess.run([exe, "report", "heatmap", "--input", os.devnull, "--output", "raw"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "damo-analyze: error:" in r.stderr and os.devnull in r.stderr
