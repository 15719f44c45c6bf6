"""A whole recording: DAMON snapshots and side recorders into one archive, cleaned up
in reverse order however it ends.

:class:`Recording` is what ``damo-collect record`` runs. Every resource it takes is
entered into one clean-up stack (:class:`CleanupStack`, a :class:`contextlib.ExitStack`)
right after it is taken: signal handling (:class:`~damo_pipe.collect.signals.StopFlag`),
the target command, the kdamond session (and its ownership entry), the archive writer
(:class:`~damo_pipe.collect.recorder.ArchiveRecorder`) and the side recorders (memory
footprints, the CPU profile, DAMON tracepoints, ...). Whether the loop ends by timeout, signal, the
target's exit or an error, the stack then: ignores further signals, records the final
DAMOS stats, turns the kdamond off (no new trace events after this), stops the side
recorders (drain, restore tracefs), closes the archive, terminates the command and
restores the signal handlers. Every step runs even when an earlier one failed; the first
failure is raised afterwards (or logged when another error already ends the recording).

Side recorders (:mod:`damo_pipe.collect.side_recorders`) plug in through
``side_recorders=``: their ``stop()`` is entered into the stack before they start, so a
failed start is cleaned up like everything else.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import subprocess
import time
from typing import Callable, Dict, List, Optional

from damo_pipe.collect.footprints import FootprintRecorder
from damo_pipe.collect.kdamond import KdamondSession, MonitoringSpec, check_idle
from damo_pipe.collect.profile import ProfileOptions, ProfileRecorder
from damo_pipe.collect.recorder import ArchiveRecorder, record_loop
from damo_pipe.collect.side_recorders import TraceRecorder
from damo_pipe.collect.signals import StopFlag
from damo_pipe.errors import CollectError, UsageError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RecordTarget:
    """What to monitor: processes and/or a command to run, physical memory (``ops`` paddr),
    or (``ongoing``) the kdamond ``damo-collect start`` left running."""

    pids: List[int] = dataclasses.field(default_factory=list)
    command: Optional[List[str]] = None
    ongoing: bool = False
    #: the operations set asked for (None: vaddr with a process, else paddr)
    ops: Optional[str] = None
    #: the command's stdout and stderr go to /dev/null (``monitor`` prints on stdout)
    quiet: bool = False


@dataclasses.dataclass
class RecordingOptions:
    """How to record (the ``damo-collect record`` options; times in seconds)."""

    output: str = "damon.h5"
    timeout: Optional[float] = None
    snapshot_interval: Optional[float] = None   # None: every aggregation interval
    flush_interval: float = 1.0
    stats_interval: float = 1.0
    footprint_interval: float = 1.0
    rotate_interval: Optional[float] = None     # start FILE.1.h5, FILE.2.h5, ... this often
    compression: Optional[str] = None
    engine: str = "auto"
    proc_root: str = "/proc"
    command_line: str = ""                       # provenance
    footprints: bool = True                      # statm + meminfo (damo's mem_footprint)
    cpu_profile: Optional[ProfileOptions] = None  # perf record beside (damo's cpu_profile)
    wait_ready: float = 0.0    # wait up to this long for the side recorders (perf) to
    #                            record before the first snapshot


@dataclasses.dataclass
class RecordingResult:
    reason: str                  # timeout, stopped, signal N, target exited, kdamond stopped
    paths: List[str]             # the archive files written (several with rotation)
    nr_snapshots: int
    nr_regions: int
    nr_failed: int               # snapshots skipped: tried regions unreadable
    side_summaries: Dict[str, object]


def check_request(target: RecordTarget, options: RecordingOptions, tracer=None):
    """Raise UsageError for a request that cannot be recorded (before touching anything)."""
    if options.flush_interval <= 0:
        raise UsageError("--flush_interval must be positive")
    prof = options.cpu_profile
    if prof is not None and prof.scope == "targets" and not target.pids and not target.command \
            and not target.ongoing:
        raise UsageError("a CPU profile of the targets needs target processes (paddr has "
                         "none): profile the whole system instead")
    if tracer is not None and tracer.enabled and options.rotate_interval:
        raise UsageError("--tracer cannot be combined with --output_flush_sec rotation")
    if not target.ongoing and not target.pids and not target.command and target.ops != "paddr":
        raise UsageError("nothing to monitor: give --target_pid, a command after --, or --ops paddr")


def preload_archive_writer(compression=None):
    """Import the archive writer stack (h5py, compression filters) now: it takes seconds
    on a slow machine, and a short target command would be over by then."""
    importlib.import_module("damo_pipe.archive.writer")
    from damo_pipe.archive.layout import compression_kwargs
    compression_kwargs(compression)


class CleanupStack(contextlib.ExitStack):
    """An ExitStack that calls ``on_unwind`` first (e.g. to ignore further signals), lets
    every :meth:`guard`-ed clean-up run when another fails, and then raises the first
    failure (or logs them all when the block itself raised)."""

    def __init__(self):
        super().__init__()
        self.on_unwind = None
        self.errors = []

    def guard(self, fn, *args):
        """Enter ``fn(*args)`` as a clean-up whose Exception is collected, not raised."""
        def call():
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - keep cleaning up, report at the end
                self.errors.append(e)
        self.callback(call)

    def __exit__(self, exc_type, exc, tb):
        if self.on_unwind is not None:
            self.on_unwind()
        suppressed = super().__exit__(exc_type, exc, tb)
        if self.errors:
            if exc_type is None:
                raise self.errors[0]
            for e in self.errors:
                log.warning("cleanup: %s", e)
        return suppressed


def _once(fn):
    """``fn`` that runs at most once (later calls do nothing)."""
    done = []

    def call():
        if not done:
            done.append(True)
            fn()
    return call


def _terminate(child):
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _stop_side(side, summaries):
    summaries[side.name] = side.stop()


def _record_final_stats(recorder):
    try:
        recorder.record_final_stats()
    except Exception as e:  # noqa: BLE001 - still stop and close
        log.warning("final DAMOS stats not recorded: %s", e)


class Recording:
    """Record DAMON monitoring of ``target`` into ``options.output`` (see the module doc).

    ``tree``/``ownership``: the :class:`~damo_pipe.collect.sysfs.SysfsTree` to drive and
    the :class:`~damo_pipe.collect.ownership.OwnershipFile`. ``spec_builder(pids)`` makes
    the :class:`MonitoringSpec` of a new kdamond once the target command runs (its pid is
    the last of ``pids``); not needed for an ongoing target. ``tracer``: a
    :class:`~damo_pipe.collect.tracing.TracerOptions` to stream DAMON tracepoints too.
    ``side_recorders``: more :class:`~damo_pipe.collect.side_recorders.SideRecorder`
    objects, after the footprints (``options.footprints``), the CPU profile
    (``options.cpu_profile``) and the tracer. ``until()``: ends the recording when it
    returns True (checked every loop turn, like a signal).
    """

    def __init__(self, target: RecordTarget, options: RecordingOptions, *, tree, ownership,
                 spec_builder: Optional[Callable[[List[int]], MonitoringSpec]] = None,
                 tracer=None, side_recorders=(), until: Optional[Callable[[], bool]] = None):
        check_request(target, options, tracer)
        if not target.ongoing and spec_builder is None:
            raise UsageError("a new kdamond needs a spec_builder")
        self.target = target
        self.options = options
        self.tree = tree
        self.ownership = ownership
        self.spec_builder = spec_builder
        self.until = until
        self.side_recorders = []
        if options.footprints:
            self.side_recorders.append(FootprintRecorder(options.footprint_interval,
                                                         options.proc_root))
        if options.cpu_profile is not None:
            self.side_recorders.append(ProfileRecorder(options.cpu_profile))
        if tracer is not None and tracer.enabled:
            self.side_recorders.append(TraceRecorder(tracer))
        self.side_recorders += list(side_recorders)

    def run(self) -> RecordingResult:
        """Record until timeout, signal, target exit or kdamond stop; clean everything up."""
        opts = self.options
        self.tree.check_available()
        preload_archive_writer(opts.compression)
        with CleanupStack() as stack:
            stop = stack.enter_context(StopFlag())
            stack.on_unwind = stop.shield
            session, child, stop_session = self._start_session(stack)
            recorder = ArchiveRecorder(
                session, opts.output, flush_interval=opts.flush_interval,
                compression=opts.compression, stats_interval=opts.stats_interval,
                rotate_interval=opts.rotate_interval, proc_root=opts.proc_root,
                provenance={"command_line": opts.command_line, "sysfs_root": self.tree.root},
                engine=opts.engine, side_recorders=self.side_recorders)
            stack.guard(recorder.close)
            summaries = {}
            for side in self.side_recorders:
                stack.guard(_stop_side, side, summaries)
            if not self.target.ongoing:
                stack.guard(stop_session)   # the kdamond off before the sides drain
            stack.callback(_record_final_stats, recorder)   # while the kdamond still runs
            for side in self.side_recorders:
                side.start(recorder.writer)

            def should_stop():
                for side in self.side_recorders:
                    side.poll()
                return stop() or (self.until is not None and self.until())

            if opts.wait_ready > 0:
                self._wait_ready(should_stop, child, opts.wait_ready)
                recorder.restart_clock()

            log.info("recording %s into %s", session.spec.ops, opts.output)
            reason = record_loop(session, recorder, timeout=opts.timeout,
                                 snapshot_interval=opts.snapshot_interval,
                                 should_stop=should_stop, child=child, proc_root=opts.proc_root)
            if stop.signum is not None:
                reason = "signal %d" % stop.signum
        return RecordingResult(
            reason, list(recorder.paths), recorder.nr_snapshots, recorder.nr_regions,
            recorder.nr_failed, summaries)

    def _wait_ready(self, should_stop, child, timeout):
        """Wait up to ``timeout`` s until every side recorder records (perf's start-up
        takes seconds on a big machine, half a minute in a TCG VM)."""
        t0 = time.monotonic()
        waiting = [s.name for s in self.side_recorders if not s.ready()]
        if waiting:
            log.info("waiting up to %.0f s for %s to start recording", timeout,
                     ", ".join(waiting))
        while any(not s.ready() for s in self.side_recorders):
            if should_stop() or (child is not None and child.poll() is not None):
                return
            if time.monotonic() - t0 >= timeout:
                log.warning("%s did not start recording within %.0f s; going on",
                            ", ".join(s.name for s in self.side_recorders if not s.ready()),
                            timeout)
                return
            time.sleep(0.1)
        if waiting:
            log.info("%s recording after %.1f s", ", ".join(waiting), time.monotonic() - t0)

    def _start_session(self, stack):
        """-> (session, child, stop_session): attach to the ongoing kdamond, or run the
        command and create ours (validated first: sysfs writable, DAMON idle);
        ``stop_session`` turns ours off once, whoever calls it first."""
        tree, owner = self.tree, self.ownership
        if self.target.ongoing:
            session = KdamondSession.attach(tree, owner)
            if not session.is_running():
                raise UsageError("the kdamond started by damo-collect is not running")
            return session, None, None
        tree.check_writable()
        check_idle(tree, owner)
        pids = list(self.target.pids)
        child = None
        if self.target.command:
            out = subprocess.DEVNULL if self.target.quiet else None
            try:
                child = subprocess.Popen(self.target.command, stdout=out,
                                         stderr=subprocess.STDOUT if self.target.quiet else None)
            except FileNotFoundError:
                raise CollectError("%s: no such file" % self.target.command[0]) from None
            except OSError as e:
                raise UsageError("cannot run %s: %s" % (self.target.command[0], e)) from None
            stack.callback(_terminate, child)
            pids.append(child.pid)
        spec = self.spec_builder(pids)
        session = KdamondSession.create(
            tree, owner, spec, mode="record",
            description="damo-collect record -o %s (process %d)" % (self.options.output,
                                                                    os.getpid()))
        stop_session = _once(session.stop)
        stack.guard(stop_session)
        owner.update(tree.root, session.idx, output=os.path.abspath(self.options.output))
        return session, child, stop_session
