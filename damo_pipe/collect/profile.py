"""The CPU profile recorded beside the snapshots: ``perf record``, stored in the archive.

:class:`ProfileRecorder` is the side recorder behind ``damo-collect record --do_record
cpu_profile`` (on by default where perf exists, as with damo). One ``perf record`` runs
for the whole recording:

* system-wide (``-a``, what damo records) or of the target processes (``-p PIDS``);
* ``-k CLOCK_REALTIME``: sample times on the wall clock, the clock of the sysfs
  snapshots, so that a time window of the access record is the same window of the
  profile (``report profile``'s ``perf report --time``, the hotspots of a window);
* ``--switch-output=signal -o <archive>.profile``: perf writes into
  ``<archive>.profile`` and, on SIGUSR2 (an archive rotation, a ``monitor`` round)
  or SIGINT (the end), finishes that part as ``<archive>.profile.<YYYYmmddHHMMSScc>``
  and says so on stderr (``[ perf record: Dump <file> ]``);
* system-wide, perf's workload is a gate (as the tracer's,
  :data:`~damo_pipe.collect.tracing.perf.PERF_GATE_SCRIPT`) that tells when perf
  records (its start-up takes well under a second on hardware, 20-60 s in a TCG VM);
* its own session (a Ctrl-C at the terminal reaches only us), SIGINT when we die
  (PDEATHSIG: perf then still finishes its file).

Each part goes into the archive file it belongs to: ``close(writer)`` switches (or, at
the end, takes the part SIGINT produced), parses it
(:func:`damo_pipe.formats.perf_samples.read_perf_samples`) and hands bytes and samples
to ``writer.set_profile``, which stores them while the file closes (in its compaction
copy); ``closed(path)`` then deletes the part. A part perf could not parse is stored
without samples (``samples_error``). Whatever is left after a crash has the archive's
name: ``<archive>.profile`` (perf killed too) or ``<archive>.profile.<timestamp>``
(perf finished it) — both readable by ``perf report -i`` and by ``damo-analyze report
holistic|profile --profile``.

perf missing or failing never fails the recording: a warning, and no profile.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import subprocess
import tempfile
import time
from typing import List, Optional

from damo_pipe.collect.side_recorders import SideRecorder
from damo_pipe.collect.signals import parent_death_signal

log = logging.getLogger(__name__)

SCOPES = ("system", "targets")
#: perf record's clock: the sysfs snapshots' wall clock (time.time_ns())
PROFILE_CLOCK = "CLOCK_REALTIME"
#: damo's --do_record words; damo-collect records the first three
DO_RECORD_CHOICES = ("access", "cpu_profile", "mem_footprint", "vmas", "proc_stats",
                     "damon_trace_events")
DO_RECORD_DEFAULT = ("access", "cpu_profile", "mem_footprint")

#: perf's stderr line for every finished part of a --switch-output recording
_DUMP_RE = re.compile(r"\[ perf record: Dump (.+) \]\s*$")
#: perf's workload when system-wide: "R" on fd {fd} once perf records, then wait for EOF
_GATE = "printf R >/proc/self/fd/{fd}; exec cat >/dev/null"
_SIGUSR2_MASK = 1 << (signal.SIGUSR2 - 1)


@dataclasses.dataclass
class ProfileOptions:
    """How to record the CPU profile (``perf record``)."""

    perf: Optional[str] = None          # --perf_path; None: perf on PATH (or /usr/bin/perf)
    scope: str = "system"               # system (-a, as damo) or targets (-p PIDS)
    clock: str = PROFILE_CLOCK          # perf record -k
    event: Optional[str] = None         # -e (None: perf's default, cycles or cpu-clock)
    freq: Optional[int] = None          # -F (None: perf's default, 4000 Hz)
    samples: bool = True                # parse each part into the sample table (perf script)
    switch_timeout: float = 120.0       # for perf to finish a part after SIGUSR2
    stop_timeout: float = 120.0         # for perf to finish after SIGINT

    def __post_init__(self):
        if self.scope not in SCOPES:
            from damo_pipe.errors import UsageError
            raise UsageError("unknown CPU profile scope %r (choose from %s)"
                             % (self.scope, ", ".join(SCOPES)))


def profile_options_for(do_record, perf_path=None, **kwargs):
    """ProfileOptions when ``cpu_profile`` is among ``do_record`` and perf exists; None
    otherwise (with a warning when it was asked for and perf is missing, as damo drops
    it then)."""
    if "cpu_profile" not in do_record:
        return None
    from damo_pipe.perf_tool import which_perf
    if which_perf(perf_path) is None:
        log.warning("perf not found%s: recording without cpu_profile (install perf, "
                    "Debian: linux-perf, or give --perf_path)",
                    "" if perf_path is None else " (--perf_path %s)" % perf_path)
        return None
    return ProfileOptions(perf=perf_path, **kwargs)


def check_do_record(do_record):
    """UsageError for --do_record words damo-collect cannot honour; a warning for the
    ones it ignores (damo's vmas and proc_stats)."""
    from damo_pipe.errors import UsageError
    if "access" not in do_record:
        raise UsageError("--do_record must include access: damo-collect records the "
                         "access pattern and adds the others beside it")
    if "damon_trace_events" in do_record:
        raise UsageError("--do_record damon_trace_events: use --tracer perf|tracefs")
    ignored = [w for w in do_record if w in ("vmas", "proc_stats")]
    if ignored:
        log.warning("--do_record %s: not recorded by damo-collect (ignored)", " ".join(ignored))


def perf_dump_paths(stderr_text):
    """The files a ``--switch-output`` perf record finished, in order (its stderr)."""
    out = []
    for line in stderr_text.splitlines():
        m = _DUMP_RE.search(line)
        if m:
            out.append(m.group(1))
    return out


def catches_sigusr2(pid, proc_root="/proc"):
    """True when process ``pid`` has a SIGUSR2 handler (perf installs it early; before
    that SIGUSR2 would kill it)."""
    try:
        with open(os.path.join(proc_root, str(pid), "status")) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & _SIGUSR2_MASK)
    except (OSError, ValueError, IndexError):
        pass
    return False


class ProfileRecorder(SideRecorder):
    """``perf record`` beside the snapshots, one profile per archive file (module doc).

    ``reader(perf_data, perf=...)`` parses a finished part into ProfileSamples (default
    :func:`~damo_pipe.formats.perf_samples.read_perf_samples`); tests give stubs.
    """

    name = "cpu_profile"

    def __init__(self, options: Optional[ProfileOptions] = None, *, reader=None,
                 proc_root="/proc"):
        self.options = options or ProfileOptions()
        self.reader = reader
        self.proc_root = proc_root
        self.proc = None
        self.base = None           # perf's output: <first archive>.profile
        self.command = None
        self._pids: List[int] = []
        self._err = None           # perf's stderr (a temporary file)
        self._stderr_final = ""    # ... as text once perf has exited
        self._ready_fd = None
        self._recording = False    # the gate said perf records (system-wide)
        self._started_at = None
        self._stopping = False
        self._exited_early = False
        self._nr_dumps_seen = 0
        self._to_delete = {}       # archive path -> the part stored in it
        self.summary = {"perf_command": None, "startup_seconds": None, "perf_exit": None,
                        "files": [], "left": []}

    # -- hooks --------------------------------------------------------------------------
    def open(self, writer, session):
        if self.base is None:
            self.base = os.path.abspath(writer.path) + ".profile"
        self._pids = list(session.spec.pids) if session.spec.ops != "paddr" else []

    def start(self, writer):
        from damo_pipe.perf_tool import find_perf
        opts = self.options
        try:
            exe = find_perf(opts.perf, "to record the CPU profile")
        except Exception as e:  # noqa: BLE001 - ExternalToolError: no profile, go on
            log.warning("%s: recording without cpu_profile", e)
            self._exited_early = True
            return
        if opts.scope == "targets" and not self._pids:
            log.warning("no target process to profile: recording without cpu_profile")
            self._exited_early = True
            return
        ready_r = ready_w = None
        if opts.scope == "system":
            ready_r, ready_w = os.pipe()
        self.command = self.record_command(exe, ready_w)
        self.summary["perf_command"] = " ".join(self.command)
        self._err = tempfile.TemporaryFile(prefix="damo-collect-perf-")
        self._started_at = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.PIPE if ready_w is not None else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=self._err,
                pass_fds=() if ready_w is None else (ready_w,), start_new_session=True,
                preexec_fn=parent_death_signal(signal.SIGINT))
        except OSError as e:
            log.warning("cannot run %s (%s): recording without cpu_profile", exe,
                        e.strerror or e)
            self._exited_early = True
            if ready_r is not None:
                os.close(ready_r)
            return
        finally:
            if ready_w is not None:
                os.close(ready_w)
        if ready_r is not None:
            os.set_blocking(ready_r, False)
            self._ready_fd = ready_r
        log.info("perf record started (%s)", self.summary["perf_command"])

    def record_command(self, exe, ready_fd=None):
        """perf record's argv (``ready_fd``: the gate's fd, system-wide)."""
        o = self.options
        cmd = [exe, "record"]
        cmd += ["-a"] if o.scope == "system" else ["-p", ",".join(map(str, self._pids))]
        cmd += ["-k", o.clock, "--switch-output=signal", "-o", self.base]
        if o.event:
            cmd += ["-e", o.event]
        if o.freq:
            cmd += ["-F", str(int(o.freq))]
        if o.scope == "system":
            cmd += ["--", "/bin/sh", "-c", _GATE.format(fd=ready_fd)]
        return cmd

    def ready(self):
        """True once perf records (system-wide: the gate said so; of targets: perf
        handles SIGUSR2), or when there is no perf to wait for."""
        if self.proc is None or self.proc.poll() is not None:
            return True
        if self._ready_fd is not None:
            self._check_gate()
            return self._recording
        return catches_sigusr2(self.proc.pid, self.proc_root)

    def _check_gate(self):
        if self._ready_fd is None:
            return
        try:
            data = os.read(self._ready_fd, 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data.startswith(b"R"):
            self._recording = True
            self.summary["startup_seconds"] = round(time.monotonic() - self._started_at, 3)
            log.info("perf is recording the CPU profile (start-up took %.1f s)",
                     self.summary["startup_seconds"])
        os.close(self._ready_fd)   # "R", or EOF: perf ended before starting the gate
        self._ready_fd = None

    def poll(self):
        if self.proc is None or self._stopping or self._exited_early:
            return
        self._check_gate()
        rc = self.proc.poll()
        if rc is not None:
            self._exited_early = True
            self.summary["perf_exit"] = rc
            if self.options.scope == "targets" and not any(
                    os.path.exists(os.path.join(self.proc_root, str(p))) for p in self._pids):
                log.info("perf record ended with its target processes (exit %s)", rc)
            else:
                log.warning("perf record ended early (exit %s)%s; the CPU profile ends there",
                            rc, self._stderr_note())

    def close(self, writer):
        if self.proc is not None and not self._stopping and self.proc.poll() is None:
            self._switch()
        dumps = self._new_dumps()
        if not dumps:
            if self.proc is not None:
                log.info("no CPU profile for %s (perf was not recording)", writer.path)
            return
        for old in dumps[:-1]:
            self._leave(old, "a part perf finished late")
        self._store(writer, dumps[-1])

    def closed(self, path):
        part = self._to_delete.pop(os.fspath(path), None)
        if part is not None:
            try:
                os.unlink(part)
            except OSError as e:
                log.warning("cannot remove %s (stored in %s): %s", part, path, e)

    def stop(self):
        """SIGINT perf (as damo stops it) and wait until it has finished its last part."""
        if self._stopping:
            return self.summary
        self._stopping = True
        p = self.proc
        if p is not None:
            if p.poll() is None:
                self._check_gate()
                try:
                    p.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
                self._wait(p, self.options.stop_timeout)
            if p.stdin is not None:
                try:
                    p.stdin.close()
                except OSError:
                    pass
            if self.summary["perf_exit"] is None:
                self.summary["perf_exit"] = p.returncode
            log.info("perf record exit %s%s", p.returncode, self._stderr_note())
            self._keep_stderr()
            if os.path.exists(self.base):
                # perf ended without finishing its current part (it died or was killed)
                self._leave(self.base, "perf did not finish it")
        if self._ready_fd is not None:
            os.close(self._ready_fd)
            self._ready_fd = None
        return self.summary

    # -- internals ----------------------------------------------------------------------
    def _wait(self, p, timeout):
        try:
            p.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            log.warning("perf record did not end %.0f s after SIGINT: killing it", timeout)
        p.kill()
        p.wait()

    def _switch(self):
        """SIGUSR2: perf finishes the current part; wait until it says so."""
        p = self.proc
        if not self.ready():
            return   # not recording yet (a SIGUSR2 now could even kill perf)
        before = len(perf_dump_paths(self._stderr_text()))
        try:
            p.send_signal(signal.SIGUSR2)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + self.options.switch_timeout
        while len(perf_dump_paths(self._stderr_text())) <= before:
            if p.poll() is not None:
                return
            if time.monotonic() > deadline:
                log.warning("perf did not finish its profile part within %.0f s",
                            self.options.switch_timeout)
                return
            time.sleep(0.02)

    def _new_dumps(self):
        dumps = perf_dump_paths(self._stderr_text())
        new = dumps[self._nr_dumps_seen:]
        self._nr_dumps_seen = len(dumps)
        return [d if os.path.isabs(d) else os.path.abspath(d) for d in new]

    def _store(self, writer, part):
        """Parse ``part`` and have the writer store it while the archive closes."""
        try:
            empty = os.path.getsize(part) == 0
        except OSError as e:
            log.warning("the CPU profile part %s is gone (%s)", part, e)
            return
        if empty:    # perf wrote nothing (stopped while starting up)
            log.info("no CPU profile for %s (perf wrote an empty part)", writer.path)
            os.unlink(part)
            return
        clock = self.options.clock
        attrs = {"perf_clock": clock[len("CLOCK_"):].lower() if clock.startswith("CLOCK_")
                 else clock, "time_offset_ns": 0, "source": "damo-collect",
                 "scope": self.options.scope, "perf_command": self.summary["perf_command"] or "",
                 "part_name": os.path.basename(part)}
        samples = None
        try:
            if self.options.samples:
                samples = self._read(part)
        except Exception as e:  # noqa: BLE001 - keep the bytes, say why there are no samples
            attrs["samples_error"] = str(e)
            log.warning("the CPU profile part %s could not be parsed (%s); storing it "
                        "without its sample table", part, e)
        if samples is not None and not len(samples):
            samples = None          # perf recorded nothing in this part: the bytes only
            attrs["nr_samples"] = 0
        try:
            writer.set_profile(part, samples, attrs)
        except Exception as e:  # noqa: BLE001 - the access record matters more
            self._leave(part, "not stored: %s" % e)
            return
        self._to_delete[os.fspath(writer.path)] = part
        self.summary["files"].append({"archive": os.fspath(writer.path), "perf_data": part,
                                      "nr_samples": None if samples is None else len(samples)})
        log.info("CPU profile of %s: %s", writer.path, "%d samples" % len(samples)
                 if samples is not None else "the perf.data only (no sample table)")

    def _read(self, part):
        if self.reader is not None:
            return self.reader(part, perf=self.options.perf or "perf")
        from damo_pipe.formats.perf_samples import read_perf_samples
        from damo_pipe.perf_tool import find_perf
        return read_perf_samples(part, perf=find_perf(self.options.perf))

    def _leave(self, path, why):
        self.summary["left"].append(path)
        log.warning("CPU profile left in %s (%s); `perf report -i %s` reads it", path, why,
                    path)

    def _keep_stderr(self):
        """perf has exited: keep its stderr as text, drop the temporary file."""
        if self._err is not None:
            text = self._stderr_text()
            self._err.close()
            self._err = None
            self._stderr_final = text

    def _stderr_text(self):
        if self._err is None:
            return self._stderr_final
        try:
            self._err.seek(0)
            return self._err.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def _stderr_note(self):
        lines = [ln for ln in self._stderr_text().splitlines()
                 if ln.strip() and not _DUMP_RE.search(ln) and "perf record: " not in ln]
        tail = " ".join(" ".join(lines).split())[-400:]
        return (": " + tail) if tail else ""
