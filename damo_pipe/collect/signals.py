"""Signal handling of recordings: end the loop cleanly on SIGINT/SIGTERM/SIGHUP.

:class:`StopFlag` turns the first signal into a flag the record loop polls (so that the
clean-up of a :class:`~damo_pipe.collect.recording.Recording` runs); :class:`SigtermExit`
turns SIGTERM into ``SystemExit(143)`` for simpler loops that rely on ``finally`` blocks
(a standalone tracer). Both only act in the main thread and restore what they replaced.
:func:`parent_death_signal` makes a child process (perf) get a signal when we die.
"""
from __future__ import annotations

import signal
import threading


class StopFlag:
    """SIGINT/SIGTERM/SIGHUP set a flag (the loop ends, cleanup runs); a second signal raises."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for s in self.SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._handler)
            except ValueError:   # not the main thread
                pass
        return self

    def _handler(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __call__(self):
        return self.signum is not None

    def shield(self):
        """Ignore further signals (during cleanup)."""
        for s in self._old:
            signal.signal(s, signal.SIG_IGN)

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


class SigtermExit:
    """Turn SIGTERM into SystemExit(143) while installed (so ``finally`` blocks run).

    Installs itself only in the main thread and only when SIGTERM has its default action
    (a :class:`StopFlag` or the embedding program's own handler wins).
    """

    def __init__(self):
        self.installed = False
        self.previous = None

    def install(self):
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        self.previous = signal.signal(signal.SIGTERM, _raise_exit)
        self.installed = True

    def uninstall(self):
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous)
            self.installed = False


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def parent_death_signal(sig):
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``sig`` when the thread
    that started it dies (Linux ``prctl(PR_SET_PDEATHSIG)``; best effort elsewhere), so
    that a SIGKILLed collector leaves no perf running and perf still writes its file."""
    def preexec():
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(sig), 0, 0, 0)
        except Exception:  # noqa: BLE001 - best effort
            pass
    return preexec
