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
from damo_pipe.errors import DamoPipeError

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
        self._lock_fd = None
        self._own = None       # this process's identity (start), as _peer_problem compares it

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
        self._take_lock()
        # with the lock held, a socket at the path is one a dead server left
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None:
            import stat
            if not stat.S_ISSOCK(st.st_mode):
                raise ServerError("%s exists and is not a socket: not replacing it"
                                  % self.path)
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
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

    def start(self):
        """Listen, take the code's fingerprint (before it is loaded: an edit made
        meanwhile is seen) and this process's identity, then preload the commands.
        Returns the number of modules preloaded."""
        self.bind()
        try:
            self.fingerprint = resident.code_fingerprint()
            self._own = process_identity(os.getpid())
        except OSError as e:
            raise ServerError("cannot read the installed code or /proc: %s" % e) from None
        return preload()

    def _take_lock(self):
        """Hold ``<socket>.lock`` (flock) while serving: two servers starting at once on
        one socket cannot both think it is theirs."""
        import fcntl
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            try:
                pid, _served = resident.request(self.path, resident.PING)
            except resident.ServerRefused:
                raise ServerError("another server is starting at %s" % self.path) from None
            raise ServerError("a server already listens at %s (pid %d); stop it with: "
                              "damo-analyze serve --stop" % (self.path, pid)) from None
        self._lock_fd = fd

    def close(self):
        """Stop listening and remove the socket if it is still ours."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            try:
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
            except OSError:
                pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- loop
    def serve_forever(self):
        """Accept commands (after start()) until --stop, SIGTERM/SIGINT or the idle
        timeout."""

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
            peer_pid, peer_uid, peer_gid = resident.peer_ids(conn)
            kind, payload, fds = _read_request(conn, time.monotonic() + _REQUEST_TIMEOUT)
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
            problem = _peer_problem(self._own, peer_pid, peer_gid)
            if problem is not None:
                # another gid, groups, capabilities, limits, namespace or root: the child
                # would not be the caller's process; the caller runs it itself
                log.info("pid %d runs its command itself: %s", peer_pid, problem)
                resident.send_reply(conn, resident.REPLY_STALE, 0)
                return
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
                _run_child(conn, fds, job, (self._sock, self._lock_fd))
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


#: /proc/PID/status lines that must be the same for the caller and the server
_STATUS_KEYS = ("Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:",
                "CapAmb:", "NoNewPrivs:", "Seccomp:")
_NAMESPACES = ("mnt", "pid", "user", "net", "ipc", "uts")


def process_identity(pid):
    """What a process may do, from /proc: its credentials and capabilities, its resource
    limits, its namespaces and its root directory (OSError when unreadable)."""
    base = "/proc/%d/" % pid
    with open(base + "status") as f:
        status = [ln.strip() for ln in f if ln.startswith(_STATUS_KEYS)]
    with open(base + "limits") as f:
        limits = f.read()
    namespaces = [os.readlink(base + "ns/" + ns) for ns in _NAMESPACES
                  if os.path.exists(base + "ns/" + ns)]
    return {"status": status, "limits": limits, "namespaces": namespaces,
            "root": os.readlink(base + "root")}


def _peer_problem(own, peer_pid, peer_gid):
    """Why the child of this server would not act as the caller would (None if it would):
    only a caller with the server's gid, groups, capabilities, resource limits,
    namespaces and root is served."""
    if peer_gid != os.getegid():
        return "gid %d" % peer_gid
    try:
        peer = process_identity(peer_pid)
    except OSError as e:
        return "its /proc entry cannot be read (%s)" % (e.strerror or e)
    for key, value in own.items():
        if peer[key] != value:
            return "its %s differ" % key
    return None


def _same_install(a, b):
    """Whether two fingerprints name the same interpreter and package directory."""
    pa, pb = a.split(b"\x1f"), b.split(b"\x1f")
    return len(pa) == len(pb) == 5 and pa[0] == pb[0] and pa[3] == pb[3]


def _read_request(conn, deadline):
    """(kind, payload, received fds) of one request; the fds come with its first bytes.
    The whole request must arrive before ``deadline`` (time.monotonic())."""
    header_size = resident._HEADER.size
    conn.settimeout(max(0.001, deadline - time.monotonic()))
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
        if not data:
            raise EOFError
        if len(data) < header_size:
            data += resident._recv_exact(conn, header_size - len(data), deadline)
        kind, length = resident._HEADER.unpack(data)
        if length > resident.MAX_REQUEST:
            raise ValueError("request of %d bytes" % length)
        payload = resident._recv_exact(conn, length, deadline) if length else b""
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


def _run_child(conn, fds, job, inherited):
    """In the forked child: become the caller's command, run it, answer, exit. The pid
    goes out first: a caller that is gone by then never has its command run, and one
    that gets it has handed the command over (no second, local run)."""
    try:
        resident.send_reply(conn, resident.REPLY_PID, os.getpid())
    except BaseException:   # noqa: BLE001 - the caller is gone: nothing to run
        os._exit(1)
    rc = 1
    try:
        for obj in inherited:          # the listening socket and the server's lock
            if hasattr(obj, "close"):
                obj.close()
            elif obj is not None:
                os.close(obj)
        os.setpgid(0, 0)     # Ctrl-C on the server's own terminal does not reach it
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)      # as Python starts
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        _watch_caller(conn)
        os.chdir(job["cwd"])
        os.umask(job["umask"])
        os.environ.clear()
        for key, value in job["env"].items():
            try:
                os.environ[key] = value
            except ValueError:          # a name putenv refuses (empty, with '=')
                pass
        time.tzset()
        try:
            import locale
            locale.setlocale(locale.LC_CTYPE, "")   # as the caller's interpreter started
        except Exception:   # noqa: BLE001 - an unknown locale: keep the server's
            pass
        logging.root.handlers.clear()       # the command's main() sets up its own
        sys.argv = [job["argv0"]] + job["argv"]
        _reopen_stdio(job)
    except BaseException as e:   # noqa: BLE001 - one line, as any command's error
        try:
            os.write(2, ("damo-analyze: error: the resident server could not take the "
                         "command: %s\n" % e).encode("utf-8", "replace"))
        except OSError:
            pass
        _answer_and_exit(conn, 1)
    try:
        rc = _run_command(job["argv"])
    except BaseException:   # noqa: BLE001 - as an uncaught exception ends a process
        try:
            import traceback
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:   # noqa: BLE001
            pass
        rc = 1
    _answer_and_exit(conn, rc)


def _answer_and_exit(conn, rc):
    rc = rc if isinstance(rc, int) and 0 <= rc < 256 else 1
    try:
        resident.send_reply(conn, resident.REPLY_EXIT, rc)
    except BaseException:   # noqa: BLE001
        pass
    os._exit(rc)


def _watch_caller(conn):
    """End this command as the caller ends: when the caller's end of the connection
    closes (it was killed: a local command would have died with it), SIGKILL. The
    caller sends nothing after its request, so any readiness means it is gone."""
    import threading
    fd = conn.fileno()

    def watch():
        import select
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR
                        | getattr(select, "POLLRDHUP", 0))
        while True:
            try:
                if poller.poll():
                    break
            except InterruptedError:
                continue
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="damo-pipe-caller-watch", daemon=True).start()


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
            # hold nothing of the caller's: no other inherited descriptor (a pipe kept
            # open would never see its end), not its working directory
            os.closerange(3, write_end)
            os.closerange(write_end + 1, 65536)
            os.chdir("/")
            server = server_factory()
            try:
                server.start()
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
        import select
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                raise ServerError("the background server did not listen within %g s "
                                  "(pid %d)" % (ready_timeout, pid))
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

