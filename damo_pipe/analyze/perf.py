"""Running ``perf report`` on a CPU profile (a perf.data file), as damo's reports do.

The reports' use of :mod:`damo_pipe.perf_tool` (the one perf runner). A missing perf,
a missing profile or a failing ``perf report`` is an error of the error tree
(:class:`ExternalToolError`, :class:`RecordFormatError`), never a traceback.
perf's own messages (stderr) go to our stderr unchanged.
"""
from __future__ import annotations

import os

from damo_pipe.errors import RecordFormatError
from damo_pipe.formats.perf_data_header import check_perf_data_header
from damo_pipe.perf_tool import call_perf, find_perf, perf_available, perf_command, run_perf

__all__ = ["perf_available", "find_perf", "perf_report_output", "run_perf_report"]


def _command(perf_path, profile, args):
    cmd = perf_command(perf_path, "report", ["-i", str(profile)] + list(args))
    if not os.path.isfile(profile):
        raise RecordFormatError("no such file (the CPU profile; give it with --profile or "
                                "--inputs)", path=profile)
    check_perf_data_header(profile)     # perf can spin forever on a damaged file
    return cmd


def perf_report_output(perf_path, profile, args=()):
    """stdout of ``perf report -i PROFILE ARGS...`` as text."""
    return run_perf(_command(perf_path, profile, args)).decode("utf-8", "replace")


def run_perf_report(perf_path, profile, args=()):
    """Run ``perf report -i PROFILE ARGS...`` writing to our stdout (perf's own choice of
    text or interactive interface, as with damo). The caller flushes its stdout first."""
    call_perf(_command(perf_path, profile, args))
