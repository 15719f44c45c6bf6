"""The one error tree of damo-pipe.

Library code raises these; only the CLIs' ``main()`` print them and choose exit codes.
"""


class DamoPipeError(Exception):
    """Base of every error damo-pipe raises on purpose."""

    exit_code = 1


class UsageError(DamoPipeError, ValueError):
    """A command line or argument combination that cannot be carried out."""

    exit_code = 2


class EngineError(UsageError):
    """An unknown engine name, or the Cython engine asked for but not built."""


class MissingExtraError(DamoPipeError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names
    the extra to install (``pip install 'damo-pipe[analyze]'``). An ImportError too, so
    that ``except ImportError`` in a notebook catches it."""


class RecordFormatError(DamoPipeError, ValueError):
    """An input file is not a valid record of the format it claims to be.

    Carries the file name and, where known, the byte offset or line number so that
    the message points at the exact place.
    """

    def __init__(self, message, path=None, offset=None, line=None):
        self.reason = message
        self.path = None if path is None else str(path)
        self.offset = offset
        self.line = line
        super().__init__(self._compose())

    def _compose(self):
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.line is not None:
            where.append("line %d" % self.line)
        if self.offset is not None:
            where.append("byte offset %d" % self.offset)
        return "%s: %s" % (", ".join(where), self.reason) if where else self.reason

    def located(self, path=None, offset=None, line=None):
        """Return a copy with missing location fields filled in."""
        return RecordFormatError(
            self.reason,
            path=self.path if self.path is not None else path,
            offset=self.offset if self.offset is not None else offset,
            line=self.line if self.line is not None else line,
        )


class ArchiveError(RecordFormatError):
    """An HDF5 archive cannot be opened, is of an unknown version, or is damaged."""


class OutputError(DamoPipeError):
    """An output file cannot be written (missing directory, permission, full disk).

    ``path`` is the output as the user named it (never a temporary name)."""

    def __init__(self, message, path=None):
        self.path = None if path is None else str(path)
        super().__init__(message)


class DiskFullError(OutputError):
    """No space left on the device (or quota) while writing an output."""

    def __init__(self, path):
        super().__init__("no space left on device writing %s" % path, path)


class ReportError(DamoPipeError):
    """A report cannot be produced from the given records and options."""


class CollectError(DamoPipeError):
    """Monitoring could not be set up, run or cleaned up."""


class DamonBusyError(CollectError):
    """DAMON is in use by someone else (a kdamond we did not create is running)."""


class DamonUnavailableError(CollectError):
    """The kernel has no usable DAMON (not built in, no sysfs, missing feature, not root)."""


class ExternalToolError(DamoPipeError):
    """A helper program (perf, trace-cmd) is missing or failed."""
