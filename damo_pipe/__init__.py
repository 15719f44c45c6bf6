"""damo-pipe: fast, durable, analysable archives of Linux DAMON monitoring data."""

__version__ = "0.1.0"

from damo_pipe.errors import (  # noqa: E402
    ArchiveError,
    DamoPipeError,
    RecordFormatError,
    ReportError,
)

__all__ = ["__version__", "DamoPipeError", "RecordFormatError", "ArchiveError", "ReportError"]
