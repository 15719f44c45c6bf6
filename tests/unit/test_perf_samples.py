"""perf.data -> ProfileSamples (formats/perf_samples.py) and the perf runner (perf_tool.py).

Real parts: damo's fixture profile (a real perf.data, read from ../shared at test time)
checked against ``perf report``'s own counts, and a profile this test records itself
with the host's ``perf record -e cpu-clock`` of a small busy C program (skipped, with
the reason, where perf cannot record).
"""
from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from damo_pipe.errors import ExternalToolError, RecordFormatError
from damo_pipe.formats.perf_samples import (UNKNOWN, ProfileSamples, parse_perf_script,
                                            read_perf_samples)
from tests.golden.conftest import FIXTURES
from tests.support.fake_perf import empty_perf_data

PERF = shutil.which("perf")
PROFILE = FIXTURES / "damo-holistic" / "inputs" / "holi" / "rec1.data.profile"
needs_perf = pytest.mark.skipif(PERF is None, reason="perf is not installed")


def _fixture():
    if not PROFILE.exists():
        pytest.skip("../shared fixtures not available")
    return str(PROFILE)


# -- the parser ----------------------------------------------------------------------
LINES = """\
  12748/12748 19573.228053088:            5081ca PyType_GenericAlloc (/usr/bin/python3.11)
  12748/12749 19573.235107704:            51d3e0 [unknown] (/usr/bin/python3.11)
      7/7    19573.100000000:  ffffffff81000000 native_safe_halt ([kernel.kallsyms])
  12748/12748 19573.240000001:      7f5b90f6ace6 main (/tmp/a.out (deleted))
  12748/12748 19573.240000002:      7f5b90f6ace6 std::vector<int, std::allocator<int> >::push_back(int const&) (/tmp/x (1).so)
     42/42 19573.3:  0 [unknown] ([unknown])
"""


def test_parse_perf_script_fields():
    s = parse_perf_script(LINES.splitlines())
    assert len(s) == 6
    # sorted by time: the kernel sample (earliest) first
    assert s.time_ns.tolist() == [19573100000000, 19573228053088, 19573235107704,
                                  19573240000001, 19573240000002, 19573300000000]
    assert s.pid.tolist() == [7, 12748, 12748, 12748, 12748, 42]
    assert s.tid.tolist() == [7, 12748, 12749, 12748, 12748, 42]
    rows = [(s.symbols[a], s.dsos[b]) for a, b in zip(s.symbol_id, s.dso_id)]
    assert rows == [("native_safe_halt", "[kernel.kallsyms]"),
                    ("PyType_GenericAlloc", "/usr/bin/python3.11"),
                    (UNKNOWN, "/usr/bin/python3.11"),
                    ("main", "/tmp/a.out (deleted)"),
                    ("std::vector<int, std::allocator<int> >::push_back(int const&)",
                     "/tmp/x (1).so"),
                    (UNKNOWN, UNKNOWN)]
    assert s.dso_id[1] == s.dso_id[2]          # one id per distinct name
    s.check()


def test_parse_perf_script_bytes_and_blank_lines():
    s = parse_perf_script([b"\n", b"  1/2 5.000000001:  ff f (/x)\n", b"   \n"])
    assert len(s) == 1 and s.time_ns.tolist() == [5000000001] and s.tid.tolist() == [2]


def test_parse_perf_script_error_names_line():
    with pytest.raises(RecordFormatError) as e:
        parse_perf_script(["  1/1 5.0:  ff f (/x)", "garbage here"], path="p.txt")
    assert e.value.line == 2 and e.value.path == "p.txt"


def test_samples_window_take_shift():
    s = ProfileSamples.from_rows([(30, 1, 1, "c", "d"), (10, 1, 1, "a", "d"),
                                  (20, 2, 2, "b", "e"), (40, 1, 1, "a", "d")])
    assert s.time_ns.tolist() == [10, 20, 30, 40]
    w = s.window(20, 40)
    assert w.time_ns.tolist() == [20, 30] and w.symbols is s.symbols
    assert s.window(None, 11).time_ns.tolist() == [10]
    assert s.window(41, None).time_ns.tolist() == []
    assert s.window(35, 20).time_ns.tolist() == []
    assert s.shifted(-5).time_ns.tolist() == [5, 15, 25, 35]
    assert s.time_span() == (10, 40) and ProfileSamples.empty().time_span() is None
    bad = s.take(slice(None))
    bad.symbol_id[0] = 9
    with pytest.raises(ValueError):
        bad.check()


# -- the perf runner -------------------------------------------------------------------
def test_missing_file_and_missing_perf(tmp_path):
    with pytest.raises(RecordFormatError):
        read_perf_samples(tmp_path / "none.data")
    f = tmp_path / "p.data"
    f.write_bytes(empty_perf_data())
    with pytest.raises(ExternalToolError, match="perf not found"):
        read_perf_samples(f, perf=str(tmp_path / "no-perf"))


@needs_perf
def test_perf_script_failure_is_external_tool_error(tmp_path):
    f = tmp_path / "p.data"
    f.write_bytes(b"not a perf.data file at all" * 10)
    with pytest.raises(RecordFormatError, match="not a perf.data file"):
        read_perf_samples(f)          # refused before perf runs
    f.write_bytes(empty_perf_data() + b"not a perf.data file at all" * 10)
    with pytest.raises(ExternalToolError, match="perf script"):
        read_perf_samples(f)          # a header that passes, then perf fails


def test_fake_perf_output_is_parsed(tmp_path):
    """A stand-in perf that prints fixed lines: the reader runs it with the documented
    arguments and parses its stdout."""
    fake = tmp_path / "perf"
    fake.write_text("#!%s\nimport sys\nassert sys.argv[1] == 'script' and '--ns' in sys.argv\n"
                    "sys.stdout.write(%r)\n" % (sys.executable, LINES))
    fake.chmod(0o755)
    f = tmp_path / "p.data"
    f.write_bytes(empty_perf_data())
    assert len(read_perf_samples(f, perf=str(fake))) == 6


# -- real perf.data --------------------------------------------------------------------
def _perf_report_counts(path, sort):
    """{name: samples} from ``perf report --stdio -n --sort SORT`` (perf's own sums)."""
    out = subprocess.run([PERF, "report", "-i", path, "--stdio", "-n", "--sort", sort],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    counts = collections.Counter()
    for line in out.decode().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = line.split()
        name = " ".join(words[2:])
        if name.startswith("[.] ") or name.startswith("[k] "):
            name = name[4:]
        counts[name] += int(words[1])
    return counts


@needs_perf
def test_fixture_profile_matches_perf_report():
    path = _fixture()
    s = read_perf_samples(path)
    s.check()
    assert len(s) == 2704
    assert s.time_span() == (19573228053088, 19579251808664)   # perf script --ns, first/last
    assert set(s.pid.tolist()) == {12748}
    by_dso = collections.Counter(os.path.basename(s.dsos[d]) for d in s.dso_id)
    assert by_dso == _perf_report_counts(path, "dso")
    named = collections.Counter(s.symbols[i] for i in s.symbol_id if s.symbols[i] != UNKNOWN)
    want = {k: v for k, v in _perf_report_counts(path, "sym").items()
            if not k.startswith("0x")}
    assert named == want
    assert named["_PyEval_EvalFrameDefault"] == 239


BUSY_C = r"""
#include <stdio.h>
#include <stdlib.h>
volatile unsigned long sink;
__attribute__((noinline)) void damo_pipe_busy_spin(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++)
        sink += i * 2654435761u;
}
int main(int argc, char **argv)
{
    damo_pipe_busy_spin(strtoul(argv[1], NULL, 10));
    return 0;
}
"""


@pytest.fixture(scope="module")
def own_profile(tmp_path_factory):
    """(perf.data, pid, realtime before, realtime after) of a busy C program profiled
    here with ``perf record -k CLOCK_REALTIME -e cpu-clock``."""
    if PERF is None:
        pytest.skip("perf is not installed")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the busy program")
    d = tmp_path_factory.mktemp("perf-record")
    src, exe, data = d / "busy.c", d / "busy", d / "perf.data"
    src.write_text(BUSY_C)
    subprocess.run([cc, "-O1", "-g", "-o", str(exe), str(src)], check=True)
    before = time.time_ns()
    p = subprocess.run([PERF, "record", "-q", "-k", "CLOCK_REALTIME", "-e", "cpu-clock",
                        "-F", "997", "-o", str(data), "--", str(exe), "300000000"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    after = time.time_ns()
    if p.returncode != 0 or not data.exists():
        paranoid = open("/proc/sys/kernel/perf_event_paranoid").read().strip()
        pytest.skip("perf record cannot profile here (perf_event_paranoid=%s): %s"
                    % (paranoid, p.stderr.decode(errors="replace").strip()[-200:]))
    return str(data), str(exe), before, after


def test_own_recording_names_the_busy_function(own_profile):
    data, exe, before, after = own_profile
    s = read_perf_samples(data)
    assert len(s) > 20
    s.check()
    # CLOCK_REALTIME profile: sample times lie between the wall-clock times around it
    assert before <= int(s.time_ns[0]) and int(s.time_ns[-1]) <= after
    counts = collections.Counter((s.symbols[a], s.dsos[b]) for a, b in zip(s.symbol_id, s.dso_id))
    (sym, dso), n = counts.most_common(1)[0]
    assert sym == "damo_pipe_busy_spin" and dso == exe
    assert n > len(s) // 2
    assert len(set(s.pid.tolist())) == 1
