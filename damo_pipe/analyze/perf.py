"""Running ``perf report`` on a CPU profile (a perf.data file), as damo's reports do.

The one place that starts perf for the analysis reports. A missing perf, a missing
profile or a failing ``perf report`` is an error of the error tree
(:class:`ExternalToolError`, :class:`RecordFormatError`), never a traceback.
perf's own messages (stderr) go to our stderr unchanged.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from damo_pipe.errors import ExternalToolError, RecordFormatError

__all__ = ["perf_available", "find_perf", "perf_report_output", "run_perf_report"]


def perf_available(name="perf"):
    """True when ``name`` is an executable (a path, or a command on PATH)."""
    return shutil.which(name) is not None


def find_perf(perf_path="perf"):
    """The executable to run for ``--perf_path`` (ExternalToolError when there is none)."""
    found = shutil.which(perf_path)
    if found is None:
        raise ExternalToolError("perf not found (--perf_path %s): install perf (Debian: "
                                "linux-perf) or pass its path with --perf_path" % perf_path)
    return found


def _command(perf_path, profile, args):
    perf = find_perf(perf_path)
    if not os.path.isfile(profile):
        raise RecordFormatError("no such file (the CPU profile; give it with --profile or "
                                "--inputs)", path=profile)
    return [perf, "report", "-i", str(profile)] + list(args)


def _failed(cmd, code):
    return ExternalToolError("`%s` failed (exit %d); see perf's message above"
                             % (" ".join(cmd[1:]), code))


def perf_report_output(perf_path, profile, args=()):
    """stdout of ``perf report -i PROFILE ARGS...`` as text."""
    cmd = _command(perf_path, profile, args)
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    except OSError as e:
        raise ExternalToolError("cannot run %s (%s)" % (cmd[0], e.strerror or e)) from None
    if p.returncode != 0:
        raise _failed(cmd, p.returncode)
    return p.stdout.decode("utf-8", "replace")


def run_perf_report(perf_path, profile, args=()):
    """Run ``perf report -i PROFILE ARGS...`` writing to our stdout (perf's own choice of
    text or interactive interface, as with damo). The caller flushes its stdout first."""
    cmd = _command(perf_path, profile, args)
    try:
        code = subprocess.call(cmd)
    except OSError as e:
        raise ExternalToolError("cannot run %s (%s)" % (cmd[0], e.strerror or e)) from None
    if code != 0:
        raise _failed(cmd, code)
