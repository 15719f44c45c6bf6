"""DAMON tracepoints through tracefs: a private instance (or the top-level buffer) whose
``trace_pipe`` is read non-blocking, and the clean-up of what a SIGKILLed recording left.

:class:`TracefsSession` enables only the DAMON events (``damon:damon_aggregated`` plus
``damon_monitor_intervals_tune``, and ``damos_before_apply`` when asked, if the kernel
has them), either in a private tracing **instance** ``instances/damo-pipe-<pid>``
(default; cannot conflict with other tracing users) or in the top-level buffer
(``mode="toplevel"``: saves every file it changes, refuses when tracing is in use,
restores on close). :func:`cleanup_stale_tracing` removes what a SIGKILLed recording
left behind (used by ``damo-collect stop``).

Errors: :class:`~damo_pipe.errors.CollectError` (tracefs),
:class:`~damo_pipe.errors.DamonBusyError` (tracing in use),
:class:`~damo_pipe.errors.DamonUnavailableError` (no tracefs / no DAMON tracepoints).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess

from damo_pipe.errors import CollectError, DamonBusyError, DamonUnavailableError

log = logging.getLogger(__name__)

#: every DAMON event we know, in order; the first one is required.
DAMON_EVENTS = ("damon_aggregated", "damos_before_apply", "damon_monitor_intervals_tune",
                "damos_esz", "damos_stat_after_apply_interval", "damon_region_aggregated")
REQUIRED_EVENT = "damon_aggregated"
#: enabled by default. damos_before_apply is opt-in: damo-collect's catch-all ``stat``
#: scheme makes it repeat every damon_aggregated line (twice the volume), and damo's
#: grammar files its lines under the target's record, splitting every aggregation into
#: two snapshots (seen on 6.12). When enabled, its lines go to separate records.
#: damos_esz and damos_stat_after_apply_interval (Linux 6.15+ / 7.0+: one line per scheme
#: per quota reset / apply interval) go to side tables; damon_region_aggregated (probe
#: hits, damon/next trees) repeats every region line, so it is opt-in (``events``).
DEFAULT_EVENTS = ("damon_aggregated", "damon_monitor_intervals_tune", "damos_esz",
                  "damos_stat_after_apply_interval")
DAMOS_EVENT = "damos_before_apply"

#: where tracefs lives (first that exists wins); the first one is where we mount it.
TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

INSTANCE_PREFIX = "damo-pipe-"

#: same switch as damo_pipe.collect.sysfs: refuse the real tracefs when set
NO_REAL_ENV = "DAMO_PIPE_NO_REAL_SYSFS"
STATE_FILE_PREFIX = "tracefs-toplevel-"

#: default directory for the crash-recovery file of top-level mode
DEFAULT_STATE_DIR = "/run/damo-pipe"


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
        if not os.path.lexists(root):
            raise DamonUnavailableError("%s: no such file" % root)
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
