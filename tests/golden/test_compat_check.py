"""End to end: damo 3.4.3's recorded command lines run against the installed CLI.

Runs ../shared/tools/damo-compat-check (every case of ../shared/fixtures/damo/cases.tsv,
each as a real `damo-analyze` process) and requires `N passed, 0 failed`.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.golden.conftest import SHARED

CHECKER = SHARED / "tools" / "damo-compat-check"
CLI = Path(sys.executable).with_name("damo-analyze")


def test_every_recorded_damo_case_passes():
    if not CHECKER.exists():
        pytest.skip("damo-compat-check not found at %s" % CHECKER)
    if not CLI.exists():
        pytest.skip("damo-analyze console script not installed beside %s" % sys.executable)
    p = subprocess.run([sys.executable, str(CHECKER), "--damo", str(CLI)], capture_output=True,
                       text=True, timeout=1800)
    summary = p.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"(\d+) passed, (\d+) failed", summary)
    assert m, p.stdout[-2000:] + p.stderr[-2000:]
    assert int(m.group(2)) == 0, p.stdout[-4000:]
    assert int(m.group(1)) >= 291
