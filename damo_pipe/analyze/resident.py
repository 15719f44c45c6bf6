"""The resident ``damo-analyze serve`` process and the client side of every command.

A command's own work on a short window of an archive takes 15-40 ms, but a fresh
interpreter spends 75-90 ms importing numpy and h5py before it can start (on a small
virtualised host). ``damo-analyze serve`` pays that once: it imports them (and the
commands' modules), listens on a Unix socket of its user, and forks a child per
command. The console script, before importing anything heavy, looks for that socket
and, if a server of the same code answers, hands it the command line, the working
directory, the environment and its own stdin/stdout/stderr (passed as file
descriptors, SCM_RIGHTS), then waits for the exit code. The child writes straight to
the caller's terminal, pipe or file, so the output is the bytes a local run prints.

Only the stdlib is imported here (the client runs before numpy is imported). Nothing
is shared between commands: each child is a fresh fork of the idle server.

Safety: the socket lives in a directory of mode 0700 owned by the user, and the client
checks that the server is of its uid (SO_PEERCRED). The server serves only callers with
its own credentials, capabilities, limits and namespaces (server.process_identity) and
its own code (code_fingerprint); any other caller runs its command locally, and a
server whose installed code changed stops. ``DAMO_PIPE_SERVER=off`` (or ``0``, ``no``)
skips the server; any other value is the socket's path (docs/serve.md).
"""
import _socket     # not socket.py: its enums and selectors cost ~7 ms per command
import os
import struct
import sys

#: environment variable: the socket path, or off/0/no to run every command locally
ENV = "DAMO_PIPE_SERVER"

_OFF = ("off", "0", "no", "false")

# request kinds
RUN = b"R"
STOP = b"S"
PING = b"P"

# replies: a tag byte, then a signed 64-bit integer
_REPLY = struct.Struct("<cq")
REPLY_PID = b"p"        # the child's pid (the client forwards signals to it)
REPLY_EXIT = b"x"       # the command's exit code
REPLY_STALE = b"s"      # not served (other code or identity): run locally
REPLY_OK = b"k"         # stop / ping answered (value: served commands count)

_HEADER = struct.Struct("<cI")
#: a request's payload above this is refused (an environment is a few KB)
MAX_REQUEST = 1 << 20
#: seconds the client waits for the server to take a command (a stopped or swamped
#: server); then the command fails with a message (it may have started: no local rerun)
ANSWER_TIMEOUT = 30.0


class ServerRefused(Exception):
    """The server at a socket cannot be used (the reason is the message)."""


# ------------------------------------------------------------------ paths and code
def default_socket_path():
    """``$XDG_RUNTIME_DIR/damo-pipe/analyze.sock``, else ``/tmp/damo-pipe-UID/analyze.sock``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        base = os.path.join(runtime, "damo-pipe")
    else:
        base = os.path.join("/tmp", "damo-pipe-%d" % os.geteuid())
    return os.path.join(base, "analyze.sock")


def configured_socket_path(environ=None):
    """The socket the client should try, or None when the user turned the server off."""
    env = os.environ if environ is None else environ
    value = env.get(ENV)
    if value is None or value == "":
        return default_socket_path()
    if value.lower() in _OFF:
        return None
    return value


def private_directory_problem(directory):
    """Why ``directory`` is not a safe home for the socket (None if it is): it must be
    a real directory owned by this user with no group or other access."""
    try:
        st = os.lstat(directory)
    except OSError as e:
        return "%s: %s" % (directory, e.strerror)
    import stat
    if not stat.S_ISDIR(st.st_mode):
        return "%s is not a directory" % directory
    if st.st_uid != os.geteuid():
        return "%s belongs to uid %d, not to this user" % (directory, st.st_uid)
    if st.st_mode & 0o077:
        return "%s is open to other users (mode %o; it must be 0700)" % (
            directory, st.st_mode & 0o777)
    return None


def code_fingerprint():
    """What must match between the server and its caller: the interpreter, damo_pipe's
    version and location, a digest of every module file's path, size and modification
    time (an edit, a copy keeping old times, a deleted module, a reinstall), and the
    installed numpy, h5py and hdf5plugin distributions. Raises OSError when the tree
    cannot be read (a client then runs the command itself)."""
    import _blake2

    import damo_pipe
    root = os.path.dirname(os.path.abspath(damo_pipe.__file__))
    listing = []
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    if name != "__pycache__" and not name.startswith("."):
                        stack.append(entry.path)
                elif name.endswith((".py", ".so", ".pyx", ".pxi", ".pyi")):
                    st = entry.stat(follow_symlinks=False)
                    listing.append("%s\0%d\0%d" % (entry.path, st.st_size, st.st_mtime_ns))
    listing.sort()
    listing.extend(_dependency_dists())
    digest = _blake2.blake2b("\n".join(listing).encode("utf-8", "surrogateescape"),
                             digest_size=16).hexdigest()
    parts = [sys.executable, sys.version, damo_pipe.__version__, root, digest]
    return "\x1f".join(p.replace("\0", " ").replace("\x1f", " ") for p in parts).encode(
        "utf-8", "surrogateescape")


#: distributions whose upgrade changes what a command does
_DEPENDENCIES = ("numpy-", "h5py-", "hdf5plugin-")


def _dependency_dists():
    """The ``.dist-info`` names (they carry the versions) of numpy, h5py and hdf5plugin
    on sys.path, without importing them."""
    found = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        found.extend(n for n in names if n.startswith(_DEPENDENCIES) and n.endswith(
            (".dist-info", ".egg-info")))
    return found


# ------------------------------------------------------------------ wire format
def encode_fields(fields):
    """NUL-free byte strings joined by NUL (argv, environment and paths cannot hold NUL)."""
    return b"\0".join(fields)


def _send_request(sock, kind, payload, fds=()):
    data = _HEADER.pack(kind, len(payload)) + payload
    if fds:
        import array
        sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                      array.array("i", fds))])
    else:
        sent = sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


def _recv_exact(sock, n, deadline=None):
    """``n`` bytes; EOFError if the other side closed first. ``deadline`` (a
    time.monotonic() value): for the whole read, not for each recv (a peer trickling
    bytes cannot hold the reader longer); socket.timeout past it."""
    parts = []
    while n:
        if deadline is not None:
            import time
            left = deadline - time.monotonic()
            if left <= 0:
                raise _socket.timeout("timed out")
            sock.settimeout(left)
        chunk = sock.recv(n)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def read_reply(sock):
    """(tag, value) of the next reply; EOFError if the other side closed."""
    return _REPLY.unpack(_recv_exact(sock, _REPLY.size))


def send_reply(sock, tag, value):
    sock.sendall(_REPLY.pack(tag, value))


# ------------------------------------------------------------------ client side
def peer_ids(sock):
    """(pid, uid, gid) of the process at the other end of a connected Unix socket."""
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return tuple(int.from_bytes(creds[k:k + 4], sys.byteorder, signed=True)
                 for k in (0, 4, 8))


def _connect(path):
    """A socket connected to the server at ``path``: in a private directory, and
    answered by a process of this user (checked after connecting: nothing swapped in
    between the check of the directory and the connection can receive a command)."""
    directory = os.path.dirname(path) or "."
    problem = private_directory_problem(directory)
    if problem is not None:
        raise ServerRefused(problem)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(ANSWER_TIMEOUT)
    try:
        sock.connect(path)
        _pid, uid, _gid = peer_ids(sock)
    except OSError as e:
        sock.close()
        raise ServerRefused("%s: %s" % (path, e.strerror or e))
    if uid != os.geteuid():
        sock.close()
        raise ServerRefused("%s: answered by uid %d, not by this user" % (path, uid))
    return sock


def forward(argv, path=None, fingerprint=None):
    """Run ``damo-analyze argv`` in the resident server, on this process's stdin, stdout
    and stderr. Returns its exit code, or None when no usable server answers or it
    refuses (the caller then runs the command itself: the command has not started).
    Ctrl-C, SIGTERM, SIGHUP and SIGQUIT are passed on to the command; when one ends it,
    this process ends by the same signal, as a local run would."""
    if path is None:
        path = configured_socket_path()
    if path is None or "_ARGCOMPLETE" in os.environ or not os.path.exists(path):
        return None
    payload = _run_request(argv, fingerprint)
    if payload is None:
        return None
    try:
        sock = _connect(path)
    except ServerRefused:
        return None
    try:
        return _forward_on(sock, payload)
    finally:
        sock.close()


def _run_request(argv, fingerprint):
    """The RUN request's payload, or None when the command cannot be handed over."""
    fsencode = os.fsencode
    try:
        cwd = os.getcwd()
        if fingerprint is None:
            fingerprint = code_fingerprint()
    except OSError:
        return None
    umask = os.umask(0o022)
    os.umask(umask)
    streams = [s if s is not None else sys.__stdout__ for s in (sys.stdout, sys.stderr)]
    fields = [fingerprint, fsencode(cwd), b"%d" % umask,
              (getattr(streams[0], "encoding", None) or "utf-8").encode(),
              (getattr(streams[0], "errors", None) or "strict").encode(),
              (getattr(streams[1], "errors", None) or "backslashreplace").encode(),
              b"%d" % len(argv)]
    fields += [fsencode(a) for a in [sys.argv[0] if sys.argv else "damo-analyze"] + argv]
    fields += [fsencode(k) + b"=" + fsencode(v) for k, v in os.environ.items()]
    if any(b"\0" in f for f in fields):
        return None
    return encode_fields(fields)


#: signals a client passes on to its command
_PASSED_ON = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def _forward_on(sock, payload):
    import _signal as signal     # signal.py's enums cost ~2 ms
    state = {"pid": None, "pending": [], "last": None}

    def pass_on(signum, frame):
        state["last"] = signum
        if state["pid"] is None:
            state["pending"].append(signum)   # passed on once the command has a pid
            return
        try:
            os.kill(state["pid"], signum)
        except OSError:
            pass

    previous = {}
    for name in _PASSED_ON:
        signum = getattr(signal, name)
        try:
            previous[signum] = signal.signal(signum, pass_on)
        except (ValueError, OSError):   # not the main thread
            pass
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        try:
            _send_request(sock, RUN, payload, fds=(0, 1, 2))
        except OSError:
            return None     # e.g. a closed stdin (EBADF): nothing was sent
        while True:
            try:
                tag, value = read_reply(sock)
            except _socket.timeout:
                sys.stderr.write("damo-analyze: error: the resident server at %s took no "
                                 "command in %g s (stopped or swamped?); %s=off runs "
                                 "without it\n" % (sock.getpeername(), ANSWER_TIMEOUT, ENV))
                return 1
            except (OSError, EOFError):
                if state["pid"] is None:
                    return None     # the server went away before it forked: nothing ran
                return _ended_without_code(state["last"], previous)
            if tag == REPLY_EXIT:
                return int(value)
            if tag == REPLY_PID and state["pid"] is None:
                state["pid"] = int(value)
                sock.settimeout(None)
                for signum in state["pending"]:
                    pass_on(signum, None)
                state["pending"] = []
            elif state["pid"] is None:
                return None     # refused (other code, another namespace): run locally
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _ended_without_code(last_signal, previous):
    """The command died without an exit code. After a signal passed on to it, end this
    process by that signal (what a shell shows for a local run); else one error line."""
    if last_signal is not None:
        import _signal as signal
        previous.pop(last_signal, None)
        signal.signal(last_signal, signal.SIG_DFL)
        os.kill(os.getpid(), last_signal)
    sys.stderr.write("damo-analyze: error: the command ended without an exit code "
                     "(killed in the resident server)\n")
    return 1


def request(path, kind):
    """Send a PING or STOP to the server at ``path``; returns (server pid, commands served).
    Raises ServerRefused when nothing usable answers there."""
    sock = _connect(path)
    try:
        _send_request(sock, kind, b"")
        tag, served = read_reply(sock)
        _tag, pid = read_reply(sock)
    except (OSError, EOFError) as e:
        raise ServerRefused("%s: no answer (%s)" % (path, e)) from None
    finally:
        sock.close()
    if tag != REPLY_OK:
        raise ServerRefused("%s: unexpected answer" % path)
    return pid, served
