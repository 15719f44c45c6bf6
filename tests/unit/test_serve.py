"""``damo-analyze serve``: commands run in a real resident server (forked children on a
Unix socket) print the same bytes and exit codes as local runs, in the caller's
directory, environment and streams; unsafe sockets, stale code and a second server are
refused; signals reach the command; --detach/--status/--stop/--idle_timeout work."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from damo_pipe.analyze import resident
from damo_pipe.data import sample_path

CLI = [sys.executable, "-m", "damo_pipe.analyze.cli"]


def _env(sock):
    return dict(os.environ, DAMO_PIPE_SERVER=str(sock) if sock else "off")


def run(args, sock, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run(CLI + list(args), capture_output=True, env=_env(sock), **kw)


def status(sock):
    """(pid, commands served) of the server at sock, or None."""
    try:
        return resident.request(str(sock), resident.PING)
    except resident.ServerRefused:
        return None


def private_dir(tmp_path, name="run"):
    d = tmp_path / name
    d.mkdir(mode=0o700)
    os.chmod(d, 0o700)
    return d


def start_foreground(sock, *extra):
    p = subprocess.Popen(CLI + ["serve", "--socket", str(sock), *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env(None))
    deadline = time.monotonic() + 60
    while status(sock) is None:
        if p.poll() is not None or time.monotonic() > deadline:
            out, err = p.communicate(timeout=10)
            raise AssertionError("server did not start: rc=%s %s" % (p.returncode, err))
        time.sleep(0.05)
    return p


def stop(p, sock):
    if status(sock) is not None:
        resident.request(str(sock), resident.STOP)
    try:
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        p.stdout.close()
        p.stderr.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = private_dir(tmp_path_factory.mktemp("serve"))
    sock = d / "analyze.sock"
    p = start_foreground(sock)
    yield sock
    stop(p, sock)


CASES = [
    ["info", "SAMPLE"],
    ["info", "--json", "SAMPLE"],
    ["report", "wss", "--input", "SAMPLE", "--range", "0", "101", "10"],
    ["report", "heatmap", "--input", "SAMPLE", "--output", "raw", "--resol", "8", "8"],
    ["report", "access", "--input", "SAMPLE"],
    ["report", "nr_regions", "--input", "SAMPLE"],
    ["info", "/nonexistent/record.h5"],                      # an error: rc 1, one line
    ["report", "wss", "--input", "SAMPLE", "--no_such_option"],  # usage: rc 2
    ["--version"],
    ["report", "--help"],
]


@pytest.mark.parametrize("argv", CASES, ids=lambda a: " ".join(a)[:40])
def test_served_command_prints_what_a_local_run_prints(server, argv):
    argv = [str(sample_path()) if a == "SAMPLE" else a for a in argv]
    before = status(server)[1]
    served = run(argv, server)
    local = run(argv, None)
    assert status(server)[1] == before + 1, "the command did not go through the server"
    assert served.returncode == local.returncode
    assert served.stdout == local.stdout
    assert served.stderr == local.stderr
    assert local.stdout or local.stderr


def test_served_command_runs_in_the_callers_directory_and_umask(server, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(sample_path(), work / "in.h5")
    before = status(server)[1]
    code = ("import os, sys; os.umask(0o077); sys.argv[0] = 'damo-analyze'; "
            "from damo_pipe.analyze.cli import console_main; sys.exit(console_main())")
    r = subprocess.run([sys.executable, "-c", code, "convert", "in.h5", "out.json"],
                       cwd=work, env=_env(server), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert status(server)[1] == before + 1
    out = work / "out.json"
    assert out.exists()
    assert out.stat().st_mode & 0o777 == 0o600          # the caller's umask, not the server's
    local = run(["convert", str(work / "in.h5"), str(tmp_path / "local.json")], None)
    assert local.returncode == 0
    assert out.read_bytes() == (tmp_path / "local.json").read_bytes()


def test_served_command_sees_the_callers_environment(server):
    # COLUMNS sets the width the help is wrapped to: a served --help follows the caller's
    def help_text(columns, sock):
        r = subprocess.run(CLI + ["report", "wss", "--help"], capture_output=True,
                           env=dict(_env(sock), COLUMNS=str(columns)), timeout=120)
        assert r.returncode == 0
        return r.stdout

    narrow, wide = help_text(50, server), help_text(200, server)
    assert narrow != wide
    assert narrow == help_text(50, None)
    assert wide == help_text(200, None)


def test_output_into_a_closed_pipe_ends_quietly(server):
    p = subprocess.Popen(CLI + ["report", "access", "--input", str(sample_path())],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(server))
    first = p.stdout.readline()
    p.stdout.close()
    rc = p.wait(timeout=60)
    err = p.stderr.read()
    p.stderr.close()
    assert first
    assert rc == 0
    assert b"Traceback" not in err


def test_ctrl_c_reaches_the_served_command(server, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)            # opening it for reading blocks: a command that waits
    p = subprocess.Popen(CLI + ["info", str(fifo)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=_env(server))
    before = status(server)[1]
    deadline = time.monotonic() + 30
    while status(server)[1] == before and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert b"interrupted" in err


def test_stale_code_is_refused_and_the_server_stops(tmp_path):
    sock = private_dir(tmp_path) / "a.sock"
    p = start_foreground(sock)
    try:
        mine = resident.code_fingerprint()
        parts = mine.split(b"\x1f")
        other_install = b"\x1f".join([parts[0] + b"-elsewhere"] + parts[1:])
        edited = b"\x1f".join(parts[:4] + [b"1"])
        argv = ["info", str(sample_path())]
        # another interpreter or install: refused (the caller runs locally), server stays
        assert resident.forward(argv, path=str(sock), fingerprint=other_install) is None
        assert status(sock) is not None
        # this install, edited since the server started: refused and the server stops
        assert resident.forward(argv, path=str(sock), fingerprint=edited) is None
        p.wait(timeout=30)
        assert not sock.exists()
        assert status(sock) is None
        # and the command line runs locally from then on
        r = run(argv, sock)
        assert r.returncode == 0 and b"snapshots" in r.stdout.lower()
    finally:
        if p.poll() is None:
            p.kill()
        p.stdout.close()
        p.stderr.close()


def test_a_second_server_on_the_same_socket_is_refused(server):
    r = run(["serve", "--socket", str(server)], None)
    assert r.returncode == 1
    assert b"already listens" in r.stderr
    assert status(server) is not None


def test_a_socket_others_can_reach_is_refused(tmp_path):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o755)
    r = run(["serve", "--socket", str(d / "a.sock")], None)
    assert r.returncode == 1
    assert b"mode 755" in r.stderr and b"0700" in r.stderr
    assert not (d / "a.sock").exists()
    # a client does not use a socket in such a directory either
    assert resident.forward(["--version"], path=str(d / "a.sock")) is None


def test_detach_status_stop(tmp_path):
    sock = private_dir(tmp_path) / "a.sock"
    r = run(["serve", "--socket", str(sock), "--detach"], None)
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split(b"(pid ")[1].split(b")")[0])
    try:
        s = run(["serve", "--socket", str(sock), "--status"], None)
        assert s.returncode == 0 and (b"pid %d" % pid) in s.stdout
        assert run(["info", str(sample_path())], sock).returncode == 0
        assert status(sock) == (pid, 1)
        t = run(["serve", "--socket", str(sock), "--stop"], None)
        assert t.returncode == 0 and b"1 commands served" in t.stdout
        deadline = time.monotonic() + 30
        while sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sock.exists()
        n = run(["serve", "--socket", str(sock), "--status"], None)
        assert n.returncode == 1 and b"no server" in n.stderr
    finally:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def test_idle_timeout_ends_the_server(tmp_path):
    sock = private_dir(tmp_path) / "a.sock"
    p = start_foreground(sock, "--idle_timeout", "1")
    try:
        assert p.wait(timeout=30) == 0
        assert not sock.exists()
    finally:
        if p.poll() is None:
            p.kill()
        p.stdout.close()
        p.stderr.close()


def test_socket_path_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv(resident.ENV, raising=False)
    assert resident.configured_socket_path() == str(tmp_path / "damo-pipe" / "analyze.sock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert resident.configured_socket_path() == "/tmp/damo-pipe-%d/analyze.sock" % os.geteuid()
    for off in ("off", "0", "no", "OFF"):
        monkeypatch.setenv(resident.ENV, off)
        assert resident.configured_socket_path() is None
    monkeypatch.setenv(resident.ENV, "/x/y.sock")
    assert resident.configured_socket_path() == "/x/y.sock"


def test_no_server_means_a_local_run(tmp_path):
    sock = private_dir(tmp_path) / "none.sock"
    assert resident.forward(["--version"], path=str(sock)) is None
    r = run(["--version"], sock)
    assert r.returncode == 0 and r.stdout.startswith(b"damo-analyze ")


def _children(pid):
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d))
    return out


def test_a_killed_command_is_an_error_not_a_hang(tmp_path):
    sock = private_dir(tmp_path) / "a.sock"
    server = start_foreground(sock)
    try:
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        p = subprocess.Popen(CLI + ["info", str(fifo)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=_env(sock))
        deadline = time.monotonic() + 30
        while not _children(server.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        children = _children(server.pid)
        assert children, "the command did not reach the server"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 1
        assert b"ended without an exit code" in err
        assert status(sock) is not None          # the server goes on
    finally:
        stop(server, sock)


def test_a_socket_path_too_long_is_one_error_line(tmp_path):
    d = private_dir(tmp_path)
    long_path = d / ("x" * 120 + ".sock")
    r = run(["serve", "--socket", str(long_path)], None)
    assert r.returncode == 1
    assert r.stderr.startswith(b"damo-analyze: error: cannot listen at ")
    assert b"Traceback" not in r.stderr
    assert resident.forward(["--version"], path=str(long_path)) is None


def test_a_caller_with_other_limits_runs_its_command_itself(server):
    """The child would run with the server's limits, groups, capabilities and
    namespaces: a caller whose own differ (here a lower open-files limit) is not served,
    and its command runs locally with the same output."""
    import resource

    def lower_limit():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512) - 1, hard))

    before = status(server)[1]
    argv = ["info", str(sample_path())]
    r = subprocess.run(CLI + argv, capture_output=True, env=_env(server), timeout=120,
                       preexec_fn=lower_limit)
    assert status(server)[1] == before          # not served
    local = run(argv, None)
    assert (r.returncode, r.stdout, r.stderr) == (local.returncode, local.stdout, local.stderr)


def test_peer_ids_name_the_other_end():
    import socket
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert resident.peer_ids(a) == (os.getpid(), os.geteuid(), os.getegid())


def _served_waiting_command(server, tmp_path, **kw):
    """A served `info FIFO` (it blocks opening the FIFO) and its child's pid."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = status(server)[1]
    p = subprocess.Popen(CLI + ["info", str(fifo)], env=_env(server), **kw)
    deadline = time.monotonic() + 30
    while status(server)[1] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return p


def test_sigterm_ends_the_caller_as_it_ends_a_local_command(server, tmp_path):
    p = _served_waiting_command(server, tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == -signal.SIGTERM
    assert b"Traceback" not in err


def test_a_killed_caller_takes_its_command_with_it(tmp_path):
    sock = private_dir(tmp_path) / "a.sock"
    srv = start_foreground(sock)
    try:
        p = _served_waiting_command(sock, tmp_path, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
        children = _children(srv.pid)
        assert children
        p.kill()                      # SIGKILL: it cannot pass anything on
        p.wait(timeout=30)
        # the command held the caller's stderr: it is closed once the command is gone
        import select
        ready, _, _ = select.select([p.stderr], [], [], 30)
        assert ready and p.stderr.read() == b""
        deadline = time.monotonic() + 30
        while any(os.path.exists("/proc/%d" % c) and _state(c) != "Z" for c in children) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(not os.path.exists("/proc/%d" % c) or _state(c) == "Z" for c in children)
        p.stderr.close()
    finally:
        stop(srv, sock)


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_file_at_the_socket_path_is_not_replaced(tmp_path):
    d = private_dir(tmp_path)
    notes = d / "notes.txt"
    notes.write_text("keep me")
    r = run(["serve", "--socket", str(notes)], None)
    assert r.returncode == 1 and b"not a socket" in r.stderr
    assert notes.read_text() == "keep me"


def test_a_trickling_client_does_not_hold_the_server(server):
    """One request must arrive whole within the server's deadline (5 s), however it
    trickles: other commands are served after it."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(server))
    s.send(b"R" + (1000).to_bytes(4, "little"))     # a header announcing 1,000 bytes
    t0 = time.monotonic()
    stop_at = t0 + 12
    try:
        q = subprocess.Popen(CLI + ["--version"], stdout=subprocess.PIPE,
                             env=_env(server))
        while q.poll() is None and time.monotonic() < stop_at:
            try:
                s.send(b"x")                 # then a byte now and then
            except OSError:
                break
            time.sleep(1)
        out, _ = q.communicate(timeout=30)
    finally:
        s.close()
    assert q.returncode == 0 and out.startswith(b"damo-analyze ")
    assert time.monotonic() - t0 < 10


def test_detach_keeps_none_of_the_callers_descriptors(tmp_path):
    sock = private_dir(tmp_path) / "a.sock"
    r_end, w_end = os.pipe()
    try:
        p = subprocess.run(CLI + ["serve", "--socket", str(sock), "--detach"],
                           env=_env(None), capture_output=True, timeout=120,
                           pass_fds=(w_end,))
        assert p.returncode == 0, p.stderr
        os.close(w_end)
        w_end = None
        import select
        ready, _, _ = select.select([r_end], [], [], 10)
        assert ready and os.read(r_end, 1) == b""    # nobody holds the write end
    finally:
        if w_end is not None:
            os.close(w_end)
        os.close(r_end)
        if status(sock) is not None:
            resident.request(str(sock), resident.STOP)
