"""An fsync beside rank 0's loop: the loop hands the journal to the OS and goes on starting tasks.

Why a thread: on a journaled file system an fsync waits for the file system's
own journal commit, and that carries the metadata of every file created since
(the tasks' ``out<N>`` files, the executors' records).  Measured on an ext4
disk image here while 2,000 one-millisecond tasks ran: 2-45 ms a journal
fsync, during which the loop was blocked and the cores ran dry once their
standbys had started.  ``os.fsync`` releases the GIL, so a thread that does
nothing but that costs the loop one flag a turn.

What the journal promises does not change: a record is handed to the OS in
the turn that made it (a ``kill -9`` of the launcher loses nothing the OS
has), and an fsync begins at least every ``fsync_interval`` seconds (what a
crash of the node can lose).  An fsync that fails is reported by the next
:meth:`BackgroundSync.check` of the loop, as the synchronous call would have
been one turn earlier.  The file is never closed while its fsync runs:
:meth:`BackgroundSync.close` waits for it first.

The thread blocks every signal, so that the stop signals and the wake-ups reach the
loop's thread as they did before it existed, and it never calls MPI (rank 0
initialises MPI without thread support: what MPI minds is threads that call it).
"""

from __future__ import annotations

import signal
import threading
from os import fsync


class BackgroundSync:
    """One thread that fsyncs one file descriptor when asked; at most one fsync in flight."""

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self._wanted = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        before = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # inherited by the thread
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)

    def request(self) -> bool:
        """Begin an fsync unless one is running; whether one began."""
        if not self._idle.is_set():
            return False
        self._idle.clear()
        self._wanted.set()
        return True

    def check(self) -> None:
        """Raise the error of the last fsync that failed (once): an OSError, as ``os.fsync`` raises."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def wait(self) -> None:
        """Return when no fsync is running."""
        self._idle.wait()

    def sync_now(self) -> None:
        """fsync in the caller's thread, after the one in flight (whose failure it raises first)."""
        self._idle.wait()
        self.check()
        fsync(self._fd)

    def close(self) -> None:
        """Wait for the fsync in flight, then end the thread; the caller may close the file after."""
        self._idle.wait()
        self._closing = True
        self._wanted.set()
        self._thread.join()

    def _serve(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                return
            try:
                fsync(self._fd)
            except Exception as err:  # (an OSError; whatever it is, the thread must go on: close waits for it)
                self._error = err
            finally:
                self._idle.set()
