# cython: language_level=3
"""Facade of the parsing kernels, kept at this path because the design card requires a
top-level ``damo_pipe._fastparse`` module.

It only re-exports the def functions of the per-format kernel modules, so that
``from damo_pipe import _fastparse; _fastparse.binary_scan(...)`` keeps working.  Code
inside the package imports the per-format modules directly, never this facade:

* ``damo_pipe.formats._binary_kernels``: :func:`binary_scan`
* ``damo_pipe.formats._trace_kernels``: :func:`trace_scan`
* ``damo_pipe.formats._json_kernels``: :func:`json_regions_scan`, :func:`json_regions_text`
"""
from damo_pipe.formats._binary_kernels import binary_scan
from damo_pipe.formats._json_kernels import json_regions_scan, json_regions_text
from damo_pipe.formats._trace_kernels import trace_scan

__all__ = ["binary_scan", "trace_scan", "json_regions_scan", "json_regions_text"]
