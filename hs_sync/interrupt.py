"""Stopping a run on SIGTERM or SIGINT within seconds, leaving nothing half-done.

`on_signals(...)` (main thread only; elsewhere it does nothing) replaces both
signals' handlers for the length of a run. When one arrives:

- `stopping` is set: the client refuses new requests and abandons a body being
  read, and waits (retry pauses, the request budget) end at once; every worker
  raises `Interrupted`, which no unit catches;
- `on_stop()` runs at once on a watcher thread (the sync closes its HTTP
  connections there, which ends a read blocked on a silent server);
- the main thread gets `Interrupted` as soon as it runs Python again, unwinds
  (the transform discards its building copy), and the run is recorded as
  interrupted;
- if the process has not finished `GRACE_SECONDS` later (the main thread stuck in
  a long database statement), `last_resort()` records and cleans up what it can
  and the process exits.

The watcher learns of the signal through `signal.set_wakeup_fd`, which the C
handler writes to even while the main thread is busy outside Python.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

GRACE_SECONDS = 4.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)

stopping = threading.Event()
_received: list[int] = []


class Interrupted(BaseException):
    """The run was stopped by a signal (a BaseException: no unit or step swallows it)."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process a signal ended."""
        return 128 + self.signum


def check() -> None:
    """Raise Interrupted if a stop was asked for."""
    if stopping.is_set():
        raise Interrupted(_received[0] if _received else signal.SIGINT)


def sleep(seconds: float) -> None:
    """time.sleep that ends (raising Interrupted) as soon as a stop is asked for."""
    if stopping.wait(max(seconds, 0.0)):
        check()


@contextmanager
def on_signals(
    on_stop: Callable[[], None] = lambda: None,
    last_resort: Callable[[int], None] = lambda signum: None,
) -> Iterator[None]:
    """Handle SIGINT and SIGTERM as described above while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping.clear()
    _received.clear()
    finished = threading.Event()
    reader, writer = socket.socketpair()
    writer.setblocking(False)

    def handler(signum: int, frame: object) -> None:
        for sig in SIGNALS:  # a second Ctrl-C must not break the clean-up
            signal.signal(sig, signal.SIG_IGN)
        if not _received:
            _received.append(signum)
        stopping.set()
        raise Interrupted(signum)

    def watch() -> None:
        while True:
            data = reader.recv(1)
            if not data or data[0] == 0:
                return  # the run ended
            if data[0] in SIGNALS:
                break
        signum = data[0]
        if not _received:
            _received.append(signum)
        stopping.set()
        try:
            on_stop()
        finally:
            if not finished.wait(GRACE_SECONDS):
                try:
                    last_resort(signum)
                finally:
                    sys.stderr.flush()
                    os._exit(128 + signum)

    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    old = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    watcher = threading.Thread(target=watch, name="hs-signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        finished.set()
        signal.set_wakeup_fd(old_fd)
        for sig, previous in old.items():
            signal.signal(sig, previous)
        try:
            writer.send(b"\0")
        except OSError:
            pass
        watcher.join(GRACE_SECONDS + 1)
        reader.close()
        writer.close()
