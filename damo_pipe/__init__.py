"""damo-pipe: fast, durable, analysable archives of Linux DAMON monitoring data.

``damo_pipe.open(path)`` opens a recording for notebooks and scripts
(:class:`damo_pipe.api.Recording`, docs/api.md); it is imported on first use, so that
the command lines start fast.
"""

__version__ = "0.1.0"

from damo_pipe.errors import (  # noqa: E402
    ArchiveError,
    DamoPipeError,
    RecordFormatError,
    ReportError,
)

__all__ = ["__version__", "DamoPipeError", "RecordFormatError", "ArchiveError", "ReportError",
           "open", "Recording"]


def __getattr__(name):
    if name in ("open", "Recording"):
        from damo_pipe import api
        return getattr(api, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
