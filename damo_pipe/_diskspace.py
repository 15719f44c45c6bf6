"""Disk space reserved ahead of a writer that must never meet a full disk (HDF5).

HDF5 does not survive a failed write: after ENOSPC its caches stay dirty, every later
flush or close fails again, and the process may crash at exit (a segfault, in
practice). The archive writer therefore never lets HDF5 be the one to find the disk
full. Before handing HDF5 a batch of data it asks :class:`SpaceReservation` for an
upper bound of the bytes the batch (and HDF5's caches and metadata) can add to the
file; the blocks are reserved past the end of the file with
``fallocate(FALLOC_FL_KEEP_SIZE)``, so HDF5's writes into them cannot fail for want of
space, whoever else fills the disk meanwhile. When the blocks cannot be had,
:class:`~damo_pipe.errors.DiskFullError` is raised *before* HDF5 writes anything: the
file stays as consistent as after its last flush. Where ``fallocate`` is not
supported (some network file systems), the free space (``statvfs``) is compared with
the bound instead: the same check, without the guarantee against other writers.
:meth:`SpaceReservation.release` gives the unused blocks back once the file is closed.
"""
import errno
import os

from damo_pipe.errors import DiskFullError

#: fallocate(2) mode: allocate blocks without changing the file size
FALLOC_FL_KEEP_SIZE = 0x01
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _libc_fallocate():
    """libc's fallocate(fd, mode, offset, len) through ctypes, or None."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        func = getattr(libc, "fallocate64", None) or libc.fallocate
    except (OSError, AttributeError, ImportError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    func.restype = ctypes.c_int

    def fallocate(fd, mode, offset, length):
        if func(fd, mode, offset, length) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    return fallocate


class SpaceReservation:
    """Blocks reserved past the end of the file at ``path`` (module docstring).

    ``report_path``: the name a :class:`DiskFullError` gives (default ``path``).
    """

    def __init__(self, path, report_path=None):
        self.path = os.fspath(path)
        self.report_path = os.fspath(report_path) if report_path is not None else self.path
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        self._fallocate = _libc_fallocate()
        self._reserved_end = 0

    def ensure(self, nbytes):
        """Make sure ``nbytes`` more bytes can be written past the file's current end;
        DiskFullError when the device (or quota) cannot hold them."""
        if self._fd is None:
            return
        size = os.fstat(self._fd).st_size
        nbytes = max(0, int(nbytes))
        end = size + nbytes
        if end <= self._reserved_end:
            return
        if self._fallocate is not None:
            try:
                self._fallocate(self._fd, FALLOC_FL_KEEP_SIZE, size, nbytes)
                self._reserved_end = end
                return
            except OSError as e:
                if e.errno in _DISK_FULL:
                    raise DiskFullError(self.report_path) from None
                if e.errno not in _UNSUPPORTED:
                    raise
                self._fallocate = None
        st = os.fstatvfs(self._fd)
        if st.f_bavail * st.f_frsize < end - max(size, self._reserved_end):
            raise DiskFullError(self.report_path)

    def release(self):
        """Give back the blocks reserved past the end of the file (call after the
        writer closed it) and close our descriptor. Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._reserved_end:
                # shrinking frees every block past the new end, reserved ones included
                # (truncating to the same size does not on every file system)
                size = os.fstat(fd).st_size
                os.ftruncate(fd, size + 1)
                os.ftruncate(fd, size)
        except OSError:
            pass
        finally:
            os.close(fd)

    def discard(self):
        """Free every block of the file (its content is lost): for a temporary file that
        is being abandoned after a failed write, so that closing it finds room."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass


def detach_hdf5_file(h5file):
    """Point an open h5py file's descriptor at an anonymous memory file, so that what
    HDF5 still writes (its caches, at close) never reaches the disk: to abandon a file
    after a failed write without HDF5 failing again. On disk the file stays as if its
    writer had been killed at this moment. Returns False when it cannot be done (the
    file driver has no descriptor, no memfd)."""
    try:
        fd = h5file.id.get_vfd_handle()
        if not isinstance(fd, int) or fd < 0:
            return False
        mem = os.memfd_create("damo-pipe-abandoned", os.MFD_CLOEXEC)
    except (AttributeError, OSError, ValueError, TypeError, RuntimeError):
        return False
    try:
        os.dup2(mem, fd, inheritable=False)
    except OSError:
        return False
    finally:
        os.close(mem)
    return True
