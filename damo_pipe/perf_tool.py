"""The one place damo-pipe finds and starts the ``perf`` tool.

Readers (``perf script`` of a perf.data: :mod:`damo_pipe.formats.trace_text`,
:mod:`damo_pipe.formats.perf_samples`), reports (``perf report``:
:mod:`damo_pipe.analyze.perf`) and the collector (``perf record``) all start perf
through these functions, so that a missing perf or a failing run is always the same
:class:`~damo_pipe.errors.ExternalToolError` with the same hint, never a traceback.

``perf_path`` is what the user gave (``--perf_path``: a command name or a path);
None means "any perf we can find" (``perf`` on PATH, then ``/usr/bin/perf``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from damo_pipe.errors import ExternalToolError

__all__ = ["PERF_CANDIDATES", "which_perf", "perf_available", "find_perf", "perf_command",
           "run_perf", "call_perf", "popen_perf", "stderr_tail"]

#: where perf is looked for when no path is given
PERF_CANDIDATES = ("perf", "/usr/bin/perf")

_INSTALL_HINT = "install perf (Debian: linux-perf) or pass its path with --perf_path"


def which_perf(perf_path=None, candidates=PERF_CANDIDATES):
    """The executable ``perf_path`` names (or the first of ``candidates`` found), or None."""
    for name in ([perf_path] if perf_path is not None else candidates):
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def perf_available(perf_path="perf"):
    """True when ``perf_path`` is an executable (a path, or a command on PATH)."""
    return which_perf(perf_path) is not None


def find_perf(perf_path=None, purpose=None, candidates=PERF_CANDIDATES):
    """The executable to run (ExternalToolError when there is none). ``purpose`` (e.g.
    "to read perf.data x") goes into the message."""
    found = which_perf(perf_path, candidates)
    if found is None:
        what = "perf not found" if perf_path is None else "perf not found (--perf_path %s)" % perf_path
        if purpose:
            what += " " + purpose
        raise ExternalToolError("%s: %s" % (what, _INSTALL_HINT))
    return found


def perf_command(perf_path, subcommand, args=(), purpose=None):
    """``[perf, subcommand, *args]`` with perf resolved by :func:`find_perf`."""
    return [find_perf(perf_path, purpose), subcommand] + [os.fspath(a) for a in args]


def stderr_tail(data, limit=400):
    """The last ``limit`` characters of perf's stderr, on one line (for messages)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    text = " ".join(data.split())
    return text if len(text) <= limit else "..." + text[-limit:]


def _failed(cmd, code, stderr=None):
    msg = "`perf %s` failed (exit %d)" % (" ".join(cmd[1:]), code)
    tail = stderr_tail(stderr) if stderr else ""
    return ExternalToolError(msg + (": " + tail if tail else "; see perf's message above"))


def _cannot_run(cmd, e):
    return ExternalToolError("cannot run %s (%s)" % (cmd[0], e.strerror or e))


def run_perf(cmd, *, capture_stderr=False):
    """Run ``cmd`` (from :func:`perf_command`), stdin closed; return its stdout (bytes).

    perf's stderr goes to ours unless ``capture_stderr``, in which case it is kept and
    its tail put into the error of a failed run. Exit status != 0: ExternalToolError."""
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE if capture_stderr else None)
    except OSError as e:
        raise _cannot_run(cmd, e) from None
    if p.returncode != 0:
        raise _failed(cmd, p.returncode, p.stderr)
    return p.stdout


def call_perf(cmd):
    """Run ``cmd`` on our stdin/stdout/stderr (perf chooses text or its interactive
    interface); ExternalToolError when it fails."""
    try:
        code = subprocess.call(cmd)
    except OSError as e:
        raise _cannot_run(cmd, e) from None
    if code != 0:
        raise _failed(cmd, code)


class PerfProcess:
    """A running perf with stdout as a pipe (or as given) and stderr in an anonymous
    temporary file (a chatty perf cannot block on a full pipe).

    ``check()`` waits for the exit and raises ExternalToolError naming the command, the
    exit status and the tail of perf's stderr when it failed. Usable as a context
    manager: leaving the block kills a perf still running and reaps it."""

    def __init__(self, cmd, stdout=subprocess.PIPE, **popen_kwargs):
        self.cmd = list(cmd)
        self._err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=stdout,
                                         stderr=self._err, **popen_kwargs)
        except OSError as e:
            self._err.close()
            raise _cannot_run(self.cmd, e) from None

    @property
    def stdout(self):
        return self.proc.stdout

    @property
    def pid(self):
        return self.proc.pid

    def stderr_text(self):
        """What perf wrote to stderr so far."""
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace")

    def check(self, timeout=None):
        """Wait for perf to exit (stdout is closed first); ExternalToolError if it failed."""
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        code = self.proc.wait(timeout)
        if code != 0:
            raise _failed(self.cmd, code, self.stderr_text())
        return code

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc.wait()
        self._err.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def popen_perf(cmd, **popen_kwargs):
    """Start ``cmd`` as a :class:`PerfProcess` (stdout a pipe unless ``stdout=`` is
    given; other keyword arguments go to ``subprocess.Popen``)."""
    return PerfProcess(cmd, **popen_kwargs)
