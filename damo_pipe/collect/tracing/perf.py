"""DAMON tracepoints through ``perf record -a -e damon:... -o - | perf script -i -``.

:class:`PerfSession` exposes the text output of ``perf script`` as a non-blocking pipe.
Enabling tracepoints through perf_event_open changes no tracefs file, so nothing has to
be restored; errors are :class:`~damo_pipe.errors.ExternalToolError`.
"""
from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import time

from damo_pipe.collect.signals import parent_death_signal as _set_pdeathsig
from damo_pipe.collect.tracing.tracefs import (DEFAULT_EVENTS, NO_REAL_ENV, REQUIRED_EVENT,
                                               available_damon_events, find_tracefs)
from damo_pipe.errors import DamonUnavailableError, ExternalToolError
from damo_pipe.perf_tool import which_perf

log = logging.getLogger(__name__)


#: perf record's workload: tell us (fd ``{fd}``) that perf has enabled its events, then
#: wait for EOF on stdin. perf starts the workload only once its events are on, and ends
#: the recording (with a complete final flush) when the workload exits.
#: (dash redirects only single-digit fds, hence /proc/self/fd.)
PERF_GATE_SCRIPT = "printf R >/proc/self/fd/{fd}; exec cat >/dev/null"


class PerfSession:
    """``perf record -a -e damon:… -o - -- GATE | perf script -i -``; ``open()`` returns
    the non-blocking read end of ``perf script``'s stdout.

    GATE (:data:`PERF_GATE_SCRIPT`) is a tiny workload: perf runs it only after its events
    are enabled, so its "R" tells when recording really started (perf's start-up takes
    well under a second on hardware, 30-120 s in a TCG VM, and a perf record stopped
    by SIGINT before that point records nothing). Closing GATE's stdin ends the recording
    the way perf likes best: workload exit, final flush, exit 0.

    Enabling tracepoints through perf_event_open changes no tracefs file, so nothing has
    to be restored. Children get SIGINT/SIGTERM when this process dies (PDEATHSIG), and
    GATE sees EOF then too.
    """

    def __init__(self, perf="perf", *, tracefs_root=None, events=None, mmap_pages=None,
                 extra_record_args=(), start_timeout=1.0):
        self.perf = perf
        self.tracefs_root = tracefs_root
        self.requested_events = tuple(events) if events else DEFAULT_EVENTS
        self.mmap_pages = mmap_pages
        self.extra_record_args = tuple(extra_record_args)
        self.start_timeout = start_timeout
        self.events = []
        self.record = self.script = None
        self.fd = None
        self._record_err = self._script_err = None
        self.got_data = False
        self._ready_fd = None
        self.ready = False
        self._started_at = None
        self.startup_seconds = None

    def _resolve_perf(self):
        exe = which_perf(self.perf)
        if not exe:
            raise ExternalToolError("perf not found (%s); install linux-perf or use "
                                    "--tracer tracefs" % self.perf)
        return exe

    def _pick_events(self):
        try:
            root = find_tracefs(self.tracefs_root)
        except DamonUnavailableError as e:
            raise ExternalToolError("perf needs tracefs for tracepoints: %s" % e)
        avail = available_damon_events(root)
        if REQUIRED_EVENT not in avail:
            raise ExternalToolError("perf cannot trace damon:%s: the kernel has no such "
                                    "tracepoint (%s/events/damon)" % (REQUIRED_EVENT, root))
        return [ev for ev in self.requested_events if ev in avail]

    def record_command(self, exe, ready_fd=3):
        """``--synth=no``: no synthesis of every process's maps at start (slow, useless
        for tracepoints; comm then prints as ``:PID``, which the grammar accepts).
        Without ``mmap_pages``: ``--no-buffering`` (wake perf per event: data flows
        within a second; otherwise perf waits for half of its mmap buffer, which at DAMON's
        usual rates means minutes). With ``mmap_pages``: ``-m N`` and default wakeups.
        The workload is the start/stop gate (class docstring) writing to ``ready_fd``."""
        cmd = [exe, "record", "-a", "-q", "--synth=no"]
        for ev in self.events:
            cmd += ["-e", "damon:" + ev]
        if self.mmap_pages:
            cmd += ["-m", str(self.mmap_pages)]
        else:
            cmd += ["--no-buffering"]
        cmd += list(self.extra_record_args) + ["-o", "-"]
        cmd += ["--", "/bin/sh", "-c", PERF_GATE_SCRIPT.format(fd=ready_fd)]
        return cmd

    def open(self):
        import tempfile
        if self.tracefs_root is None and os.environ.get(NO_REAL_ENV):
            find_tracefs(None)   # raises: the real kernel's tracepoints are off limits here
        exe = self._resolve_perf()
        self.events = self._pick_events()
        self._record_err = tempfile.TemporaryFile()
        self._script_err = tempfile.TemporaryFile()
        ready_r, ready_w = os.pipe()
        try:
            self._started_at = time.monotonic()
            self.record = subprocess.Popen(
                self.record_command(exe, ready_w), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._record_err, pass_fds=(ready_w,),
                preexec_fn=_set_pdeathsig(signal.SIGINT))
            self.script = subprocess.Popen(
                [exe, "script", "-i", "-"], stdin=self.record.stdout, stdout=subprocess.PIPE,
                stderr=self._script_err, preexec_fn=_set_pdeathsig(signal.SIGTERM))
        except OSError as e:
            os.close(ready_r)
            self.close()
            raise ExternalToolError("cannot run %s: %s" % (exe, e))
        finally:
            os.close(ready_w)
        self._ready_fd = ready_r
        os.set_blocking(ready_r, False)
        self.record.stdout.close()
        self.fd = self.script.stdout.fileno()
        os.set_blocking(self.fd, False)
        # perf fails fast on unknown tracepoints / missing permissions
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.record.poll() is not None:
                break
            time.sleep(0.02)
        rc = self.record.poll()
        if rc not in (None, 0):
            msg = self._stderr_tail(self._record_err)
            try:
                self.close()
            except ExternalToolError:
                pass
            raise ExternalToolError("perf record failed (exit %s)%s" % (
                rc, ": " + msg if msg else ""))
        log.info("perf starting for %s", ", ".join("damon:" + e for e in self.events))
        self.check_ready()
        return self.fd

    def check_ready(self):
        """Non-blocking: True once perf has enabled its events (the gate said "R")."""
        if self.ready or self._ready_fd is None:
            return self.ready
        try:
            data = os.read(self._ready_fd, 16)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if data.startswith(b"R"):
            self.ready = True
            self.startup_seconds = time.monotonic() - self._started_at
            log.info("perf is recording %s (start-up took %.1f s)",
                     ", ".join("damon:" + e for e in self.events), self.startup_seconds)
        os.close(self._ready_fd)   # "R" or EOF: perf died before starting the gate
        self._ready_fd = None
        return self.ready

    def wait_ready(self, timeout):
        """Block up to ``timeout`` s until perf has enabled its events; returns ready."""
        deadline = time.monotonic() + timeout
        while not self.check_ready() and self._ready_fd is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([self._ready_fd], [], [], min(left, 0.5))
        return self.ready

    @staticmethod
    def _stderr_tail(f, limit=2000):
        if f is None:
            return ""
        try:
            f.seek(0)
            data = f.read()
        except (OSError, ValueError):
            return ""
        return data[-limit:].decode(errors="replace").strip()

    def disable_events(self):
        """End the recording: close the gate's stdin once perf is recording (clean exit,
        final flush); before that, SIGINT (nothing was recorded yet)."""
        if self.record is None or self.record.poll() is not None:
            return []
        self.check_ready()
        if self.record.stdin is not None and not self.record.stdin.closed:
            try:
                self.record.stdin.close()
            except OSError:
                pass
        if not self.ready:
            log.warning("perf was stopped before it started recording (start-up took more "
                        "than %.0f s): no trace data", time.monotonic() - self._started_at)
            try:
                self.record.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        return []

    def finished(self):
        """True when perf script has exited (its output is then fully drained at EOF)."""
        return self.script is None or self.script.poll() is not None

    def close(self, timeout=60.0):
        self.disable_events()
        errors = []
        for name, proc in (("record", self.record), ("script", self.script)):
            if proc is None:
                continue
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                errors.append("perf %s did not exit in %.0f s; killed" % (name, timeout))
        if self.script is not None and self.script.stdout is not None:
            self.script.stdout.close()
        self.fd = None
        script_rc = None if self.script is None else self.script.returncode
        log.info("perf record exit %s, perf script exit %s; perf record stderr: %r; perf "
                 "script stderr: %r", None if self.record is None else self.record.returncode,
                 script_rc, self._stderr_tail(self._record_err, 500),
                 self._stderr_tail(self._script_err, 500))
        if script_rc not in (None, 0) and script_rc != -signal.SIGTERM:
            script_msg = self._stderr_tail(self._script_err)
            record_msg = self._stderr_tail(self._record_err)
            if (not self.got_data and "incompatible file format" in script_msg
                    and not record_msg):
                # perf record was stopped before it wrote its header: nothing recorded
                log.warning("perf record was stopped before it produced any data")
            else:
                errors.append("perf script exited with %s: %s%s" % (
                    script_rc, script_msg,
                    ("; perf record said: " + record_msg) if record_msg else ""))
        for f in (self._record_err, self._script_err):
            if f is not None:
                f.close()
        self._record_err = self._script_err = None
        if self._ready_fd is not None:
            os.close(self._ready_fd)
            self._ready_fd = None
        self.record = self.script = None
        if errors:
            raise ExternalToolError("; ".join(errors))
