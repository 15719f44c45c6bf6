"""Low-level access to DAMON's sysfs interface (``/sys/kernel/mm/damon/admin``).

:class:`SysfsTree` reads and writes the files of one tree, in-process (no process per
file). Every write that makes the kernel create or destroy directories (``nr_*`` files)
or run a command (``kdamonds/N/state``) is followed by a check that the effect is
visible: the real kernel applies them before ``write()`` returns, so the check costs one
``stat``/``read``; a simulated kernel (unit tests) gets the time it needs.

:func:`read_tried_regions` reads a scheme's ``tried_regions`` directory into numpy
columns with a Cython kernel (``_tried_regions.pyx``) or its pure-Python twin.

Library code: no printing; errors are :class:`CollectError` subclasses.
"""
from __future__ import annotations

import errno
import os
import time

import numpy as np

from damo_pipe._engine import select_engine
from damo_pipe.errors import CollectError, DamonUnavailableError

#: DAMON's sysfs show/store functions take the sysfs lock with mutex_trylock and answer
#: EBUSY while a kdamond (ours or another) holds it; such reads and writes are retried
#: for this long before the error is reported.
EBUSY_RETRY_SECONDS = 2.0


def _retrying_ebusy(read):
    deadline = time.monotonic() + EBUSY_RETRY_SECONDS
    delay = 0.001
    while True:
        try:
            return read()
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)

#: where the kernel exposes DAMON's sysfs interface
DEFAULT_ADMIN = "/sys/kernel/mm/damon/admin"

#: when set (tests on a host whose DAMON is not ours), the default tree is refused
NO_REAL_SYSFS_ENV = "DAMO_PIPE_NO_REAL_SYSFS"

#: how long to wait for the effect of a write (real kernel: immediate)
EFFECT_TIMEOUT_S = 20.0

#: state values after which ``kdamonds/N/state`` reads ``on`` or ``off``
STATE_VALUES = ("on", "off")

#: state commands (Linux 6.12 admin guide); the ones we use are marked in SysfsTree
STATE_COMMANDS = ("on", "off", "commit", "commit_schemes_quota_goals", "update_schemes_stats",
                  "update_schemes_tried_bytes", "update_schemes_tried_regions",
                  "clear_schemes_tried_regions", "update_schemes_effective_quotas",
                  "update_tuned_intervals")


def resolve_admin_root(root=None):
    """The DAMON ``admin`` directory: ROOT itself, or ROOT/kernel/mm/damon/admin, or the default."""
    if root is None:
        return DEFAULT_ADMIN
    root = os.fspath(root)
    for cand in (root, os.path.join(root, "kernel/mm/damon/admin"),
                 os.path.join(root, "sys/kernel/mm/damon/admin")):
        if os.path.isdir(os.path.join(cand, "kdamonds")):
            return cand
    return root


class SysfsTree:
    """Reads and writes files under a DAMON admin directory."""

    def __init__(self, root=None):
        self.root = resolve_admin_root(root)
        self.is_default = os.path.abspath(self.root) == DEFAULT_ADMIN
        self._fds = {}
        if self.is_default and os.environ.get(NO_REAL_SYSFS_ENV):
            raise DamonUnavailableError("the real DAMON sysfs is disabled here (%s is set); "
                                        "use --sysfs_root" % NO_REAL_SYSFS_ENV)

    def path(self, rel):
        return os.path.join(self.root, rel)

    def exists(self, rel):
        return os.path.exists(self.path(rel))

    def check_available(self):
        """Raise DamonUnavailableError unless the tree looks like DAMON sysfs."""
        p = self.path("kdamonds/nr_kdamonds")
        if not os.path.exists(p):
            if self.is_default:
                if not os.path.isdir("/sys/kernel/mm"):
                    raise DamonUnavailableError("sysfs is not mounted at /sys")
                raise DamonUnavailableError(
                    "this kernel has no DAMON sysfs interface (%s missing: needs "
                    "CONFIG_DAMON_SYSFS=y, Linux 5.18 or later)" % p)
            if not os.path.lexists(self.root):
                raise DamonUnavailableError("%s: no such file" % self.root)
            raise DamonUnavailableError("%s is not a DAMON sysfs tree (no kdamonds/nr_kdamonds)"
                                        % self.root)
        if not os.access(p, os.R_OK):
            raise DamonUnavailableError("cannot read %s: run as root" % p)

    def check_writable(self):
        p = self.path("kdamonds/nr_kdamonds")
        if not os.access(p, os.W_OK) or (self.is_default and os.geteuid() != 0):
            raise DamonUnavailableError("cannot write %s: DAMON control needs root" % p)

    # -- plain reads and writes ---------------------------------------------------------
    def read(self, rel):
        p = self.path(rel)
        try:
            fd = os.open(p, os.O_RDONLY)
        except FileNotFoundError:
            raise CollectError("%s does not exist" % p) from None
        except PermissionError:
            raise DamonUnavailableError("cannot read %s: permission denied (not root?)" % p) from None
        try:
            data = _retrying_ebusy(lambda: os.pread(fd, 65536, 0))
        except OSError as e:
            raise CollectError("reading %s failed: %s" % (p, os.strerror(e.errno))) from None
        finally:
            os.close(fd)
        return data.decode("utf-8", "replace").strip()

    def read_cached(self, rel):
        """Like read(), through a file descriptor kept open (pread at 0 re-reads sysfs).

        For files read again and again (state, stats): saves the open/close per read.
        :meth:`close_cached` drops the descriptors (before their directory goes away).
        """
        fd = self._fds.get(rel)
        if fd is None:
            try:
                fd = os.open(self.path(rel), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise CollectError("%s does not exist" % self.path(rel)) from None
            except PermissionError:
                raise DamonUnavailableError("cannot read %s: permission denied (not root?)"
                                            % self.path(rel)) from None
            self._fds[rel] = fd
        try:
            data = _retrying_ebusy(lambda: os.pread(fd, 4096, 0))
        except OSError as e:
            self._fds.pop(rel, None)
            os.close(fd)
            raise CollectError("reading %s failed: %s" % (self.path(rel), os.strerror(e.errno))) from None
        return data.decode("utf-8", "replace").strip()

    def close_cached(self, prefix=""):
        for rel in [r for r in self._fds if r.startswith(prefix)]:
            os.close(self._fds.pop(rel))

    def read_int(self, rel):
        text = self.read(rel)
        try:
            return int(text)
        except ValueError:
            raise CollectError("%s: expected a number, read %r" % (self.path(rel), text)) from None

    def read_opt(self, rel, default=None):
        try:
            return self.read(rel)
        except CollectError:
            return default

    def write(self, rel, value):
        """Write VALUE (str or int) to REL; kernel errors become CollectError naming the file."""
        p = self.path(rel)
        data = (str(value) + "\n").encode() if not isinstance(value, bytes) else value
        try:
            fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
        except FileNotFoundError:
            raise CollectError("%s does not exist (kernel lacks this DAMON feature?)" % p) from None
        except PermissionError:
            raise DamonUnavailableError("cannot write %s: permission denied (not root?)" % p) from None
        try:
            _retrying_ebusy(lambda: os.write(fd, data))
        except OSError as e:
            hint = {errno.EBUSY: " (kdamond busy: running or owned by another user)",
                    errno.EINVAL: " (value rejected by the kernel)",
                    errno.ESRCH: " (no such process)"}.get(e.errno, "")
            raise CollectError("writing %r to %s failed: %s%s"
                               % (str(value), p, os.strerror(e.errno), hint)) from None
        finally:
            os.close(fd)

    # -- writes with a kernel effect -----------------------------------------------------
    def write_nr(self, rel_dir, n):
        """Write ``nr_<x>`` of REL_DIR (e.g. ``kdamonds``) and wait until N children exist."""
        names = [f for f in os.listdir(self.path(rel_dir)) if f.startswith("nr_")]
        if len(names) != 1:
            raise CollectError("%s has no single nr_* file" % self.path(rel_dir))
        self.write(os.path.join(rel_dir, names[0]), n)
        self._wait(lambda: self._count_children(rel_dir) == n,
                   "%s to hold %d entries" % (self.path(rel_dir), n))

    def _count_children(self, rel_dir):
        try:
            return sum(1 for f in os.listdir(self.path(rel_dir)) if f.isdigit())
        except FileNotFoundError:
            return -1

    def write_state(self, kdamond_rel, command):
        """Write a state command and wait until the kernel has carried it out."""
        rel = os.path.join(kdamond_rel, "state")
        self.write(rel, command)
        want = command if command in STATE_VALUES else None
        self._wait(lambda: (self.read_cached(rel) == want) if want else
                   (self.read_cached(rel) in STATE_VALUES),
                   "%s to finish %r" % (self.path(rel), command))

    def _wait(self, cond, what, timeout=EFFECT_TIMEOUT_S):
        if cond():
            return
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while time.monotonic() < deadline:
            time.sleep(delay)
            if cond():
                return
            delay = min(delay * 2, 0.02)
        raise CollectError("timed out waiting for %s" % what)


# ---------------------------------------------------------------------------------------
# tried regions

TRIED_FIELDS = ("start", "end", "nr_accesses", "age")


def read_tried_regions_py(dirpath, n, with_filter_passed=False):
    """Pure-Python twin of the Cython reader: columns of tried regions 0..n-1 of DIRPATH."""
    start = np.empty(n, np.uint64)
    end = np.empty(n, np.uint64)
    nr = np.empty(n, np.int64)
    age = np.empty(n, np.int64)
    passed = np.zeros(n, np.uint64)
    cols = [start, end, nr, age] + ([passed] if with_filter_passed else [])
    names = TRIED_FIELDS + (("sz_filter_passed",) if with_filter_passed else ())
    dfd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(n):
            for col, name in zip(cols, names):
                rel = "%d/%s" % (i, name)
                try:
                    fd = os.open(rel, os.O_RDONLY, dir_fd=dfd)
                except OSError as e:
                    raise CollectError("cannot open %s/%s: %s" % (dirpath, rel, os.strerror(e.errno))) from None
                try:
                    text = os.read(fd, 64)
                finally:
                    os.close(fd)
                try:
                    col[i] = int(text)
                except ValueError:
                    raise CollectError("%s/%s: expected a number, read %r" % (dirpath, rel, text)) from None
    finally:
        os.close(dfd)
    return start, end, nr, age, passed


def read_tried_regions(dirpath, n, with_filter_passed=False, engine="auto"):
    """Columns (start, end, nr_accesses, age, sz_filter_passed) of N tried regions.

    ``engine``: "auto" (the Cython reader when built), "cython" or "python"
    (:func:`damo_pipe._engine.select_engine`; EngineError for an unknown name or an
    unbuilt Cython reader)."""
    kernel = select_engine(engine, "damo_pipe.collect._tried_regions")
    if kernel is None:
        return read_tried_regions_py(dirpath, n, with_filter_passed)
    try:
        return kernel.read_tried_regions(os.fsencode(dirpath), n, with_filter_passed)
    except OSError as e:
        raise CollectError("reading tried regions under %s failed: %s" % (dirpath, e)) from None
    except ValueError as e:
        raise CollectError("%s: %s" % (dirpath, e)) from None
