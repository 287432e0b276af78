"""The launcher's own output, written by a thread of its own: a reader that does not read never holds
up the sweep.

Why: ``--debug job | less`` not scrolled, a terminal paused with Ctrl-S, a job's output file on a
hung file system: a write to a full pipe blocks, and the master's loop that wrote a trace tick
stood still with it -- no task started, no end was recorded, and a stop signal was not acted on
until the reader read (found by a user walk: 90 of 300 tasks done for 19 s; SIGTERM ignored
while a FIFO went unread).  What the launcher writes to a real file descriptor (stdout's trace,
start-up lines and statistics through ``report.output.TolerantOutput``; stderr's messages and
live progress line through :func:`standard_error`) is handed to the :class:`Outbox` of its file,
whose thread writes it while the loop goes on; beyond a backlog of :data:`BACKLOG` bytes, output
is dropped, and that is said once the reader reads again.  :func:`drain_all` waits for the
outboxes at the end of a run, and at the process's exit.

This module is at the bottom of the layers (the messages' handler uses it): the standard library only.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

#: Bytes an outbox holds for a reader that does not read; beyond, output is dropped (and counted).
BACKLOG = 16 << 20
#: The outbox's thread gathers what is put for up to this long (seconds), or this many bytes, per write.
GATHER_WAIT, GATHER_BYTES = 0.05, 64 << 10
#: Seconds :func:`drain_all` waits, at the end of a run that a signal stopped, for a reader that
#: does not read (after a plain end it waits as long as the reader takes, as any program does).
STOP_DRAIN = 5.0


class Outbox:
    """Bytes for the file descriptors of one open file, written in the order given by a thread of its
    own (see the module docstring).  Why one for a file, not for a descriptor: stdout and stderr are
    often the same terminal, pipe or log file (``2>&1``), and their lines must keep their order.

    ``on_error[fd](err)`` is called, from that thread, at the first failed write to ``fd``; what is held
    for it then, and what comes for it later, is dropped."""

    def __init__(self) -> None:
        self.dropped = 0  # bytes dropped over the backlog, not said yet
        self.on_error: dict[int, Callable[[OSError], None]] = {}
        self._chunks: deque[tuple[int, bytes]] = deque()
        self._held = 0  # bytes in _chunks and in the write under way
        self._failed: set[int] = set()
        self._draining = 0  # drains waiting: the thread writes at once, gathering nothing more
        self._ready = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def put(self, fd: int, data: bytes) -> None:
        with self._ready:
            if fd in self._failed:
                return
            if self._held + len(data) > BACKLOG:
                self.dropped += len(data)
                return
            if self.dropped:
                data = f"[mpilauncher: {self.dropped} bytes of output dropped: nothing read them]\n".encode() + data
                self.dropped = 0
            self._chunks.append((fd, data))
            self._held += len(data)
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_on, name="mpilauncher output", daemon=True)
                self._thread.start()
            if len(self._chunks) == 1 or self._held >= GATHER_BYTES:  # (else it is gathering already)
                self._ready.notify()

    def drain(self, timeout: float | None) -> bool:
        """Wait until all that was put is written (or failed); False if ``timeout`` s passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            self._draining += 1
            self._ready.notify_all()
            try:
                while self._held:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._ready.wait(left)
            finally:
                self._draining -= 1
        return True

    def _write_on(self) -> None:
        """Write what was put, gathered for up to GATHER_WAIT s: one wake-up of this thread, and one
        write, for many trace lines.  Woken at each put instead, it took the interpreter's lock from the
        master's loop as often (2,000 ``true`` with ``--debug job --delay 0.01``: 3.2-5.1 s against 2.3-2.7
        s with the writes in the loop itself)."""
        while True:
            with self._ready:
                while not self._chunks:
                    self._ready.wait()
                if not self._draining and self._held < GATHER_BYTES:
                    self._ready.wait(GATHER_WAIT)
                batch = list(self._chunks)
                self._chunks.clear()
            size = 0
            for fd, data in _by_descriptor(batch):
                size += len(data)
                if fd in self._failed:
                    continue
                try:
                    _write_all(fd, data)
                except OSError as err:
                    with self._ready:
                        self._failed.add(fd)
                    self.on_error.get(fd, lambda err: None)(err)
            with self._ready:
                self._held -= size
                self._ready.notify_all()


def _by_descriptor(batch: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Consecutive chunks for one descriptor joined: one write each run of them, in their order."""
    runs: list[tuple[int, list[bytes]]] = []
    for fd, data in batch:
        if runs and runs[-1][0] == fd:
            runs[-1][1].append(data)
        else:
            runs.append((fd, [data]))
    return [(fd, b"".join(parts)) for fd, parts in runs]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:  # (someone made it non-blocking: wait until it takes more)
            import select

            select.select([], [fd], [])


_outboxes: dict[tuple[int, int], Outbox] = {}
_outboxes_lock = threading.Lock()


#: After a stop (see :func:`after_a_stop`), when the drains give up on a reader that does not read.
_drain_deadline: float | None = None


def _outbox(fd: int, on_error: Callable[[OSError], None]) -> Outbox:
    """The one outbox of the file behind ``fd`` in this process; ``on_error`` is ``fd``'s.  The first
    made has the process drain them all at its exit (what a program wrote, it writes before it ends)."""
    status = os.fstat(fd)
    with _outboxes_lock:
        if not _outboxes:
            import atexit

            atexit.register(drain_all)
        box = _outboxes.get((status.st_dev, status.st_ino))
        if box is None:
            box = _outboxes[(status.st_dev, status.st_ino)] = Outbox()
        box.on_error[fd] = on_error
        return box


def after_a_stop() -> None:
    """A stop signal (or a deadline) ended the run: the drains from now on, all together, wait at most
    STOP_DRAIN s for a reader that does not read (a stop must end; what is left unwritten, the
    queuestate holds)."""
    global _drain_deadline
    if _drain_deadline is None:
        _drain_deadline = time.monotonic() + STOP_DRAIN


#: A run is under way (between :func:`new_run` and :func:`run_ended`): messages go through the outbox.
_in_run = False


def new_run() -> None:
    """A run begins (the API may run several in one script): an earlier stop no longer bounds the drains,
    and the messages go through stderr's outbox until :func:`run_ended`."""
    global _drain_deadline, _in_run
    _drain_deadline, _in_run = None, True


def run_ended(stopped: bool) -> None:
    """The run is over (``stopped``: by a signal or a deadline, see :func:`after_a_stop`): what it wrote is
    written before this returns, and the messages after it are written as they come, in their order with
    whatever else the program writes (an API script's own lines, a traceback)."""
    global _in_run
    if stopped:
        after_a_stop()
    drain_all()
    _in_run = False


def drain_all(timeout: float | None = None) -> bool:
    """Wait for every outbox to write what it holds: as long as that takes, or ``timeout`` s, and after a
    stop no later than STOP_DRAIN s after it (:func:`after_a_stop`); False if some did not in time."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if _drain_deadline is not None:
        deadline = _drain_deadline if deadline is None else min(deadline, _drain_deadline)
    done = True
    for box in list(_outboxes.values()):
        done &= box.drain(None if deadline is None else max(0.0, deadline - time.monotonic()))
    return done


def real_fd(stream: TextIO | None) -> int | None:
    """The file descriptor behind ``stream`` when it is a real one (not a test's StringIO)."""
    try:
        fd = stream.fileno()  # type: ignore[union-attr]
        os.fstat(fd)
    except (OSError, ValueError, AttributeError):  # (io.UnsupportedOperation is an OSError and a ValueError)
        return None
    return fd


class TextOutbox:
    """A text stream's writes handed to the outbox of its file (where it has a real file descriptor;
    else written to the stream as they come: a test's StringIO).  The first failure calls
    ``on_fail(err)`` (from the outbox's thread, or here) and drops the rest.  Its other attributes
    (``isatty``, ``fileno``, ``encoding``...) are the stream's."""

    def __init__(self, stream: TextIO | None, on_fail: Callable[[BaseException], None]) -> None:
        self.stream = stream
        self.failed = False
        self._on_fail = on_fail
        self._box: Outbox | None = None
        fd = real_fd(stream)
        if fd is not None:
            try:
                stream.flush()  # type: ignore[union-attr]  (what it holds goes first)
            except (OSError, ValueError) as err:
                self._fail(err)
                return
            encoding = getattr(stream, "encoding", None) or "utf-8"
            self._encode = _encoder(encoding)
            self._fd = fd
            self._box = _outbox(fd, self._fail)

    def write(self, text: str) -> None:
        if self.failed:
            return
        if self._box is not None:
            self._box.put(self._fd, self._encode(text))
            return
        try:
            self.stream.write(text)  # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError) as err:  # ValueError: closed; AttributeError: None
            self._fail(err)

    def flush(self) -> None:
        if self.failed or self._box is not None:  # (the outbox's thread writes at once)
            return
        try:
            self.stream.flush()  # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError) as err:
            self._fail(err)

    def __getattr__(self, name: str):
        if name == "stream":  # (not set yet: a copy or an unpickling looks before __init__ has run)
            raise AttributeError(name)
        return getattr(self.stream, name)

    def _fail(self, err: BaseException) -> None:
        if not self.failed:
            self.failed = True
            self._on_fail(err)


def _encoder(encoding: str) -> Callable[[str], bytes]:
    """How text becomes a stream's bytes: UTF-8 keeps a command's undecodable bytes as they were."""
    errors = "surrogateescape" if encoding.lower().replace("-", "").replace("_", "") == "utf8" else "replace"
    return lambda text: text.encode(encoding, errors)


_stderr: tuple[object, TextOutbox] | None = None


def standard_error() -> TextIO:
    """The current ``sys.stderr`` as the launcher's messages and live line write to it: through its
    outbox while a run is under way, a failure dropped silently (nothing is left to say it with); the
    stream itself outside a run.  A new outbox when ``sys.stderr`` is another stream than last time
    (tests and scripts swap it)."""
    global _stderr
    current = sys.stderr
    if not _in_run:
        return current
    if _stderr is None or _stderr[0] is not current:
        _stderr = (current, TextOutbox(current, lambda err: None))
    return _stderr[1]  # type: ignore[return-value]
