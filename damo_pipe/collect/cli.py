# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion may run this command)
"""``damo-collect``: run DAMON monitoring and record it into an HDF5 archive."""
import sys

from damo_pipe._cli_common import build_parser, run_main, single_threaded_blas

DESCRIPTION = """\
Drive DAMON through sysfs (and optionally its tracepoints) and append snapshots to an
HDF5 archive. Never touches a kdamond it did not create.

examples:
  damo-collect record -o app.h5 --target_pid 1234 --timeout 60
  damo-collect record -o app.h5 -- ./my_workload --size 1G
  damo-collect monitor --count 3 -- ./my_workload --size 1G
  damo-collect start --ops paddr && damo-collect snapshot && damo-collect stop
"""

COMMANDS = [
    ("record", "record"),
    ("monitor", "monitor"),
    ("start", "start"),
    ("stop", "stop"),
    ("status", "status"),
    ("snapshot", "snapshot"),
]


def available_commands():
    import importlib.util
    return [(n, m) for n, m in COMMANDS
            if importlib.util.find_spec("damo_pipe.collect.commands." + m) is not None]


def main(argv=None) -> int:
    single_threaded_blas()
    parser = build_parser("damo-collect", DESCRIPTION, available_commands(),
                          "damo_pipe.collect.commands")
    return run_main(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
