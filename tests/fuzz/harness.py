"""CLI-level fuzzing of damo-analyze (issue 13): ``tools/fuzz --count N [--seed S]
[--jobs J]``.

Each input (tests/fuzz/inputs.py: every flavour incl. HDF5 and perf.data, damaged by
truncation, byte flips, dropped / repeated lines, huge counts, garbage, empty files,
directories, deep JSON) is run through ``damo_pipe.analyze.cli.main(argv)`` in a worker
process (in-process: fast), under a per-input time limit, and its outcome classified:

* ``ok``: exit 0, and the content (converted records, info counts, report text) equals
  an independent re-parse: the pure-Python engine for damo's formats, plain h5py reads
  for archives;
* ``error``: exit 1 and exactly one stderr line ``damo-analyze: error: ...`` naming the
  input and a line / byte offset / row (or a whole-file reason: empty, not a record...).

Anything else is a failure, printed with a reproducer (``tools/fuzz --seed S --index I
--keep DIR``): ``traceback`` (an exception left main), ``wrong`` (exit 0 but content
differs from the re-parse, or the re-parse fails), ``refused`` (a clean error on an
input the reference reads, for reading commands), ``unlocated`` (error without a place),
``multiline``, ``exit`` (another exit status), ``hang`` (over the time limit).
"""
from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import traceback

FAILURES = ("traceback", "wrong", "refused", "unlocated", "multiline", "exit", "hang")
LOCATION_RE = re.compile(r"(line \d+|byte offset \d+|\brow \d+|record \d+|snapshot \d+"
                         r"|dataset )")
WHOLE_FILE = ("not a DAMON record", "empty file", "cannot read", "perf script",
              "perf failed", "no complete snapshot", "is a directory", "not an HDF5",
              "cannot open archive", "no such file", "not a damo-pipe archive",
              "trace-cmd .dat", "unknown archive", "format_version", "no record",
              "Is a directory", "no input file", "not a file",
              # HDF5 finds damage by metadata checksums, without a byte offset
              "damaged archive", "damaged HDF5", "truncated or damaged")


# ---------------------------------------------------------------- references

def _columns(recs):
    """What the comparison looks at, per record: target id, snapshot ends, starts after
    the first, region counts, region columns."""
    out = []
    for r in recs:
        S, R = r.snapshots, r.regions
        out.append((None if r.target_id is None else int(r.target_id), S.end_ns.tolist(),
                    S.start_ns[1:].tolist(), S.nr_regions.tolist(), R.start.tolist(),
                    R.end.tolist(), R.nr_accesses.tolist(), R.age.tolist()))
    return out


def h5_records(path, regions=True):
    """Records of an archive read with plain h5py (no damo_pipe reader): the reference
    for archive inputs and for the archives convert writes.  ``regions=False``: the
    region columns are left unread (zeros), for reports that read only the snapshot
    table (``report nr_regions``)."""
    import h5py
    import hdf5plugin  # noqa: F401
    import numpy as np
    from damo_pipe.model import Record, RegionColumns, SnapshotColumns
    out = []
    with h5py.File(path, "r") as f:
        g = f["records"]
        for name in sorted(g):
            r = g[name]
            ns, nreg = (int(x) for x in r["committed"][:2])
            S, R = r["snapshots"], r["regions"]
            ns = min(ns, len(S["end_ns"]))
            nreg = min(nreg, len(R["start"]))
            end = S["end_ns"][:ns].astype(np.int64)
            snaps = SnapshotColumns(start_ns=S["start_ns"][:ns].astype(np.int64), end_ns=end,
                                    region_offset=S["region_offset"][:ns].astype(np.int64),
                                    nr_regions=S["nr_regions"][:ns].astype(np.int64),
                                    total_bytes=S["total_bytes"][:ns].astype(np.uint64))
            if regions:
                regs = RegionColumns(R["start"][:nreg].astype(np.uint64),
                                     R["end"][:nreg].astype(np.uint64),
                                     R["nr_accesses"][:nreg].astype(np.int64),
                                     R["age"][:nreg].astype(np.int64))
            else:
                zeros = np.zeros(nreg, np.int64)
                regs = RegionColumns(zeros.astype(np.uint64), zeros.astype(np.uint64) + 1,
                                     zeros, zeros)
            tid = r.attrs.get("target_id")
            out.append(Record(target_id=None if tid is None else int(tid), snapshots=snaps,
                              regions=regs))
    return out


def h5_index(path):
    """What ``info`` reports of an archive, read with plain h5py from its index only
    (info reads no region column, by design: it answers in O(records))."""
    import h5py
    import hdf5plugin  # noqa: F401
    out = []
    with h5py.File(path, "r") as f:
        g = f["records"]
        for name in sorted(g):
            r = g[name]
            ns, nreg = (int(x) for x in r["committed"][:2])
            tid = r.attrs.get("target_id")
            out.append(_IndexOnly(None if tid is None else int(tid), ns, nreg))
    return out


class _IndexOnly:
    """A record as the archive's index states it (counts, no columns)."""

    def __init__(self, target_id, nr_snapshots, nr_regions):
        self.target_id, self.nr_snapshots, self.nr_regions = target_id, nr_snapshots, nr_regions


def reference(inp):
    """(records, None) read independently of the CLI's engine, or (None, error text)."""
    from damo_pipe.errors import DamoPipeError
    from damo_pipe.formats import detect_format, read_records
    try:
        if os.path.isdir(inp.path):
            return None, "a directory"
        fmt = detect_format(inp.path)
        if fmt == "hdf5" and inp.command == "info":
            return h5_index(inp.path), None
        if fmt == "hdf5" and inp.command == "nr_regions":
            return h5_records(inp.path, regions=False), None
        if fmt == "hdf5":
            return h5_records(inp.path), None
        return read_records(inp.path, input_type=fmt, engine="python"), None
    except DamoPipeError as e:
        return None, str(e)
    except Exception as e:        # noqa: BLE001 - h5py on a damaged archive, ...
        return None, "%s: %s" % (type(e).__name__, e)


# ---------------------------------------------------------------- running

class _Stream(io.TextIOWrapper):
    """A text stream with a .buffer, capturing what a command prints."""

    def __init__(self):
        super().__init__(io.BytesIO(), encoding="utf-8", errors="replace")

    def isatty(self):
        return False

    def value(self):
        self.flush()
        return self.buffer.getvalue().decode("utf-8", "replace")


class _CurrentStderr:
    """Logging writes to whatever sys.stderr is when it writes."""

    def write(self, s):
        return sys.stderr.write(s)

    def flush(self):
        sys.stderr.flush()


_PARSER = []


def _main(argv):
    """``damo_pipe.analyze.cli.main(argv)`` with its parser built once per process
    (argparse costs ~4 ms a build; parse_args leaves the parser as it was)."""
    from damo_pipe._cli_common import build_parser, run_main, single_threaded_blas
    from damo_pipe.analyze import cli
    if not _PARSER:
        single_threaded_blas()
        _PARSER.append(build_parser("damo-analyze", cli.DESCRIPTION, cli.available_commands(),
                                    "damo_pipe.analyze.commands"))
    return run_main(_PARSER[0], argv)


def run_cli(argv):
    """(exit status, stdout, stderr, traceback text or None) of damo-analyze ``argv``."""
    out, err = _Stream(), _Stream()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    tb = None
    try:
        rc = _main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:          # noqa: BLE001 - what the harness looks for
        rc = None
        tb = traceback.format_exc()
    finally:
        sys.stdout, sys.stderr = saved
    return rc, out.value(), err.value(), tb


_COUNTS_RE = re.compile(r"^records: (\d+), snapshots: (\d+), regions: (\d+)$", re.M)
_TARGET_RE = re.compile(r"^record (\d+): target_id (\S+)", re.M)


def check_success(inp, argv, out_dir, stdout, ref, ref_err):
    """None when the output of a successful command equals the reference, else why."""
    if ref is None:
        return "the command succeeded, the reference failed: %s" % ref_err
    cmd = inp.command
    if cmd in ("convert_json", "convert_h5"):
        from damo_pipe.formats import read_records
        dst = argv[-1]
        if not os.path.isfile(dst):
            return "no output file %s" % dst
        got = h5_records(dst) if cmd == "convert_h5" else read_records(dst, engine="python")
        if _columns(got) != _columns(ref):
            return "converted records differ from the reference"
        return None
    if cmd == "info":
        m = _COUNTS_RE.search(stdout)
        want = (len(ref), sum(r.nr_snapshots for r in ref), sum(r.nr_regions for r in ref))
        if m is None or tuple(int(x) for x in m.groups()) != want:
            return "info counts %s, reference %s" % (m and m.groups(), want)
        tids = [t for _, t in _TARGET_RE.findall(stdout)]
        if tids != [str(r.target_id) for r in ref]:
            return "info target ids %s, reference %s" % (tids, [r.target_id for r in ref])
        return None
    # a report: the same report on the reference records (written as clean json)
    from damo_pipe.formats import write_records
    clean = os.path.join(out_dir, "reference.json")
    write_records(ref, clean, "json")
    rc2, out2, err2, tb2 = run_cli([clean if a == inp.path else a for a in argv])
    if rc2 != 0 or out2 != stdout:
        return "report output differs from the report of the reference (exit %s)" % rc2
    return None


def classify(inp, out_dir, timeout_note=None):
    """Run one input; (class, message)."""
    argv = inp.argv(out_dir)
    rc, stdout, stderr, tb = run_cli(argv)
    if tb is not None:
        return "traceback", tb.strip().splitlines()[-1] + "\n" + tb
    if rc == 0:
        ref, ref_err = reference(inp)
        why = check_success(inp, argv, out_dir, stdout, ref, ref_err)
        return ("ok", "") if why is None else ("wrong", why)
    if rc != 1:
        return "exit", "exit status %s: %s" % (rc, stderr.strip()[-500:])
    lines = stderr.strip("\n").split("\n")
    if len(lines) != 1:
        return "multiline", stderr.strip()[-2000:]
    line = lines[0]
    if not line.startswith("damo-analyze: error: ") or inp.path not in line:
        return "unlocated", line
    if not LOCATION_RE.search(line) and not any(w in line for w in WHOLE_FILE):
        return "unlocated", line
    if inp.command in ("convert_json", "info") and inp.flavour != "hdf5":
        ref, _ = reference(inp)
        if ref is not None:
            return "refused", line
    return "error", line


# ---------------------------------------------------------------- workers

def _worker(seed, wid, tasks, results, current, workdir, timeout):
    """Run the inputs of each (start, stop) range from ``tasks``; report per input."""
    import logging
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setpgrp()      # its own process group: a hang kill takes the perf it started too
    logging.getLogger().addHandler(logging.StreamHandler(_CurrentStderr()))
    from tests.fuzz.inputs import make_input
    cache = {}
    while True:
        task = tasks.get()
        if task is None:
            return
        lo, hi = task
        for i in range(lo, hi):
            d = os.path.join(workdir, "w%d-%d" % (wid, i))
            os.mkdir(d)
            current[wid * 2] = i
            current[wid * 2 + 1] = time.monotonic()
            try:
                inp = make_input(seed, i, d, cache)
                cls, msg = classify(inp, d)
                desc = inp.describe()
            except Exception:      # noqa: BLE001 - a harness bug must not stop the run
                cls, msg, desc = "harness", traceback.format_exc(), "?"
            current[wid * 2 + 1] = 0.0
            results.put((i, cls, desc, msg if cls != "ok" else ""))
            shutil.rmtree(d, ignore_errors=True)
        results.put(("done", wid, lo, hi))


class Pool:
    """J workers fed index ranges; a worker stuck on one input past ``timeout`` seconds
    is killed (the input counts as a hang) and replaced, going on after that input."""

    def __init__(self, seed, jobs, workdir, timeout):
        self.ctx = mp.get_context("fork")
        self.seed, self.jobs, self.workdir, self.timeout = seed, jobs, workdir, timeout
        self.tasks = self.ctx.Queue()
        self.results = self.ctx.Queue()
        self.current = self.ctx.Array("d", 2 * jobs, lock=False)
        self.procs = [self._start(w) for w in range(jobs)]

    def _start(self, wid):
        p = self.ctx.Process(target=_worker, args=(self.seed, wid, self.tasks, self.results,
                                                    self.current, self.workdir, self.timeout),
                             daemon=True)
        p.start()
        return p

    def check_hangs(self):
        """[(index, seconds)] of inputs killed for running too long."""
        hung = []
        now = time.monotonic()
        for w, p in enumerate(self.procs):
            t0 = self.current[2 * w + 1]
            if t0 and now - t0 > self.timeout:
                i = int(self.current[2 * w])
                _kill_group(p)
                self.current[2 * w + 1] = 0.0
                hung.append((i, now - t0))
                self.procs[w] = self._start(w)
        return hung

    def close(self):
        for _ in self.procs:
            self.tasks.put(None)
        for p in self.procs:
            p.join(5)
            _kill_group(p)


def _kill_group(proc):
    """Kill a worker and whatever it started (perf), then reap the worker."""
    import signal
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.join()


def run(count, seed, jobs, timeout=60.0, start=0, batch=50, out=sys.stdout, keep=None,
        progress_every=60.0):
    """Fuzz inputs ``start .. start+count-1``; returns the summary dict."""
    workdir = tempfile.mkdtemp(prefix="damo-fuzz-")
    t0 = time.monotonic()
    counts, by_kind, failures = {}, {}, []
    pool = Pool(seed, jobs, workdir, timeout)
    pending = {}
    for lo in range(start, start + count, batch):
        hi = min(start + count, lo + batch)
        pool.tasks.put((lo, hi))
        pending[lo] = hi
    got = 0
    done_idx = set()
    last = time.monotonic()
    try:
        while got < count:
            try:
                item = pool.results.get(timeout=1.0)
            except Exception:      # noqa: BLE001 - queue.Empty
                item = None
            for i, secs in pool.check_hangs():
                if i in done_idx:
                    continue
                item_h = (i, "hang", "?", "over %.0f s (killed)" % secs)
                got += _record(item_h, counts, by_kind, failures, done_idx, seed, out)
                # the killed worker's range goes on after the hung input
                lo = max(k for k in pending if k <= i)
                if i + 1 < pending[lo]:
                    pool.tasks.put((i + 1, pending[lo]))
                    pending[i + 1] = pending[lo]
            if item is None:
                continue
            if item[0] == "done":
                continue
            if item[0] in done_idx:
                continue
            got += _record(item, counts, by_kind, failures, done_idx, seed, out)
            if progress_every and time.monotonic() - last > progress_every:
                last = time.monotonic()
                rate = got / (last - t0)
                print("fuzz: %d/%d inputs, %.0f/s, %s" % (got, count, rate, _fmt(counts)),
                      file=sys.stderr, flush=True)
    finally:
        pool.close()
        shutil.rmtree(workdir, ignore_errors=True)
    secs = time.monotonic() - t0
    summary = {"inputs": got, "seed": seed, "start": start, "jobs": jobs,
               "seconds": round(secs, 1), "classes": counts, "by_flavour_damage": by_kind,
               "failures": len(failures), "machine": _machine(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    return summary


def _record(item, counts, by_kind, failures, done_idx, seed, out):
    i, cls, desc, msg = item
    done_idx.add(i)
    counts[cls] = counts.get(cls, 0) + 1
    key = "/".join(desc.split("/")[:2]).split(" ")[0]
    by_kind.setdefault(key, {}).setdefault(cls, 0)
    by_kind[key][cls] += 1
    if cls in FAILURES or cls == "harness":
        failures.append(i)
        print("FAIL %s input %d %s\n  reproduce: tools/fuzz --seed %s --index %d --keep "
              "/tmp/fuzz-%d\n  %s" % (cls, i, desc, seed, i, i,
                                      "\n  ".join(msg.strip().splitlines()[-12:])),
              file=out, flush=True)
    return 1


def _fmt(counts):
    return ", ".join("%s %d" % kv for kv in sorted(counts.items()))


def _machine():
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return "%s, %d CPUs, %s, Python %s" % (cpu, os.cpu_count() or 0, platform.release(),
                                           platform.python_version())


def reproduce(seed, index, keep):
    """Regenerate input ``index``, keep it in ``keep``, run it, print what happened."""
    from tests.fuzz.inputs import make_input
    os.makedirs(keep, exist_ok=True)
    inp = make_input(seed, index, keep)
    argv = inp.argv(keep)
    print("input %d: %s\n  file: %s\n  damo-analyze %s" % (index, inp.describe(), inp.path,
                                                        " ".join(argv)))
    cls, msg = classify(inp, keep)
    print("  outcome: %s\n  %s" % (cls, "\n  ".join(msg.strip().splitlines())))
    return 0 if cls in ("ok", "error") else 1


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tools/fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000, help="inputs to run")
    ap.add_argument("--seed", default="1", help="run seed (inputs are a function of it)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    ap.add_argument("--start", type=int, default=0, help="index of the first input")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds one input may take before it counts as a hang")
    ap.add_argument("--index", type=int, default=None,
                    help="reproduce one input (with --keep: where it is written)")
    ap.add_argument("--keep", default=None, help="directory for --index")
    ap.add_argument("--json", default=None, help="write the summary there")
    args = ap.parse_args(argv)
    if args.index is not None:
        return reproduce(args.seed, args.index, args.keep or "/tmp/fuzz-%d" % args.index)
    s = run(args.count, args.seed, args.jobs, args.timeout, args.start)
    print(json.dumps(s, indent=1, sort_keys=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(s, f, indent=1, sort_keys=True)
    return 1 if s["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
