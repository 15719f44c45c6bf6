"""``damo-analyze batch``: analyse many record files in parallel on dask.distributed.

One dask task per input file. The task receives the file's *path* (open HDF5 handles do
not pickle, and the bytes need not travel through the scheduler), reads it with
:func:`damo_pipe.sources.read_records`, writes ``heatmap.png``, ``wss_dist.png``,
``wss_chron_change.png`` and ``summary.json`` into ``OUT/<name>/`` and returns a small
result dict. The client gathers the results as they complete and writes
``OUT/index.html``. Inputs and the output directory must be visible at the same path
on every worker (always true for a LocalCluster; a shared filesystem otherwise).

A task never raises for a bad input: the failure travels back as data
(``ok=False``, ``error=...``) so every other file is still processed. Failures of the
task machinery itself (a worker killed, the package missing on a remote worker) are
caught on the client and reported the same way.

Symlinks never lead the batch out of its directories: a file symlink found inside an
input directory (or matched by a glob) that points outside that directory is not
analysed but listed as failed (``follow_symlinks=True`` analyses it), and an entry of
``OUT`` that is a symlink (``OUT/<name>``, or a file in it) is never written through:
``OUT/<name>`` leading elsewhere fails that input, a file symlink is replaced by the
new file (every output goes through :func:`damo_pipe._atomic.atomic_output`).
"""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import re
import socket
import time

from damo_pipe._atomic import atomic_output
from damo_pipe.analyze.images import BatchOptions, error_text, write_images
from damo_pipe.errors import DamoPipeError, OutputError, UsageError

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
INDEX_FILE = "index.html"

_GLOB_CHARS = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclasses.dataclass
class InputItem:
    """One expanded input: a file to analyse, or an input that matched nothing."""

    path: str                      # absolute path (or the argument as given on error)
    name: str = ""                 # unique output sub-directory name
    error: str | None = None       # set when the input cannot even be submitted


# --------------------------------------------------------------------------- inputs

def expand_inputs(inputs, exclude_dirs=(), follow_symlinks=False):
    """Expand files, directories (recursively) and globs into a list of InputItem.

    Order: arguments in the given order; directory contents and glob matches sorted.
    The same file reached twice (by real path) is analysed once. Hidden files and
    files under ``exclude_dirs`` (the output directory) are skipped inside
    directories; symlinked subdirectories are not entered. A missing path, a glob
    matching nothing, or (unless ``follow_symlinks``) a file symlink leading out of the
    directory it was found in (a glob's: the part before its first wildcard) becomes
    an item with ``error`` set.
    """
    excluded = [os.path.realpath(d) for d in exclude_dirs]

    def is_excluded(p):
        rp = os.path.realpath(p)
        return any(rp == d or rp.startswith(d + os.sep) for d in excluded)

    items, seen = [], set()

    def add(p, within=None):
        ap = os.path.abspath(p)
        key = os.path.realpath(ap)
        if key in seen:
            return
        seen.add(key)
        if within is not None and not follow_symlinks and os.path.islink(ap):
            base = os.path.realpath(within)
            if not (key == base or key.startswith(base.rstrip(os.sep) + os.sep)):
                items.append(InputItem(ap, error="symlink to %s, outside %s: not followed "
                                                 "(--follow_symlinks analyses it)" % (key, within)))
                return
        items.append(InputItem(ap))

    def add_dir(d):
        found = []
        for root, dirs, files in os.walk(d):
            dirs[:] = sorted(x for x in dirs if not x.startswith(".")
                             and not is_excluded(os.path.join(root, x)))
            found.extend(os.path.join(root, f) for f in files if not f.startswith("."))
        for f in sorted(found):
            if os.path.isfile(f):
                add(f, within=d)

    for arg in inputs:
        arg = os.fspath(arg)
        if os.path.isdir(arg):
            add_dir(arg)
        elif os.path.exists(arg):
            add(arg)
        elif _GLOB_CHARS.search(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                items.append(InputItem(arg, error="no file matches %r" % arg))
            for m in matches:
                if os.path.isdir(m):
                    add_dir(m)
                elif not is_excluded(m):
                    add(m, within=_glob_root(arg))
        else:
            items.append(InputItem(arg, error="no such file"))
    return items


def _glob_root(pattern):
    """The directory part of a glob before its first wildcard."""
    head = _GLOB_CHARS.split(pattern, 1)[0]
    return os.path.dirname(head) or "."


def _out_dir_of(out_root, name):
    """``OUT/<name>``, created; OutputError when it is (or passes through) a symlink
    leading elsewhere: the batch never writes outside OUT."""
    out_dir = os.path.join(out_root, name)
    want = os.path.join(os.path.realpath(out_root), name)
    if os.path.lexists(out_dir) and os.path.realpath(out_dir) != want:
        raise OutputError("%s is a symlink to %s: not written through (remove it)"
                          % (out_dir, os.path.realpath(out_dir)), out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        from damo_pipe._atomic import output_error
        raise output_error(e, out_dir) from None
    return out_dir


def _sanitize(part):
    s = _UNSAFE.sub("_", part).strip("_") or "input"
    if s.startswith("."):
        s = "_" + s
    return s


def unique_names(paths):
    """A distinct, filesystem-safe directory name per path.

    The base name when it is unique; otherwise the shortest tail of path components
    (joined by ``__``) that tells the paths apart; ``-2``, ``-3``... as a last resort.
    ``index.html`` is never produced.
    """
    parts = [[_sanitize(p) for p in os.path.normpath(os.fspath(x)).split(os.sep) if p]
             or ["input"] for x in paths]
    depth = [1] * len(parts)

    def name_of(i):
        return "__".join(parts[i][-depth[i]:])

    while True:
        groups = {}
        for i in range(len(parts)):
            groups.setdefault(name_of(i), []).append(i)
        grew = False
        for members in groups.values():
            if len(members) > 1:
                for i in members:
                    if depth[i] < len(parts[i]):
                        depth[i] += 1
                        grew = True
        if not grew:
            break
    names, used = [], set()
    for i in range(len(parts)):
        base = name_of(i)
        if base.lower() == INDEX_FILE:
            base = "_" + base
        name, k = base, 1
        while name in used:
            k += 1
            name = "%s-%d" % (base, k)
        used.add(name)
        names.append(name)
    return names


# --------------------------------------------------------------------------- the task

def analyze_archive(path, name, out_root, options=None):
    """Analyse one record file; runs on a dask worker. Never raises for bad input.

    Returns a JSON-serialisable dict: ``name``, ``path``, ``ok``, ``error``,
    ``summary`` (see :mod:`damo_pipe.analyze.summary`), ``images`` ({kind: file name
    relative to OUT/<name>/}), ``warnings``, ``format``, ``seconds`` (wall),
    ``cpu_seconds`` (CPU time of the task's thread), ``worker_pid``.
    """
    from damo_pipe.analyze.selection import apply_batch_selection
    from damo_pipe.analyze.summary import summarize_records
    from damo_pipe.sources import detect_format, read_records

    options = options or BatchOptions()
    t0 = time.perf_counter()
    c0 = time.thread_time()
    result = {"name": name, "path": path, "ok": False, "error": None, "summary": None,
              "images": {}, "warnings": [], "format": None, "seconds": None,
              "worker_pid": os.getpid()}
    try:
        result["format"] = detect_format(path)
        records, options, selection = apply_batch_selection(read_records(path), options)
        summary = summarize_records(records, path, exclude_samples=options.exclude_samples,
                                    acc_thres=options.acc_thres, sz_thres=options.sz_thres)
        summary["format"] = result["format"]
        summary["selection"] = selection.as_json() if selection else None
        out_dir = _out_dir_of(out_root, name)
        summary["warnings"] = result["warnings"]
        shown = {}
        result["images"] = write_images(records, out_dir, options, name, result["warnings"],
                                        info=shown)
        summary["heatmap"] = shown.get("heatmap")
        summary["images"] = result["images"]
        summary["analysis"] = {"host": socket.gethostname(), "pid": os.getpid(),
                               "seconds": round(time.perf_counter() - t0, 6),
                               "cpu_seconds": round(time.thread_time() - c0, 6)}
        result["summary"] = summary
        with atomic_output(os.path.join(out_dir, SUMMARY_FILE)) as tmp, open(tmp, "w") as f:
            json.dump(summary, f, indent=1, sort_keys=True)
            f.write("\n")
        result["ok"] = True
    except Exception as e:  # noqa: BLE001 - a bad input is data, not a crash
        result["error"] = error_text(e)
        result["summary"] = None
    result["seconds"] = time.perf_counter() - t0
    result["cpu_seconds"] = time.thread_time() - c0
    return result


def failed_result(item, error):
    return _failed(item.path, item.name, error)


def _failed(path, name, error):
    return {"name": name, "path": path, "ok": False, "error": error, "summary": None,
            "images": {}, "warnings": [], "format": None, "seconds": None, "cpu_seconds": None,
            "worker_pid": None}


def analyze_archives(jobs, out_root, options=None):
    """Analyse a group of inputs (``jobs``: [(path, name)]) in one dask task; their
    results in order. An exception escaping one input's analysis fails that input only.

    Grouping inputs makes fewer tasks: each task costs the scheduler, the client and the
    worker's event loop a few ms of CPU, which on a small host competes with the
    analyses themselves (docs/performance.md, "Fleet")."""
    out = []
    for path, name in jobs:
        try:
            out.append(analyze_archive(path, name, out_root, options))
        except Exception as e:  # noqa: BLE001 - as a failed task: a failed row
            out.append(_failed(path, name, error_text(e)))
    return out


#: most inputs in one task (a 10k-region archive takes ~0.2 s: 16 of them ~3 s)
MAX_TASK_INPUTS = 16
#: inputs larger than this go alone in their task, and a group holds at most this much
#: (big inputs take long anyway; a worker killed by one must not take many others along)
MAX_TASK_BYTES = 8 << 20


def task_groups(sizes, nr_workers, most=MAX_TASK_INPUTS, most_bytes=MAX_TASK_BYTES):
    """Split inputs of ``sizes`` (bytes; None = unknown, taken as big) into consecutive
    groups, one dask task each: large groups first, then smaller and smaller ones (each
    at most a quarter of what is left per worker), so that the last tasks are single
    inputs and no worker waits long for another at the end; at most ``most`` inputs and
    ``most_bytes`` a group (a bigger input alone). Returns [(lo, hi)]."""
    groups = []
    n = len(sizes)
    lo = 0
    w = max(1, int(nr_workers))
    while lo < n:
        want = max(1, min(int(most), (n - lo) // (4 * w)))
        hi, total = lo, 0
        while hi < lo + want:
            size = sizes[hi]
            size = most_bytes + 1 if size is None else size
            if hi > lo and total + size > most_bytes:
                break
            total += size
            hi += 1
        groups.append((lo, hi))
        lo = hi
    return groups


def _size_of(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


# --------------------------------------------------------------------------- the client

@dataclasses.dataclass
class BatchResult:
    results: list            # result dicts in input order
    index_path: str
    seconds: float
    nr_workers: int
    # wall seconds of the client's phases: "inputs" (expansion, naming, OUT), "connect"
    # (cluster start or connection), "tasks" (submission to the last result), "index"
    timings: dict = dataclasses.field(default_factory=dict)

    @property
    def failures(self):
        return [r for r in self.results if not r["ok"]]


def _connect(scheduler, workers, processes, timeout="20s"):
    """(client, cluster_or_None); the caller closes both."""
    from distributed import Client, LocalCluster
    if scheduler:
        if workers:
            log.warning("--workers is ignored with --scheduler")
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as e:
            raise DamoPipeError("cannot connect to the dask scheduler at %s (%s)"
                                % (scheduler, e or type(e).__name__))
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            client.close()
            raise DamoPipeError("the dask scheduler at %s has no worker (waited %s)"
                                % (scheduler, timeout))
        return client, None
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise UsageError("--workers must be at least 1")
    # dashboard_address ":0": the scheduler's HTTP server still starts (bokeh or not);
    # a random port lets several batches (and tests) run side by side
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


def run_batch(inputs, out_dir, *, scheduler=None, workers=None, processes=True,
              options=None, on_start=None, on_result=None, title=None, connect_timeout="20s",
              follow_symlinks=False, task_files=None):
    """Analyse every input on dask and write ``out_dir/index.html``.

    ``on_start(nr_tasks)`` is called once the work is submitted and ``on_result(result)``
    for each finished input (completion order), e.g. to drive a progress bar.
    ``follow_symlinks``: see :func:`expand_inputs`. ``task_files``: most inputs in one
    dask task (default :data:`MAX_TASK_INPUTS`; see :func:`task_groups`).
    Returns a :class:`BatchResult`; failures are in it, never raised.
    """
    from distributed import as_completed

    from damo_pipe.analyze.html import write_index

    t0 = time.perf_counter()
    timings = {}
    options = options or BatchOptions()
    if not scheduler and not processes:
        options = dataclasses.replace(options, serialize_plots=True)
    out_dir = os.path.abspath(os.fspath(out_dir))
    if task_files is not None and task_files < 1:
        raise UsageError("--task_files must be at least 1")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError("--out %s exists and is not a directory" % out_dir)
    items = expand_inputs(inputs, exclude_dirs=[out_dir], follow_symlinks=follow_symlinks)
    if not items:
        raise UsageError("no input files")
    for item, name in zip(items, unique_names([i.path for i in items])):
        item.name = name
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UsageError("cannot create --out %s (%s)" % (out_dir, e.strerror or e))

    timings["inputs"] = time.perf_counter() - t0
    results = [None] * len(items)
    todo = []
    for k, item in enumerate(items):
        if item.error:
            results[k] = failed_result(item, "%s: %s" % (item.path, item.error))
        else:
            todo.append(k)
    nr_workers = 0
    if on_start:
        on_start(len(items))
    for k in range(len(items)):
        if results[k] is not None and on_result:
            on_result(results[k])
    if todo:
        t1 = time.perf_counter()
        client, cluster = _connect(scheduler, workers, processes, connect_timeout)
        t2 = time.perf_counter()
        timings["connect"] = t2 - t1
        try:
            nthreads = client.nthreads()
            nr_workers = len(nthreads)
            most = max(nthreads.values(), default=1)
            if scheduler and most > 1 and not options.serialize_plots:
                # pyplot is not thread-safe: threads of one worker must not draw at once
                log.warning("dask workers at %s run up to %d threads each: the drawing is "
                            "serialised through one cluster-wide lock (start the workers "
                            "with --nthreads 1)", scheduler, most)
                options = dataclasses.replace(options, serialize_plots=True)
            sizes = [_size_of(items[k].path) for k in todo]
            groups = [todo[lo:hi] for lo, hi in task_groups(
                sizes, nr_workers, most=task_files or MAX_TASK_INPUTS)]

            def jobs(group):
                return [(items[k].path, items[k].name) for k in group]
            futures = client.map(analyze_archives, [jobs(g) for g in groups],
                                 [out_dir] * len(groups), [options] * len(groups),
                                 pure=False, retries=0)
            where = {f.key: g for f, g in zip(futures, groups)}
            pending = as_completed(futures)
            for fut in pending:
                group = where.pop(fut.key)
                try:
                    group_results = fut.result()
                except Exception as e:  # noqa: BLE001 - worker died, package missing, ...
                    fut.release()
                    if len(group) > 1:
                        # the task machinery failed a whole group (a worker killed by
                        # one input): each input again in a task of its own
                        log.info("a task of %d inputs failed (%s): retrying them one by "
                                 "one", len(group), error_text(e))
                        for k in group:
                            f = client.submit(analyze_archives, jobs([k]), out_dir, options,
                                              pure=False, retries=0)
                            where[f.key] = [k]
                            pending.add(f)
                        continue
                    group_results = [failed_result(items[group[0]], error_text(e))]
                fut.release()
                for k, res in zip(group, group_results):
                    results[k] = res
                    if on_result:
                        on_result(res)
            timings["tasks"] = time.perf_counter() - t2
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    t3 = time.perf_counter()
    index = write_index(results, out_dir, title=title)   # OutputError names the file
    t4 = time.perf_counter()
    timings["index"] = t4 - t3
    log.info("batch of %d inputs on %d worker(s): %s, total %.3f s", len(items), nr_workers,
             ", ".join("%s %.3f s" % kv for kv in timings.items()), t4 - t0)
    return BatchResult(results=results, index_path=index, seconds=t4 - t0,
                       nr_workers=nr_workers, timings=timings)
