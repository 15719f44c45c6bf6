"""A stand-in for ``perf`` in the unit tests of the CPU-profile recorder and monitor.

``fake_perf.py record [-a | -p PIDS] -k CLOCK --switch-output=signal -o BASE [-e EV]
[-F HZ] [-- CMD...]`` behaves like ``perf record --switch-output=signal``: it writes
"samples" (one text line ``pid tid time_ns symbol dso`` every 5 ms, wall clock) into
BASE; SIGUSR2 finishes BASE as ``BASE.<timestamp>`` and prints perf's ``[ perf record:
Dump FILE ]`` line on stderr; SIGINT/SIGTERM do the same for the last part and exit.
With ``--`` it runs CMD (the recorder's readiness gate) once it "records", and kills it
at the end, as perf does. ``script -i FILE ...`` prints the samples the way ``perf
script --ns -F pid,tid,time,ip,sym,dso`` does; ``report -i FILE --stdio`` prints a
perf-report-like table.

Environment: FAKE_PERF_LOG (file: one line per event: started, ready, signal names,
exit), FAKE_PERF_STARTUP (seconds before the SIGUSR2 handler is installed and the
recording starts; SIGUSR2 before that kills it, like perf), FAKE_PERF_DIE_AFTER
(seconds of recording, then "fake perf: crashed" on stderr and exit 1, BASE left
unfinished), FAKE_PERF_SYMBOL (default hot_loop).
"""
import os
import signal
import struct
import subprocess
import sys
import time

#: an empty perf.data header (PERFILE2, no sections, no features) that the files
#: written here start with, so that damo-pipe's perf.data check lets them through;
#: the text samples follow it on their own lines
PERF_HEADER = b"PERFILE2" + struct.pack("<QQ", 104, 0) + bytes(48 + 32)


def empty_perf_data():
    """The bytes of a perf.data file with no samples, for tests that need a profile
    file to exist and pass damo-pipe's header check."""
    return PERF_HEADER + b"\n"


def _new_part(path):
    f = open(path, "w")
    f.write(PERF_HEADER.decode("ascii") + "\n")
    return f


def _sample_lines(path):
    with open(path, encoding="ascii", errors="replace") as f:
        for line in f:
            if not line.startswith("PERFILE2"):
                yield line


def log(event):
    path = os.environ.get("FAKE_PERF_LOG")
    if path:
        with open(path, "a") as f:
            f.write("%s %d\n" % (event, os.getpid()))


def record(argv):
    base = argv[argv.index("-o") + 1]
    cmd = argv[argv.index("--") + 1:] if "--" in argv else None
    pids = argv[argv.index("-p") + 1].split(",") if "-p" in argv else [str(os.getpid())]
    symbol = os.environ.get("FAKE_PERF_SYMBOL", "hot_loop")
    log("started")
    state = {"stop": None, "switch": 0}
    signal.signal(signal.SIGINT, lambda s, f: state.update(stop=s))
    signal.signal(signal.SIGTERM, lambda s, f: state.update(stop=s))
    time.sleep(float(os.environ.get("FAKE_PERF_STARTUP", "0")))

    def on_usr2(s, f):
        state["switch"] += 1
    signal.signal(signal.SIGUSR2, on_usr2)
    out = _new_part(base)
    child = subprocess.Popen(cmd, close_fds=False) if cmd else None
    log("ready")
    die_after = os.environ.get("FAKE_PERF_DIE_AFTER")
    t0 = time.monotonic()
    seq = 0

    def dump():
        nonlocal out, seq
        out.close()
        seq += 1
        name = "%s.%s%02d" % (base, time.strftime("%Y%m%d%H%M%S"), seq % 100)
        os.rename(base, name)
        sys.stderr.write("[ perf record: dump data: Woken up 1 times ]\n"
                         "[ perf record: Dump %s ]\n" % name)
        sys.stderr.flush()
        out = _new_part(base)

    while state["stop"] is None:
        if die_after is not None and time.monotonic() - t0 > float(die_after):
            out.flush()
            sys.stderr.write("fake perf: crashed\n")
            log("crashed")
            if child is not None:
                child.kill()
            os._exit(1)
        for p in pids:
            out.write("%s %s %d %s /usr/bin/fake\n" % (p, p, time.time_ns(), symbol))
        out.flush()
        if state["switch"]:
            state["switch"] -= 1
            log("SIGUSR2")
            dump()
        time.sleep(0.005)
    log(signal.Signals(state["stop"]).name)
    dump()
    out.close()
    os.unlink(base)
    sys.stderr.write("[ perf record: Captured and wrote 0.001 MB %s.<timestamp> ]\n" % base)
    if child is not None and child.poll() is None:
        child.terminate()
        child.wait()
    log("exit")
    return 0


def script(argv):
    path = argv[argv.index("-i") + 1]
    for line in _sample_lines(path):
        pid, tid, t, sym, dso = line.split()
        t = int(t)
        sys.stdout.write("%8s/%-8s %d.%09d:  %x %s (%s)\n"
                         % (pid, tid, t // 10 ** 9, t % 10 ** 9, 0x401000, sym, dso))
    return 0


def report(argv):
    path = argv[argv.index("-i") + 1]
    counts = {}
    for line in _sample_lines(path):
        pid, tid, t, sym, dso = line.split()
        counts[sym] = counts.get(sym, 0) + 1
    total = sum(counts.values()) or 1
    out = ["# To display the perf.data header info, please use --header/--header-only options.",
           "#", "#", "# Total Lost Samples: 0", "#",
           "# Samples: %d  of event 'cpu-clock'" % total, "# Event count (approx.): %d" % total,
           "#", "# Overhead  Command  Shared Object  Symbol",
           "# ........  .......  .............  ......", "#"]
    for sym, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        out.append("   %6.2f%%  fake     fake           [.] %s" % (100.0 * n / total, sym))
    out += ["", "", "#", "# (Tip: fake)", "#"]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def main(argv):
    sub = argv[0] if argv else ""
    if sub == "record":
        return record(argv[1:])
    if sub == "script":
        return script(argv[1:])
    if sub == "report":
        return report(argv[1:])
    sys.stderr.write("fake perf: unsupported %r\n" % sub)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
