"""Type stubs of the facade module _fastparse.pyx (re-exports of the per-format kernels)."""
from damo_pipe.formats._binary_kernels import binary_scan as binary_scan
from damo_pipe.formats._json_kernels import json_regions_scan as json_regions_scan
from damo_pipe.formats._json_kernels import json_regions_text as json_regions_text
from damo_pipe.formats._trace_kernels import trace_scan as trace_scan

__all__ = ["binary_scan", "trace_scan", "json_regions_scan", "json_regions_text"]
