"""Stream DAMON tracepoints (tracefs ``trace_pipe`` or ``perf``) straight into an archive.

Three layers, each usable alone:

* :class:`TracefsSession` owns the kernel side of tracefs: it enables only the DAMON
  events (``damon:damon_aggregated`` plus ``damos_before_apply`` and
  ``damon_monitor_intervals_tune`` when the kernel has them), either in a private
  tracing **instance** ``instances/damo-pipe-<pid>`` (default; cannot conflict with
  other tracing users) or in the top-level buffer (``mode="toplevel"``: saves every
  file it changes, refuses when tracing is in use, restores on close). It opens
  ``trace_pipe`` non-blocking.
* :class:`PerfSession` runs ``perf record -a -e damon:… -o - | perf script -i -`` and
  exposes the text output of ``perf script`` as a non-blocking pipe.
* :class:`TraceStreamer` reads such a descriptor in large chunks, feeds the incremental
  trace parser (``damo_pipe.formats.trace_text.TraceStreamParser``), appends every
  completed snapshot to an :class:`~damo_pipe.archive.ArchiveWriter` and flushes it at a
  fixed interval, so that no intermediate text file exists and a killed recording leaves
  an archive holding everything flushed.

:class:`TracerHandle` glues a session and a streamer (``poll()`` / ``stop()``).
:func:`cleanup_stale_tracing` removes what a SIGKILLed recording left behind (used by
``damo-collect stop``).

Library code: no printing, no exiting; errors are :class:`~damo_pipe.errors.CollectError`
(tracefs), :class:`~damo_pipe.errors.DamonBusyError` (tracing in use),
:class:`~damo_pipe.errors.DamonUnavailableError` (no tracefs / no DAMON tracepoints) and
:class:`~damo_pipe.errors.ExternalToolError` (perf).
"""
from __future__ import annotations

import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import time

from damo_pipe.errors import (CollectError, DamonBusyError, DamonUnavailableError,
                              ExternalToolError)

log = logging.getLogger(__name__)

#: every DAMON event we know, in order; the first one is required.
DAMON_EVENTS = ("damon_aggregated", "damos_before_apply", "damon_monitor_intervals_tune")
REQUIRED_EVENT = "damon_aggregated"
#: enabled by default. damos_before_apply is opt-in: damo-collect's catch-all ``stat``
#: scheme makes it repeat every damon_aggregated line (twice the volume), and damo's
#: grammar files its lines under the target's record, splitting every aggregation into
#: two snapshots (seen on 6.12). When enabled, its lines go to separate records.
DEFAULT_EVENTS = ("damon_aggregated", "damon_monitor_intervals_tune")
DAMOS_EVENT = "damos_before_apply"

#: where tracefs lives (first that exists wins); the first one is where we mount it.
TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

INSTANCE_PREFIX = "damo-pipe-"

#: same switch as damo_pipe.collect.sysfs: refuse the real tracefs when set
NO_REAL_ENV = "DAMO_PIPE_NO_REAL_SYSFS"
STATE_FILE_PREFIX = "tracefs-toplevel-"

#: default directory for the crash-recovery file of top-level mode
DEFAULT_STATE_DIR = "/run/damo-pipe"

#: bytes read from the trace descriptor before the parser is fed
READ_CHUNK = 1 << 20

_LOST_RE = re.compile(rb"\[LOST (\d+) EVENTS\]")


# ----------------------------------------------------------------------------- tracefs
def _read(path):
    with open(path, "r") as f:
        return f.read()


def _write(path, value):
    """Write a tracefs control file (no O_TRUNC semantics needed, no buffering)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _first_int(text):
    """``buffer_size_kb`` reads like ``1408`` or ``7 (expanded: 1408)``: the size to restore."""
    text = text.strip()
    if "expanded:" in text:
        return int(text.split("expanded:")[1].strip(" )\n"))
    return int(text.split()[0])


def is_tracefs(path):
    return os.path.isdir(os.path.join(path, "events")) and os.path.exists(
        os.path.join(path, "trace_pipe"))


def find_tracefs(root=None, mount=True):
    """Path of a usable tracefs; ``root`` overrides discovery (fake trees in tests).

    Mounts tracefs at /sys/kernel/tracing when no candidate is usable and ``mount``.
    Refused when DAMO_PIPE_NO_REAL_SYSFS is set and no ``root`` is given (test hosts
    whose DAMON is not ours must never get their tracepoints enabled).
    """
    if root is None and os.environ.get(NO_REAL_ENV):
        raise DamonUnavailableError("the real tracefs is disabled here (%s is set); use "
                                    "--tracefs_root" % NO_REAL_ENV)
    if root is not None:
        root = os.fspath(root)
        if not is_tracefs(root):
            raise DamonUnavailableError(
                "%s is not a tracefs (no events/ directory or trace_pipe)" % root)
        return root
    for cand in TRACEFS_CANDIDATES:
        if is_tracefs(cand):
            return cand
    if mount:
        target = TRACEFS_CANDIDATES[0]
        try:
            subprocess.run(["mount", "-t", "tracefs", "nodev", target], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            raise DamonUnavailableError("tracefs is not mounted and mounting it at %s failed (%s)"
                                        % (target, getattr(e, "stderr", None) or e))
        if is_tracefs(target):
            return target
    raise DamonUnavailableError("tracefs not found (looked at %s)" % ", ".join(TRACEFS_CANDIDATES))


def available_damon_events(tracefs):
    """DAMON events this kernel has, in DAMON_EVENTS order."""
    base = os.path.join(tracefs, "events", "damon")
    return [ev for ev in DAMON_EVENTS if os.path.exists(os.path.join(base, ev, "enable"))]


def _enabled_events(tracing_dir):
    """Events currently enabled in a tracing directory (``set_event`` lines)."""
    path = os.path.join(tracing_dir, "set_event")
    try:
        text = _read(path)
    except FileNotFoundError:
        return []
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def find_pipe_readers(path, proc="/proc", exclude_pid=None):
    """PIDs of processes holding ``path`` open for reading (best effort; needs root).

    trace_pipe is a consuming reader: two readers would each get part of the events.
    """
    real = os.path.realpath(path)
    found = []
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if exclude_pid is not None and int(pid) == exclude_pid:
            continue
        fd_dir = os.path.join(proc, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) != real:
                    continue
                with open(os.path.join(proc, pid, "fdinfo", fd)) as f:
                    flags = next((int(ln.split()[1], 8) for ln in f if ln.startswith("flags:")), 0)
            except (OSError, ValueError):
                continue
            if flags & 3 in (os.O_RDONLY, os.O_RDWR):
                found.append(int(pid))
                break
    return found


def _mkdir_instance(path):
    """tracefs populates a new instance directory itself (tests emulate this)."""
    os.mkdir(path)


def _rmdir_instance(path):
    """tracefs removes a populated instance with a plain rmdir (tests emulate this)."""
    os.rmdir(path)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TracefsSession:
    """Enable the DAMON tracepoints, open ``trace_pipe``, and undo everything on close.

    mode="instance" (default): ``mkdir instances/damo-pipe-<pid>``, set its buffer size,
    enable the events there, read its ``trace_pipe``; ``close()`` disables the events and
    removes the instance. Nothing outside the instance is touched.

    mode="toplevel": refuse (DamonBusyError) when ``current_tracer`` is not ``nop``, any
    event is enabled, or some process already reads ``trace_pipe``; otherwise save
    ``tracing_on``, ``buffer_size_kb``, ``current_tracer``, ``set_event`` and every
    ``events/damon/*/enable`` (also to ``state_dir/tracefs-toplevel-<pid>.json`` so that
    :func:`cleanup_stale_tracing` can restore after a SIGKILL) and restore them on close.
    """

    def __init__(self, root=None, *, mode="instance", buffer_kb=None, events=None,
                 state_dir=None, pid=None, check_readers=True):
        if mode not in ("instance", "toplevel"):
            raise CollectError("unknown tracefs mode %r (instance or toplevel)" % mode)
        self.root = find_tracefs(root)
        self.mode = mode
        self.buffer_kb = buffer_kb
        self.pid = os.getpid() if pid is None else pid
        self.state_dir = state_dir
        self.check_readers = check_readers
        self.requested_events = tuple(events) if events else DEFAULT_EVENTS
        self.events = []
        self.dir = None            # the tracing directory we use (instance or root)
        self.fd = None
        self._saved = None         # top-level: {relative path: content}
        self._state_file = None
        self._created_instance = False
        self._enabled = []
        self._overrun0 = 0

    @property
    def instance_path(self):
        return os.path.join(self.root, "instances", INSTANCE_PREFIX + str(self.pid))

    @property
    def trace_pipe(self):
        return os.path.join(self.dir, "trace_pipe")

    def open(self):
        """Set tracing up and return the non-blocking ``trace_pipe`` descriptor."""
        avail = available_damon_events(self.root)
        if REQUIRED_EVENT not in avail:
            raise DamonUnavailableError(
                "the kernel has no damon:%s tracepoint (%s/events/damon/%s missing)"
                % (REQUIRED_EVENT, self.root, REQUIRED_EVENT))
        self.events = [ev for ev in self.requested_events if ev in avail]
        try:
            if self.mode == "instance":
                self._setup_instance()
            else:
                self._setup_toplevel()
            self.fd = os.open(self.trace_pipe, os.O_RDONLY | os.O_NONBLOCK)
        except PermissionError as e:
            self.close()
            raise CollectError("cannot set tracefs up (%s); tracing needs root" % e)
        except OSError as e:
            self.close()
            raise CollectError("cannot set tracefs up: %s" % e)
        except BaseException:
            self.close()
            raise
        self._overrun0 = self.overrun()
        log.info("tracing %s in %s", ", ".join("damon:" + e for e in self.events), self.dir)
        return self.fd

    def overrun(self):
        """Events the ring buffer overwrote (sum of per_cpu/cpu*/stats ``overrun``)."""
        total = 0
        base = os.path.join(self.dir or self.root, "per_cpu")
        try:
            cpus = os.listdir(base)
        except OSError:
            return 0
        for cpu in cpus:
            try:
                with open(os.path.join(base, cpu, "stats")) as f:
                    for ln in f:
                        if ln.startswith("overrun:"):
                            total += int(ln.split()[1])
            except (OSError, ValueError, IndexError):
                continue
        return total

    def lost_events(self):
        """Events overwritten in the buffer since open() (call before close())."""
        if self.dir is None:
            return 0
        return max(0, self.overrun() - self._overrun0)

    def _event_enable_path(self, ev):
        return os.path.join(self.dir, "events", "damon", ev, "enable")

    def _enable_events(self):
        for ev in self.events:
            _write(self._event_enable_path(ev), "1")
            self._enabled.append(ev)

    def _setup_instance(self):
        inst = self.instance_path
        if os.path.exists(inst):
            raise DamonBusyError("tracing instance %s already exists (a stale one? run "
                                 "`damo-collect stop` to remove it)" % inst)
        _mkdir_instance(inst)
        self._created_instance = True
        self.dir = inst
        if not os.path.exists(os.path.join(inst, "events", "damon", REQUIRED_EVENT, "enable")):
            raise DamonUnavailableError("tracing instance %s has no damon events" % inst)
        if self.buffer_kb:
            _write(os.path.join(inst, "buffer_size_kb"), int(self.buffer_kb))
        self._enable_events()
        on = os.path.join(inst, "tracing_on")
        if os.path.exists(on) and _read(on).strip() != "1":
            _write(on, "1")

    def _saved_files(self):
        files = ["tracing_on", "buffer_size_kb", "current_tracer", "set_event"]
        files += [os.path.join("events", "damon", ev, "enable")
                  for ev in available_damon_events(self.root)]
        return files

    def _setup_toplevel(self):
        root = self.root
        self.dir = root
        tracer = _read(os.path.join(root, "current_tracer")).strip()
        if tracer and tracer != "nop":
            raise DamonBusyError("tracefs is in use: current_tracer is %r (use the default "
                                 "--tracefs_mode instance to trace beside it)" % tracer)
        enabled = _enabled_events(root)
        if enabled:
            raise DamonBusyError("tracefs is in use: events already enabled: %s (use "
                                 "--tracefs_mode instance to trace beside them)"
                                 % ", ".join(enabled[:5]))
        if self.check_readers:
            readers = find_pipe_readers(os.path.join(root, "trace_pipe"), exclude_pid=os.getpid())
            if readers:
                raise DamonBusyError("tracefs is in use: trace_pipe is being read by pid %s"
                                     % ", ".join(map(str, readers)))
        saved = {}
        for rel in self._saved_files():
            path = os.path.join(root, rel)
            if os.path.exists(path):
                saved[rel] = _read(path)
        self._saved = saved
        self._write_state_file()
        if self.buffer_kb:
            _write(os.path.join(root, "buffer_size_kb"), int(self.buffer_kb))
        self._enable_events()
        if saved.get("tracing_on", "1").strip() != "1":
            _write(os.path.join(root, "tracing_on"), "1")

    def _write_state_file(self):
        d = self.state_dir or DEFAULT_STATE_DIR
        try:
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, "%s%d.json" % (STATE_FILE_PREFIX, self.pid))
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"pid": self.pid, "tracefs": self.root, "saved": self._saved}, f)
            os.replace(tmp, path)
            self._state_file = path
        except OSError as e:
            log.warning("cannot save tracefs state for crash recovery in %s: %s", d, e)

    def disable_events(self):
        """Stop the kernel producing events (the buffer can still be drained)."""
        errors = []
        for ev in reversed(self._enabled):
            try:
                _write(self._event_enable_path(ev), "0")
            except OSError as e:
                errors.append("%s: %s" % (ev, e))
        self._enabled = []
        return errors

    def close(self):
        """Undo everything open() did; safe to call more than once and after a failed open."""
        errors = self.disable_events()
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        if self.mode == "instance" and self._created_instance:
            try:
                _rmdir_instance(self.instance_path)
                self._created_instance = False
            except OSError as e:
                errors.append("rmdir %s: %s" % (self.instance_path, e))
        if self._saved is not None:
            errors += restore_toplevel(self.root, self._saved)
            self._saved = None
            if self._state_file and not errors:
                try:
                    os.unlink(self._state_file)
                except OSError:
                    pass
        if errors:
            raise CollectError("could not fully restore tracefs: %s" % "; ".join(errors))


def restore_toplevel(root, saved):
    """Write saved top-level tracefs values back; return a list of error strings."""
    errors = []
    order = sorted(saved, key=lambda rel: (rel == "tracing_on", rel))  # tracing_on last
    for rel in order:
        text = saved[rel]
        path = os.path.join(root, rel)
        try:
            current = _read(path)
            if rel == "set_event":
                continue  # restored through the individual enable files
            if rel == "buffer_size_kb":
                want = _first_int(text)
                if _first_int(current) != want:
                    _write(path, want)
            elif current.strip() != text.strip():
                _write(path, text.strip())
        except (OSError, ValueError, IndexError) as e:
            errors.append("%s: %s" % (rel, e))
    return errors


def cleanup_stale_tracing(tracefs_root=None, state_dir=None):
    """Undo what SIGKILLed recordings left in tracefs; return one message per action.

    * instances ``damo-pipe-<pid>`` whose pid is gone: events disabled, instance removed;
    * top-level mode state files whose pid is gone: the saved values are written back.
    Never touches anything that belongs to a live process.
    """
    msgs = []
    try:
        root = find_tracefs(tracefs_root, mount=False)
    except DamonUnavailableError:
        return msgs
    inst_dir = os.path.join(root, "instances")
    try:
        names = sorted(os.listdir(inst_dir))
    except OSError:
        names = []
    for name in names:
        if not name.startswith(INSTANCE_PREFIX):
            continue
        try:
            pid = int(name[len(INSTANCE_PREFIX):])
        except ValueError:
            continue
        path = os.path.join(inst_dir, name)
        if _pid_alive(pid):
            msgs.append("kept tracing instance %s: pid %d is alive" % (path, pid))
            continue
        for ev in DAMON_EVENTS:
            en = os.path.join(path, "events", "damon", ev, "enable")
            if os.path.exists(en):
                try:
                    _write(en, "0")
                except OSError:
                    pass
        try:
            _rmdir_instance(path)
            msgs.append("removed stale tracing instance %s" % path)
        except OSError as e:
            msgs.append("could not remove stale tracing instance %s: %s" % (path, e))
    d = state_dir or DEFAULT_STATE_DIR
    try:
        files = sorted(f for f in os.listdir(d) if f.startswith(STATE_FILE_PREFIX)
                       and f.endswith(".json"))
    except OSError:
        files = []
    for fname in files:
        path = os.path.join(d, fname)
        try:
            with open(path) as f:
                state = json.load(f)
            pid = int(state["pid"])
        except (OSError, ValueError, KeyError):
            continue
        if _pid_alive(pid) and pid != os.getpid():
            msgs.append("kept top-level tracefs state of live pid %d" % pid)
            continue
        if os.path.realpath(state.get("tracefs", "")) != os.path.realpath(root):
            continue
        errors = restore_toplevel(root, state["saved"])
        if errors:
            msgs.append("restoring top-level tracefs state of pid %d: %s" % (pid, "; ".join(errors)))
        else:
            os.unlink(path)
            msgs.append("restored top-level tracefs state left by pid %d" % pid)
    return msgs


# ----------------------------------------------------------------------------- perf
def _set_pdeathsig(sig):
    """preexec_fn: have the child get ``sig`` when we die (Linux prctl PR_SET_PDEATHSIG)."""
    def fn():
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(sig), 0, 0, 0)
        except Exception:  # best effort
            pass
    return fn


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
        exe = self.perf if os.sep in self.perf else shutil.which(self.perf)
        if not exe or not os.access(exe, os.X_OK):
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


# ----------------------------------------------------------------------------- streaming
def default_parser_factory():
    from damo_pipe.formats.trace_text import TraceStreamParser
    return TraceStreamParser()


class TraceStreamer:
    """Feed trace text to the incremental parser and append completed snapshots.

    ``record_keys`` maps target ids (the trace's ``target_id=``; ``target_idx=`` for
    damos_before_apply) to archive record indexes. A chunk of a target not in it gets a
    new archive record (possible unless the writer already started SWMR appends; its
    regions are then dropped and counted in ``dropped_regions``). The parser's own keys
    (record indexes in order of first appearance) are only cached.

    The exact first start of every record (damo's mean-span deduction, FORMATS.md §0) is
    stored with ``set_first_start`` by :meth:`finish`.
    """

    def __init__(self, writer, record_keys=None, *, parser=None, flush_interval=1.0,
                 clock=time.monotonic, damos_parser=None):
        self.writer = writer
        #: a second parser for damos_before_apply lines (None: they are not enabled);
        #: their chunks go to records keyed ("damos_before_apply", target_idx)
        self.damos_parser = damos_parser
        self._line_tail = b""
        self.record_keys = dict(record_keys or {})
        self._by_parser_key = {}
        self.parser = parser if parser is not None else default_parser_factory()
        self.flush_interval = flush_interval
        self.clock = clock
        self._last_flush = clock()
        self._ends = {}     # record idx -> [first_end, last_end, nr_snapshots]
        self.bytes_in = 0
        self.regions_out = 0
        self.snapshots_out = 0
        self.dropped_regions = 0
        self.dirty = False
        self.finished = False
        self.flushes = 0
        self.flushed_snapshots = 0
        self.lost_events = 0       # from trace_pipe "CPU:N [LOST M EVENTS]" lines
        self._lost_tail = b""

    def _record_idx(self, key, chunk, source=None):
        idx = self._by_parser_key.get((source, key))
        if idx is not None:
            return idx
        tid = getattr(chunk, "target_id", None)
        if source is not None:
            tid = (source, tid)
        idx = self.record_keys.get(tid)
        if idx is None:
            try:
                idx = self.writer.add_record(chunk.meta())
            except Exception as e:  # SWMR writers refuse late records
                log.warning("dropping trace data of target %r: %s", tid, e)
                idx = -1
            else:
                log.info("trace target %r not announced; added archive record %d", tid, idx)
            self.record_keys[tid] = idx
        self._by_parser_key[(source, key)] = idx
        return idx

    def _append(self, items, source=None):
        n = 0
        for key, chunk in items:
            if not chunk.nr_snapshots:
                continue
            idx = self._record_idx(key, chunk, source)
            if idx < 0:
                self.dropped_regions += chunk.nr_regions
                continue
            self.writer.append(idx, chunk)
            ends = chunk.snapshots.end_ns
            e = self._ends.get(idx)
            if e is None:
                self._ends[idx] = [int(ends[0]), int(ends[-1]), len(ends)]
            else:
                e[1] = int(ends[-1])
                e[2] += len(ends)
            n += chunk.nr_regions
            self.snapshots_out += chunk.nr_snapshots
            self.dirty = True
        self.regions_out += n
        return n

    def feed(self, data):
        """Parse ``data`` (bytes); append completed snapshots; return regions appended."""
        if not data:
            return 0
        self.bytes_in += len(data)
        if b"LOST" in data or b"LOST" in self._lost_tail + data[:8]:
            self._count_lost(data)
        self._lost_tail = data[-32:]
        if self.damos_parser is not None:
            return self._feed_split(data)
        return self._append(self.parser.feed(data))

    def _feed_split(self, data, final=False):
        """Route damos_before_apply lines to their own parser (their own records)."""
        buf = self._line_tail + data
        cut = len(buf) if final else buf.rfind(b"\n") + 1
        self._line_tail = buf[cut:]
        body = buf[:cut]
        if DAMOS_EVENT.encode() not in body:
            return self._append(self.parser.feed(body)) if body else 0
        lines = body.splitlines(keepends=True)
        tag = DAMOS_EVENT.encode() + b":"
        main = b"".join(ln for ln in lines if tag not in ln)
        damos = b"".join(ln for ln in lines if tag in ln)
        n = self._append(self.parser.feed(main)) if main else 0
        return n + self._append(self.damos_parser.feed(damos), DAMOS_EVENT)

    def _count_lost(self, data):
        tail = self._lost_tail
        buf = tail + data
        for m in _LOST_RE.finditer(buf):
            if m.end() > len(tail):
                self.lost_events += int(m.group(1))
        if self.lost_events:
            log.warning("the kernel dropped %d trace events so far (trace buffer too small "
                        "or reader too slow; try a larger --trace_buffer_kb)", self.lost_events)

    def maybe_flush(self, force=False):
        """Flush the writer when ``flush_interval`` passed (None: only when forced,
        for callers that flush the shared writer themselves)."""
        now = self.clock()
        if self.flush_interval is None and not force:
            return False
        if self.dirty and (force or now - self._last_flush >= self.flush_interval):
            self._flush()
            self._last_flush = now
            return True
        return False

    def first_starts(self):
        """record idx -> deduced exact first start (records with >= 2 snapshots)."""
        out = {}
        for idx, (first, last, n) in self._ends.items():
            if n >= 2:
                out[idx] = first - float(last - first) / (n - 1)
        return out

    def finish(self):
        """Parse what remains buffered, append it, store first starts and flush."""
        if self.finished:
            return 0
        self.finished = True
        n = 0
        if self.damos_parser is not None:
            n += self._feed_split(b"", final=True)
            n += self._append(self.damos_parser.finish() or [], DAMOS_EVENT)
        n += self._append(self.parser.finish() or [])
        for idx, value in self.first_starts().items():
            self.writer.set_first_start(idx, value)
        self._flush()
        return n

    def _flush(self):
        self.writer.flush()
        self.dirty = False
        self.flushes += 1
        self.flushed_snapshots = self.snapshots_out


def read_available(fd, buf, limit=READ_CHUNK * 8):
    """Read what ``fd`` (non-blocking) has now, up to ``limit`` bytes.

    Returns (data, eof). tracefs' trace_pipe returns at most a page per read(); pipes
    up to 64 KiB, so we loop until EAGAIN or the limit.
    """
    parts = []
    total = 0
    eof = False
    view = memoryview(buf)
    while total < limit:
        try:
            n = os.readv(fd, [view])
        except BlockingIOError:
            break
        except InterruptedError:
            continue
        if n == 0:
            eof = True
            break
        parts.append(bytes(view[:n]))
        total += n
    return b"".join(parts), eof


class TracerHandle:
    """A running tracer: ``poll()`` it from the record loop, ``stop()`` it once at the end.

    ``source`` is a :class:`TracefsSession` or :class:`PerfSession` already opened
    (``source.fd`` readable, non-blocking).
    """

    kind = "trace"

    def __init__(self, source, streamer, *, kind=None, on_stop=None):
        self.source = source
        self.streamer = streamer
        if kind:
            self.kind = kind
        self._buf = bytearray(READ_CHUNK)
        self._eof = False
        self.stopped = False
        self._on_stop = on_stop
        self.overrun_events = 0

    def fileno(self):
        """Descriptor to wait on with select/poll (None once stopped)."""
        return None if self.stopped else self.source.fd

    def poll(self):
        """Read everything available now, append completed snapshots, flush when due.

        Never blocks. Returns the number of regions appended.
        """
        if self.stopped or self._eof or self.source.fd is None:
            return 0
        n = 0
        if isinstance(self.source, PerfSession):
            self.source.check_ready()
        data, eof = read_available(self.source.fd, self._buf)
        if data:
            self.source.got_data = True
            n = self.streamer.feed(data)
        if eof and isinstance(self.source, PerfSession):
            # perf script's stdout closed while we did not stop it: perf died
            self._eof = True
            src = self.source
            rc = src.record.poll() if src.record else None
            msgs = [m for m in (src._stderr_tail(src._record_err),
                                src._stderr_tail(src._script_err)) if m]
            raise ExternalToolError("perf ended unexpectedly (perf record exit %s)%s"
                                    % (rc, ": " + "; ".join(msgs) if msgs else ""))
        self.streamer.maybe_flush()
        return n

    def wait(self, timeout):
        """Block up to ``timeout`` s until trace data is readable (for simple loops)."""
        fd = self.fileno()
        if fd is None or self._eof:
            time.sleep(timeout)
            return False
        r, _, _ = select.select([fd], [], [], timeout)
        return bool(r)

    def _drain(self, timeout):
        """After the producer stopped: read until the source is empty / at EOF."""
        deadline = time.monotonic() + timeout
        fd = self.source.fd
        if fd is None:
            return
        perf = isinstance(self.source, PerfSession)
        idle_rounds = 0
        while time.monotonic() < deadline and not self._eof:
            data, eof = read_available(fd, self._buf)
            if data:
                self.source.got_data = True
                self.streamer.feed(data)
                idle_rounds = 0
            if eof:
                self._eof = True
                break
            if not data:
                if not perf:
                    # trace_pipe: events are disabled, so an empty read means drained;
                    # one extra short wait catches per-CPU buffers not yet woken.
                    idle_rounds += 1
                    if idle_rounds >= 2:
                        break
                select.select([fd], [], [], 0.05 if not perf else 0.2)

    def stop(self, drain_timeout=60.0):
        """Stop the producer, drain, finish the parser, flush, and undo tracing setup.

        Idempotent. Raises the first error after still having restored tracefs / reaped
        perf. Returns a summary dict.
        """
        if self.stopped:
            return self.summary()
        self.stopped = True
        first_error = None
        try:
            self.source.disable_events()
            self._drain(drain_timeout)
            if hasattr(self.source, "lost_events"):
                self.overrun_events = self.source.lost_events()
            self.streamer.finish()
        except BaseException as e:  # still restore below
            first_error = e
        try:
            self.source.close()
        except BaseException as e:
            if first_error is None:
                first_error = e
        if self._on_stop is not None:
            self._on_stop()
        if first_error is not None:
            raise first_error
        return self.summary()

    def summary(self):
        s = self.streamer
        return {"tracer": self.kind, "bytes": s.bytes_in, "snapshots": s.snapshots_out,
                "regions": s.regions_out, "dropped_regions": s.dropped_regions,
                "lost_events": max(s.lost_events, self.overrun_events)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class NullTracerHandle:
    """``--tracer none``: same interface, does nothing."""

    kind = "none"
    stopped = False

    def fileno(self):
        return None

    def poll(self):
        return 0

    def wait(self, timeout):
        time.sleep(timeout)
        return False

    def stop(self, drain_timeout=None):
        self.stopped = True
        return {"tracer": "none"}

    def summary(self):
        return {"tracer": "none"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _events_for(events, damos):
    events = tuple(events) if events else DEFAULT_EVENTS
    if damos and DAMOS_EVENT not in events:
        events = events + (DAMOS_EVENT,)
    return events


def _make_streamer(writer, record_keys, parser, flush_interval, events, damos_parser):
    if DAMOS_EVENT in events and damos_parser is None:
        damos_parser = default_parser_factory()
    return TraceStreamer(writer, record_keys, parser=parser, flush_interval=flush_interval,
                         damos_parser=damos_parser if DAMOS_EVENT in events else None)


def open_tracefs_tracer(writer, record_keys=None, *, tracefs_root=None, mode="instance",
                        buffer_kb=None, events=None, state_dir=None, flush_interval=1.0,
                        parser=None, session_cls=TracefsSession, damos=False,
                        damos_parser=None):
    """Open a tracefs session and return a running :class:`TracerHandle`.

    ``damos=True`` also enables damos_before_apply (own records, see TraceStreamer).
    """
    events = _events_for(events, damos)
    streamer = _make_streamer(writer, record_keys, parser, flush_interval, events, damos_parser)
    session = session_cls(tracefs_root, mode=mode, buffer_kb=buffer_kb, events=events,
                          state_dir=state_dir)
    session.open()
    return TracerHandle(session, streamer, kind="tracefs")


def open_perf_tracer(writer, record_keys=None, *, perf="perf", tracefs_root=None, events=None,
                     mmap_pages=None, flush_interval=1.0, parser=None, damos=False,
                     damos_parser=None):
    """Start perf record | perf script and return a running :class:`TracerHandle`."""
    events = _events_for(events, damos)
    streamer = _make_streamer(writer, record_keys, parser, flush_interval, events, damos_parser)
    session = PerfSession(perf, tracefs_root=tracefs_root, events=events, mmap_pages=mmap_pages)
    session.open()
    return TracerHandle(session, streamer, kind="perf")
