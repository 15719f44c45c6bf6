"""Write-then-rename: an output file appears complete or not at all."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_output(path, mode=None):
    """Yield a temporary path beside ``path``; on success give it ``mode`` (default:
    0666 less the umask) and rename it to ``path``; on any error remove it."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
