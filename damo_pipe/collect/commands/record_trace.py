"""The ``--tracer`` options of ``damo-collect record`` and their translation.

Not a subcommand: ``record`` adds these options with :func:`add_tracer_options` and
turns them into a :class:`~damo_pipe.collect.tracing.TracerOptions` with
:func:`tracer_options`; the tracer itself lives in :mod:`damo_pipe.collect.tracing`.
"""
import argparse

TRACERS = ("none", "tracefs", "perf")


def add_tracer_options(parser):
    """Add --tracer and its options to the ``record`` command's parser."""
    g = parser.add_argument_group("tracepoint recording")
    g.add_argument("--tracer", choices=TRACERS, default="none",
                   help="also stream DAMON tracepoints into the archive: tracefs "
                        "(trace_pipe of a private tracing instance), perf (perf record | "
                        "perf script), none (default: sysfs snapshots only)")
    g.add_argument("--tracefs_root", metavar="DIR", default=None,
                   help="tracefs directory (default: /sys/kernel/tracing, mounted if needed)")
    g.add_argument("--trace_buffer_kb", type=int, metavar="KB", default=None,
                   help="per-CPU trace buffer size in KiB (tracefs; default: unchanged)")
    g.add_argument("--tracefs_mode", choices=("instance", "toplevel"), default="instance",
                   help="instance (default): a private tracing instance, no conflict with "
                        "other tracing users; toplevel: the global buffer, refused when "
                        "tracing is in use, restored afterwards")
    g.add_argument("--trace_damos", action="store_true",
                   help="also record damos_before_apply (regions each DAMOS scheme is about "
                        "to apply to) into separate records; doubles the trace volume with "
                        "damo-collect's catch-all stat scheme")
    g.add_argument("--perf", metavar="PATH", default="perf",
                   help="perf executable for --tracer perf (default: --perf_path, else perf "
                        "in PATH)")
    g.add_argument("--perf_mmap_pages", type=int, metavar="N", default=None,
                   help="perf record -m (smaller = lower latency, more wakeups)")
    g.add_argument("--tracer_state_dir", metavar="DIR", default=None, help=argparse.SUPPRESS)
    return g


def tracer_options(args):
    """TracerOptions from parsed arguments (None for ``--tracer none`` or no such option)."""
    kind = getattr(args, "tracer", "none") or "none"
    if kind == "none":
        return None
    from damo_pipe.collect.tracing import TracerOptions
    return TracerOptions(
        kind=kind, tracefs_root=getattr(args, "tracefs_root", None),
        tracefs_mode=getattr(args, "tracefs_mode", "instance"),
        buffer_kb=getattr(args, "trace_buffer_kb", None),
        state_dir=getattr(args, "tracer_state_dir", None),
        damos=getattr(args, "trace_damos", False),
        perf=getattr(args, "perf_path", None) or getattr(args, "perf", "perf"),
        perf_mmap_pages=getattr(args, "perf_mmap_pages", None))
