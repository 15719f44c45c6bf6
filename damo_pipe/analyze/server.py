"""The resident server behind ``damo-analyze serve`` (see damo_pipe/analyze/resident.py
for the protocol and the client, docs/serve.md for users).

The server imports numpy, h5py and damo-pipe's modules once, then accepts commands on
its socket and forks a child for each: the child takes the caller's working directory,
umask, environment, argv and stdin/stdout/stderr, runs ``damo-analyze``'s ``main`` and
sends back the exit code. The server itself never opens an archive and starts no
thread, so every child starts from the same clean state.
"""
import logging
import os
import selectors
import signal
import socket
import sys
import time

from damo_pipe.analyze import resident
from damo_pipe.errors import DamoPipeError, UsageError

log = logging.getLogger(__name__)

#: packages whose modules are imported before serving (what commands import lazily)
_PRELOAD_PACKAGES = ("damo_pipe.archive", "damo_pipe.formats", "damo_pipe.analyze",
                     "damo_pipe.analyze.access", "damo_pipe.analyze.heatmap",
                     "damo_pipe.analyze.commands")
#: top-level modules the commands use
_PRELOAD_MODULES = ("damo_pipe.sources", "damo_pipe.convert", "damo_pipe.model",
                    "damo_pipe.numfmt", "damo_pipe._cli_common")
#: modules not preloaded: their imports start threads or cost much memory for rare use
_NOT_PRELOADED = ("damo_pipe.analyze.server", "damo_pipe.analyze.batch")

#: seconds a connected client has to send its whole request
_REQUEST_TIMEOUT = 5.0


class ServerError(DamoPipeError):
    """The resident server cannot start or serve (the socket, its directory, another
    server already there)."""


def preload():
    """Import what commands import lazily: numpy, h5py, the formats, the archive and the
    reports (not matplotlib or dask, which start threads or hold much memory).
    Returns the number of modules imported."""
    import importlib
    import pkgutil
    import numpy  # noqa: F401
    import damo_pipe.archive
    damo_pipe.archive.preload()     # h5py and the Blosc filter
    for name in _PRELOAD_MODULES:
        importlib.import_module(name)
    count = 0
    for name in _PRELOAD_PACKAGES:
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue
        for info in pkgutil.iter_modules(package.__path__, name + "."):
            if info.name in _NOT_PRELOADED or info.name.endswith("_py"):
                continue
            try:
                importlib.import_module(info.name)
                count += 1
            except ImportError:     # an optional extra not installed
                log.debug("not preloaded: %s", info.name)
    return count


class ResidentServer:
    """A listening socket and the loop that forks a child per command."""

    def __init__(self, path, idle_timeout=None):
        self.path = os.path.abspath(path)
        self.idle_timeout = idle_timeout
        self.fingerprint = None
        self.served = 0
        self._sock = None
        self._inode = None
        self._children = set()
        self._stopping = False

    # -- socket
    def bind(self):
        """Create the private directory if needed and listen on the socket; refuse when
        another server answers there."""
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as e:
            raise ServerError("cannot create %s: %s" % (directory, e.strerror or e)) from None
        problem = resident.private_directory_problem(directory)
        if problem is not None:
            raise ServerError("refusing to serve: %s" % problem)
        if os.path.lexists(self.path):
            try:
                pid, _served = resident.request(self.path, resident.PING)
            except resident.ServerRefused:
                os.unlink(self.path)         # left by a server that died
            else:
                raise ServerError("a server already listens at %s (pid %d); stop it "
                                  "with: damo-analyze serve --stop" % (self.path, pid))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old_umask = os.umask(0o177)
            try:
                sock.bind(self.path)
            finally:
                os.umask(old_umask)
            sock.listen(64)
        except OSError as e:
            sock.close()
            raise ServerError("cannot listen at %s: %s" % (self.path, e.strerror or e)) from None
        self._sock = sock
        self._inode = os.stat(self.path).st_ino

    def close(self):
        """Stop listening and remove the socket if it is still ours."""
        if self._sock is None:
            return
        self._sock.close()
        self._sock = None
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass

    # -- loop
    def serve_forever(self):
        """Accept commands until --stop, SIGTERM/SIGINT or the idle timeout."""
        if self.fingerprint is None:
            self.fingerprint = resident.code_fingerprint()

        def stop(signum, frame):
            self._stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        selector = selectors.DefaultSelector()
        selector.register(self._sock, selectors.EVENT_READ)
        last = time.monotonic()
        try:
            while not self._stopping:
                ready = selector.select(timeout=1.0)
                self._reap()
                if ready:
                    try:
                        conn, _ = self._sock.accept()
                    except InterruptedError:
                        continue
                    except OSError as e:
                        log.warning("accept: %s", e)
                        continue
                    last = time.monotonic()
                    with conn:
                        self._handle(conn)
                elif self.idle_timeout and time.monotonic() - last > self.idle_timeout \
                        and not self._children:
                    log.info("idle for %g s: stopping", self.idle_timeout)
                    break
        finally:
            selector.close()
            self.close()

    def _reap(self):
        for pid in list(self._children):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._children.discard(pid)

    def _handle(self, conn):
        fds = []
        try:
            conn.settimeout(_REQUEST_TIMEOUT)
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            peer_pid, peer_uid = int.from_bytes(creds[0:4], sys.byteorder), \
                int.from_bytes(creds[4:8], sys.byteorder)
            kind, payload, fds = _read_request(conn)
            if peer_uid != os.geteuid():
                log.warning("refused a command of uid %d (pid %d)", peer_uid, peer_pid)
                return
            if kind in (resident.PING, resident.STOP):
                resident.send_reply(conn, resident.REPLY_OK, self.served)
                resident.send_reply(conn, resident.REPLY_OK, os.getpid())
                if kind == resident.STOP:
                    log.info("stopped by pid %d", peer_pid)
                    self._stopping = True
                return
            if kind != resident.RUN or len(fds) != 3:
                log.warning("malformed request from pid %d", peer_pid)
                return
            job = _decode_run(payload)
            if job["fingerprint"] != self.fingerprint:
                resident.send_reply(conn, resident.REPLY_STALE, 0)
                if _same_install(job["fingerprint"], self.fingerprint):
                    log.warning("the installed code changed since this server started: "
                                "stopping (the next command runs without it)")
                    self._stopping = True
                return
            conn.settimeout(None)
            pid = os.fork()
            if pid == 0:        # the child never returns
                _run_child(conn, fds, job, self._sock)
            self._children.add(pid)
            self.served += 1
            log.info("pid %d runs %s for pid %d", pid, job["argv"], peer_pid)
        except (OSError, EOFError, ValueError) as e:
            log.warning("dropped a request: %s", e)
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass


def _same_install(a, b):
    """Whether two fingerprints name the same interpreter and package directory."""
    pa, pb = a.split(b"\x1f"), b.split(b"\x1f")
    return len(pa) == len(pb) == 5 and pa[0] == pb[0] and pa[3] == pb[3]


def _read_request(conn):
    """(kind, payload, received fds) of one request; the fds come with its first bytes."""
    header_size = resident._HEADER.size
    data, ancdata, flags, _addr = conn.recvmsg(header_size, socket.CMSG_SPACE(3 * 4))
    fds = []
    for level, type_, cdata in ancdata:
        if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
            import array
            a = array.array("i")
            a.frombytes(cdata[:len(cdata) - len(cdata) % a.itemsize])
            fds.extend(a)
    try:
        if flags & socket.MSG_CTRUNC:
            raise ValueError("too many file descriptors")
        if len(data) < header_size:
            data += resident._recv_exact(conn, header_size - len(data))
        kind, length = resident._HEADER.unpack(data)
        if length > resident.MAX_REQUEST:
            raise ValueError("request of %d bytes" % length)
        payload = resident._recv_exact(conn, length) if length else b""
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return kind, payload, fds


def _decode_run(payload):
    fields = payload.split(b"\0")
    if len(fields) < 8:
        raise ValueError("short request")
    nargs = int(fields[6])
    if nargs < 0 or 7 + 1 + nargs > len(fields):
        raise ValueError("bad argument count")
    fsdecode = os.fsdecode
    env = {}
    for item in fields[8 + nargs:]:
        key, eq, value = item.partition(b"=")
        if eq:
            env[fsdecode(key)] = fsdecode(value)
    return {"fingerprint": fields[0], "cwd": fsdecode(fields[1]), "umask": int(fields[2]),
            "encoding": fields[3].decode(), "errors": fields[4].decode(),
            "stderr_errors": fields[5].decode(), "argv0": fsdecode(fields[7]),
            "argv": [fsdecode(a) for a in fields[8:8 + nargs]], "env": env}


def _run_child(conn, fds, job, listening):
    """In the forked child: become the caller's command, run it, answer, exit."""
    rc = 1
    try:
        listening.close()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD,
                       signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)      # as Python starts
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(job["cwd"])
        os.umask(job["umask"])
        os.environ.clear()
        os.environ.update(job["env"])
        time.tzset()
        try:
            import locale
            locale.setlocale(locale.LC_CTYPE, "")   # as the caller's interpreter started
        except Exception:   # noqa: BLE001 - an unknown locale: keep the server's
            pass
        logging.root.handlers.clear()       # the command's main() sets up its own
        sys.argv = [job["argv0"]] + job["argv"]
        _reopen_stdio(job)
        resident.send_reply(conn, resident.REPLY_PID, os.getpid())
        rc = _run_command(job["argv"])
    except BaseException:   # noqa: BLE001 - the child must answer and exit whatever happens
        try:
            import traceback
            traceback.print_exc()
        except BaseException:   # noqa: BLE001
            pass
    finally:
        try:
            resident.send_reply(conn, resident.REPLY_EXIT, rc)
        except BaseException:   # noqa: BLE001
            pass
        os._exit(rc if isinstance(rc, int) and 0 <= rc < 256 else 1)


def _reopen_stdio(job):
    import io
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                 encoding=job["encoding"], errors="strict")
    out = io.FileIO(1, "w", closefd=False)
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(out), encoding=job["encoding"],
                                  errors=job["errors"], line_buffering=out.isatty())
    err = io.FileIO(2, "w", closefd=False)
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(err), encoding=job["encoding"],
                                  errors=job["stderr_errors"], line_buffering=True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def _run_command(argv):
    """``damo-analyze argv`` as the console script runs it, ending like a process does:
    non-daemon threads joined, exit handlers run (they close HDF5 files), streams
    flushed (a full disk on stdout is an error, as in exit_fast)."""
    import atexit
    import threading
    from damo_pipe.analyze.cli import main
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    rc = rc if isinstance(rc, int) else 1
    for t in threading.enumerate():
        if t is not threading.main_thread() and not t.daemon:
            t.join()
    atexit._run_exitfuncs()
    from damo_pipe._cli_common import flush_stdio
    return flush_stdio(rc)


def detach_and_serve(server_factory, ready_timeout=120.0):
    """Run the server in a new session in the background; return once it listens (the
    parent prints where) or raise ServerError with the reason it could not start."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 1
        try:
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.close(devnull)
            server = server_factory()
            try:
                server.bind()
                preload()
                server.fingerprint = resident.code_fingerprint()
                os.write(write_end, b"ok %d" % os.getpid())
                os.close(write_end)
                write_end = None
                server.serve_forever()
                code = 0
            finally:
                server.close()
        except BaseException as e:   # noqa: BLE001 - tell the parent, then leave
            if write_end is not None:
                try:
                    os.write(write_end, str(e).encode("utf-8", "replace")[:4000])
                except OSError:
                    pass
        os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + ready_timeout
    chunks = []
    try:
        while time.monotonic() < deadline:
            chunk = os.read(read_end, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    message = b"".join(chunks).decode("utf-8", "replace")
    if message.startswith("ok "):
        return int(message[3:])
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    raise ServerError(message or "the background server ended before it listened")


def check_idle_timeout(value):
    if value is not None and value <= 0:
        raise UsageError("--idle_timeout must be positive, not %g" % value)
    return value
