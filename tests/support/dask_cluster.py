"""Helpers to start a real local dask cluster (``dask scheduler`` / ``dask worker``
processes) for the batch tests and the fleet benchmark."""
import socket
import time


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, deadline):
    """Wait until the scheduler process ``proc`` listens on ``port`` (monotonic
    ``deadline``); RuntimeError when it exits first, TimeoutError at the deadline."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("dask scheduler exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("scheduler did not listen on %d" % port)
