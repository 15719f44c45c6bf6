"""Write-then-rename: an output file appears complete or not at all.

Every output damo-pipe writes goes through :func:`atomic_output`: the content is
written to a hidden temporary file beside the output, which is renamed over it only
when complete. A failure removes the temporary file and leaves any earlier output
untouched; the error names the output as the user gave it (:class:`OutputError`,
:class:`DiskFullError` for a full disk or quota).

A writer killed outright (SIGKILL, power loss) cannot remove its temporary file, and
the kernel cannot do it either: HDF5 opens files by name, so ``O_TMPFILE`` is out.
Temporary names therefore say whose they are, ``.NAME.dp-HOST-PID-START-XXXXXX.tmp``
(HOST: a hash of the host name, PID and START: the writer's process id and start
time), and the next write of the same output removes the ones left by writers that
are dead: same host, same owner, and no process with that pid and start time
(:func:`remove_stale_temps`). Files of other hosts, other users or live writers, and
names without the marker, are never touched.
"""
import contextlib
import errno
import os
import stat

from damo_pipe.errors import DiskFullError, OutputError, RecordFormatError

#: errno values that mean "the disk (or the user's quota) is full"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

_MARK = ".dp-"
_SUFFIX = ".tmp"
_RAND = "abcdefghijklmnopqrstuvwxyz0123456789"


def _host_tag():
    import zlib
    return "%08x" % (zlib.crc32(os.uname().nodename.encode("utf-8", "replace")) & 0xFFFFFFFF)


def _start_time(pid):
    """The start time of process ``pid`` (clock ticks since boot, /proc/PID/stat field
    22), None when it does not exist; -1 when /proc cannot tell."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        if not os.path.isdir("/proc/self"):
            return -1
        return None
    except OSError:
        return -1
    try:
        return int(text.rsplit(b")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return -1


def _alive(pid, start):
    """Is the process that made a temporary name (pid, start time) still running?
    Any doubt counts as alive."""
    now = _start_time(pid)
    if now is None:
        return False
    if now == -1 or start == 0:     # no /proc (here or at the writer's): the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True
    return now == start


def temp_name(path):
    """A fresh temporary name beside ``path`` carrying this process's marker."""
    import random
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    start = _start_time(os.getpid())
    rand = "".join(random.choice(_RAND) for _ in range(6))
    return os.path.join(directory, ".%s%s%s-%d-%d-%s%s" % (
        base, _MARK, _host_tag(), os.getpid(), start if start and start > 0 else 0, rand,
        _SUFFIX))


def _parse_temp(name, base):
    """(host, pid, start) of a temporary name made for output ``base`` (or for one of
    its temporary files, e.g. the one an archive written to a scratch file gets), or
    None."""
    if not name.startswith(".") or not name.endswith(_SUFFIX):
        return None
    inner, mark, tail = name[1:-len(_SUFFIX)].rpartition(_MARK)
    parts = tail.split("-")
    if not mark or len(parts) != 4 or len(parts[0]) != 8 or len(parts[3]) != 6:
        return None
    if inner != base and _parse_temp(inner, base) is None:
        return None
    try:
        int(parts[0], 16)
        return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        return None


def remove_stale_temps(path):
    """Remove the temporary files of output ``path`` left by dead writers of this host
    and user (module docstring). Returns the paths removed; never raises."""
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    host = None
    uid = os.geteuid()
    for entry in entries:
        parsed = _parse_temp(entry.name, base)
        if parsed is None:
            continue
        if host is None:
            host = _host_tag()
        t_host, pid, start = parsed
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if t_host != host or st.st_uid != uid or not stat.S_ISREG(st.st_mode):
            continue
        if pid == os.getpid() or _alive(pid, start):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(entry.path)
    return removed


def _create_temp(path):
    """Create (0600) and return a fresh temporary file beside ``path``."""
    for _ in range(100):
        tmp = temp_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", path)


def output_error(exc, path):
    """The OutputError that an OSError raised while writing output ``path`` means."""
    path = os.fspath(path)
    code = getattr(exc, "errno", None)
    if code in DISK_FULL_ERRNOS:
        return DiskFullError(path)
    directory = os.path.dirname(os.path.abspath(path))
    if code in (errno.ENOENT, errno.ENOTDIR) and not os.path.isdir(directory):
        return OutputError("cannot write %s: no such directory %s" % (path, directory), path)
    reason = os.strerror(code) if code else str(exc)
    return OutputError("cannot write %s: %s" % (path, reason[:1].lower() + reason[1:]), path)


def existing_mode(path):
    """Permission bits of the regular file at ``path`` (not following a symlink), or
    None when there is none."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None


def default_mode():
    """0666 less the umask: the mode a new file gets."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _is_disk_full(exc):
    if isinstance(exc, DiskFullError):
        return True
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    return False


def _relocated(exc, tmp, path):
    """``exc`` naming the output instead of the temporary name, or None when it does
    not name the temporary file."""
    named = getattr(exc, "path", None)
    if named is None or os.path.abspath(named) != os.path.abspath(tmp):
        return None
    if isinstance(exc, RecordFormatError):
        new = type(exc).__new__(type(exc))
        RecordFormatError.__init__(new, exc.reason, path=path, offset=exc.offset, line=exc.line)
        return new
    if isinstance(exc, OutputError):
        return OutputError(str(exc).replace(tmp, path), path)
    return None


@contextlib.contextmanager
def atomic_output(path, mode=None):
    """Yield a temporary path beside ``path``; on success give it ``mode`` (default: the
    mode of the regular file ``path`` replaces, else 0666 less the umask) and rename it
    to ``path``; on any error remove it.

    A full disk (ENOSPC, EDQUOT, :class:`DiskFullError`) anywhere inside becomes
    ``DiskFullError(path)``; a missing directory or an unwritable one an
    :class:`OutputError` naming ``path``. Stale temporary files of ``path`` are removed
    first (module docstring). A symlink at ``path`` is replaced, never written through.
    """
    path = os.fspath(path)
    remove_stale_temps(path)
    try:
        tmp = _create_temp(path)
    except OSError as e:
        raise output_error(e, path) from None
    try:
        yield tmp
        if mode is None:
            mode = existing_mode(path)
        if mode is None:
            mode = default_mode()
        try:
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except OSError as e:
            raise output_error(e, path) from None
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if _is_disk_full(e):
            raise DiskFullError(path) from None
        moved = _relocated(e, tmp, path)
        if moved is not None:
            raise moved from None
        raise


@contextlib.contextmanager
def scratch_file(near):
    """A temporary file beside ``near`` (marked like :func:`atomic_output`'s, so that a
    killed run's copy is cleaned up by the next write of ``near``), removed at exit."""
    near = os.fspath(near)
    remove_stale_temps(near)
    try:
        tmp = _create_temp(near)
    except OSError as e:
        raise output_error(e, near) from None
    try:
        yield tmp
    except BaseException as e:
        if _is_disk_full(e):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise DiskFullError(near) from None
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
