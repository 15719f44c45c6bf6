"""Live monitoring: damo's ``monitor`` — record for ``delay`` seconds, show a report of
those seconds, again, until ``count`` reports, a signal or the target's exit.

damo 3.4.3 runs ``damo start``, then in a loop ``damo record --timeout DELAY ongoing``
and ``damo report heatmap|wss|holistic`` on the new damon.data, and ``damo stop`` at the
end. :func:`monitor` does the same with one :class:`~damo_pipe.collect.recording.Recording`
(one kdamond for the whole session, cleaned up like ``record``): the archive is rotated
every ``delay`` seconds into a private directory, and each finished file (a round) is
rendered (:func:`render_round`) through the side recorder hook ``closed(path)``, handed
to ``emit`` and deleted. The CPU profile (holistic view) is one ``perf record`` whose
part per round lands in that round's file (:mod:`damo_pipe.collect.profile`); the
first round starts once perf records (``RecordingOptions.wait_ready``).

Targets: a pid, a command (its output goes to /dev/null, as with damo), ``paddr``, or
``ongoing``: the kdamond ``damo-collect start`` left running (checked in the ownership
file; a kdamond of a running ``damo-collect record`` is refused), which is left running.
A kdamond damo-collect did not create is never touched (``record``'s rules).

Ends: ``count`` reports shown, SIGINT/SIGTERM/SIGHUP (the round in progress is dropped,
as damo drops it), the target's exit (its last, partial round is shown, as damo shows
it). Every way leaves no kdamond behind (except ``ongoing``'s) and removes the
directory.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from typing import Callable, Optional

from damo_pipe.collect.profile import ProfileOptions
from damo_pipe.collect.recording import Recording, RecordingOptions, RecordTarget
from damo_pipe.collect.side_recorders import SideRecorder
from damo_pipe.errors import DamonBusyError, UsageError

log = logging.getLogger(__name__)

REPORT_TYPES = ("holistic", "heats", "wss")
#: damo monitor's heatmap resolution (rows, columns)
HEATS_RESOLUTION = (10, 80)


@dataclasses.dataclass
class MonitorOptions:
    """``damo-collect monitor``'s options (times in seconds)."""

    delay: float = 3.0
    count: int = 0                       # reports to show; 0: until stopped
    report_type: str = "holistic"
    cpu_profile: Optional[ProfileOptions] = None   # the holistic view's hotspots
    profile_wait: float = 300.0          # for perf to start before the first round
    workdir: Optional[str] = None        # where the rounds go (default: a temporary dir)
    flush_interval: float = 1.0
    engine: str = "auto"
    proc_root: str = "/proc"
    command_line: str = ""

    def __post_init__(self):
        if self.report_type not in REPORT_TYPES:
            raise UsageError("unknown --report_type %r (choose from %s)"
                             % (self.report_type, ", ".join(REPORT_TYPES)))
        if not self.delay > 0:
            raise UsageError("--delay must be positive")
        if self.count < 0:
            raise UsageError("--count must not be negative")


@dataclasses.dataclass
class MonitorResult:
    reason: str             # count reached, signal N, target exited, kdamond stopped, ...
    nr_reports: int


def _analyze_engine(engine):
    return "python" if engine == "python" else "cython"


def render_round(path, report_type, delay, *, perf=None, engine="cython"):
    """What damo's monitor prints for one round recorded in the archive ``path``.

    heats: ``report heatmap --resol 10 80 --time_range -DELAY 0 guided_end``, lines
    starting with ``#`` left out; wss: ``report wss``; holistic: ``report holistic
    --heatmap_time_last_n_sec DELAY`` (hotspots left out when the round has no profile
    or perf cannot report it). damo prints a report command's output with ``print``:
    one more newline."""
    engine = _analyze_engine(engine)
    if report_type == "heats":
        return _heats_text(path, delay, engine)
    if report_type == "wss":
        return _wss_text(path, engine) + "\n"
    if report_type == "holistic":
        return _holistic_text(path, delay, perf, engine) + "\n\n"
    raise UsageError("unknown report type %r" % report_type)


def _heats_text(path, delay, engine):
    from damo_pipe.analyze import heatmap as hm
    from damo_pipe.analyze._chunks import RecordSource
    with RecordSource.open([path]) as src:
        grids = hm.compute_heatmaps(src, HEATS_RESOLUTION, ["%f s" % -delay, "0 s", "guided_end"],
                                    None, "hottest", engine=engine)
    out = []
    for grid in grids:
        text = hm.format_ascii(grid, "gray", False)
        if text is not None:
            out.append(text)
    lines = "\n".join(out).strip().split("\n")
    return "".join(line + "\n" for line in lines if not line.startswith("#"))


def _wss_text(path, engine):
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.wss import collapse, compute_wss, format_wss_block
    with RecordSource.open([path]) as src:
        per_target = compute_wss(src, 1, 1, 1, 20, "size", engine)
    return format_wss_block(0, collapse(per_target), list(range(0, 101, 25))) + "\n"


def _holistic_text(path, delay, perf, engine):
    from damo_pipe.analyze import holistic
    from damo_pipe.archive.profile import has_profile
    from damo_pipe.errors import ExternalToolError, RecordFormatError
    perf_path = perf or "perf"
    if has_profile(path):
        try:
            return holistic.holistic_report(path, perf_path=perf_path, last_n_sec=delay,
                                            engine=engine)
        except (ExternalToolError, RecordFormatError) as e:
            log.warning("hotspots left out of this view: %s", e)
    else:
        log.info("no CPU profile in this round (perf not recording yet?): no hotspots")
    from damo_pipe.analyze._chunks import RecordSource
    from damo_pipe.analyze.footprints import footprints_for
    from damo_pipe.analyze.heatmap import compute_guides
    with RecordSource.open([path]) as src:
        guides = compute_guides(src, engine=engine)
        wss_by_size, _ = holistic.holistic_wss(src, engine)
    return holistic.format_short(guides, wss_by_size, footprints_for(path, None), None, delay)


class RoundReports(SideRecorder):
    """Renders every archive file the recording finishes (a round) and deletes it.

    The files closed by rotation are complete rounds; the one closed at the end is
    kept in ``last_path`` (shown only when the target exited). Listed after the CPU
    profile recorder, so that a round's file already holds its profile."""

    name = "monitor"

    def __init__(self, render: Callable[[str], str], emit: Callable[[str], None], count=0):
        self.render = render
        self.emit = emit
        self.count = count
        self.nr_reports = 0
        self.final = False
        self.last_path = None

    def done(self):
        return bool(self.count) and self.nr_reports >= self.count

    def stop(self):
        self.final = True
        return {"reports": self.nr_reports}

    def closed(self, path):
        if self.final:
            self.last_path = path
            return
        try:
            if not self.done():
                self.emit(self.render(path))
                self.nr_reports += 1
        finally:
            remove_round(path)


def remove_round(path):
    """Delete a round's archive (its profile part is the profile recorder's to delete;
    perf's current output, named after the first round, must stay)."""
    try:
        os.unlink(path)
    except OSError as e:
        log.debug("cannot remove %s: %s", path, e)


def check_ongoing(tree, ownership):
    """DamonBusyError unless the running kdamond damo-collect owns was made by ``damo-collect
    start`` (monitor never reads a kdamond another ``record`` or ``monitor`` drives)."""
    entries = ownership.find(tree.root)
    for e in entries:
        if e.get("mode") != "start":
            raise DamonBusyError(
                "the kdamond damo-collect runs belongs to `damo-collect %s` (process %s), "
                "not to `damo-collect start`: monitor ongoing only reads what start left "
                "running" % (e.get("mode", "?"), e.get("owner_pid")))


def monitor(target: RecordTarget, options: MonitorOptions, *, tree, ownership,
            spec_builder=None, emit: Callable[[str], None]) -> MonitorResult:
    """Monitor ``target``, calling ``emit(text)`` with each round's report (module doc)."""
    if target.ongoing:
        check_ongoing(tree, ownership)
    target = dataclasses.replace(target, quiet=True)
    profile = options.cpu_profile if options.report_type == "holistic" else None
    if profile is not None:
        # a round's hotspots come from `perf report` on its perf.data: no sample table
        profile = dataclasses.replace(profile, samples=False)
    own_dir = options.workdir is None
    workdir = tempfile.mkdtemp(prefix="damo-collect-monitor-") if own_dir else options.workdir
    reports = None
    try:
        reports = RoundReports(
            lambda path: render_round(path, options.report_type, options.delay,
                                      perf=None if profile is None else profile.perf,
                                      engine=options.engine),
            emit, options.count)
        rec_opts = RecordingOptions(
            output=os.path.join(workdir, "round.h5"), rotate_interval=options.delay,
            flush_interval=options.flush_interval, engine=options.engine,
            proc_root=options.proc_root, command_line=options.command_line,
            footprints=options.report_type == "holistic", cpu_profile=profile,
            wait_ready=options.profile_wait if profile is not None else 0.0)
        result = Recording(target, rec_opts, tree=tree, ownership=ownership,
                           spec_builder=spec_builder, side_recorders=[reports],
                           until=reports.done).run()
        reason = "count reached" if reports.done() else result.reason
        if result.reason == "target exited" and reports.last_path and not reports.done() \
                and result.nr_snapshots:
            # damo shows what the round in progress recorded before the target exited
            try:
                emit(render_round(reports.last_path, options.report_type, options.delay,
                                  perf=None if profile is None else profile.perf,
                                  engine=options.engine))
                reports.nr_reports += 1
            except Exception as e:  # noqa: BLE001 - a too short last round
                log.info("no report of the last round: %s", e)
        return MonitorResult(reason, reports.nr_reports)
    finally:
        if reports is not None and reports.last_path is not None:
            remove_round(reports.last_path)
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
