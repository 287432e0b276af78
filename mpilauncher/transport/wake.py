"""Waking a node's parked ranks at SHUTDOWN, instead of at their next probe.

Why: a parked rank (``srun``/``ibrun``/``mpiexec`` start one rank per core; all but one a
node park) looks for SHUTDOWN between sleeps that grow to 0.1 s, so that a run of hours
costs it nothing.  But every MPI run ends when its last rank has seen SHUTDOWN: on average
half a sleep after rank 0 said it, up to a whole one (measured under ``mpiexec -n 2``:
runs took 0.03-0.10 s longer than an MPI hello-world above a single process).

How: the parked rank sleeps in ``sigtimedwait`` on :data:`WAKE_SIGNAL`, which it keeps
blocked, so a wake sent at any moment -- before it sleeps, or while it does -- ends the
sleep at once, and is never lost or delivered to a handler.  Rank 0 sends that signal to
its own node's parked ranks right after their SHUTDOWN, and a node's agent to its parked
ranks right after its BYE (rank 0 sends them theirs when it reads it); rank 0 wakes every other rank on its own
host too (emulated nodes: all of them), whose agents sleep in their backend's epoll with
Python's signal wake-up fd in it (:class:`WakeFd`).  The pid and start time
(``/proc/<pid>/stat``) of every rank on a host are gathered at start-up among that host's
ranks (transport/mpi.py's ``discover``): the signal goes only to a process that is still
that rank, never to a reused pid.  SIGURG because its default action is to be
ignored: a signal that reached any other process would do nothing.  Where none of this
works (no ``/proc``, another pid namespace, a thread of the MPI library taking the
signal), the rank wakes at its next probe, as it did before.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

from mpilauncher.procfs import start_ticks

WAKE_SIGNAL = signal.SIGURG


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat``, field 22); "" if unknown."""
    ticks = start_ticks(pid)
    return "" if ticks is None else str(ticks)


def identity() -> tuple[str, int, str]:
    """This process as the others can find it again: (host, pid, start time)."""
    pid = os.getpid()
    return os.uname().nodename, pid, start_time(pid)


def running_here(host: str, pid: int, started: str) -> bool:
    """Is ``(host, pid, start time)`` a process of this host that still runs (not a reused pid)?"""
    return host == os.uname().nodename and bool(started) and start_time(pid) == started


def gone(host: str, pid: int, started: str) -> bool:
    """Has the process ``(host, pid, start time)`` of this host provably ended?  False where this host cannot tell
    (another host, no start time known): a rank is taken for dead only on proof."""
    return host == os.uname().nodename and bool(started) and start_time(pid) != started


def wake(ranks: Iterable[tuple[str, int, str]]) -> None:
    """Send :data:`WAKE_SIGNAL` to each ``(host, pid, start time)`` on this host that is still that process."""
    for host, pid, started in ranks:
        if not running_here(host, pid, started):
            continue
        try:
            os.kill(pid, WAKE_SIGNAL)
        except OSError:
            pass


class WakeFd:
    """An agent rank's wake: a context in which :data:`WAKE_SIGNAL` makes ``fd`` readable.

    An agent sleeps in its backend's epoll (its tasks' ends wake it), so the signal's wake
    comes as Python's signal wake-up fd, registered there: ``fd`` is -1 (nothing to
    register) where the wake-up fd is someone else's already, or this is not the main thread.
    """

    fd = -1

    def __enter__(self) -> WakeFd:
        self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            old = signal.set_wakeup_fd(self._pipe[1], warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            old = None
        if old is None or old != -1:  # someone else's: leave it so
            if old is not None:
                signal.set_wakeup_fd(old)
            self._close()
            return self
        self._handler = signal.signal(WAKE_SIGNAL, _woken)  # a Python handler: the fd gets a byte
        self.fd = self._pipe[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd < 0:
            return
        signal.signal(WAKE_SIGNAL, self._handler)
        signal.set_wakeup_fd(-1)
        self._close()
        self.fd = -1

    def _close(self) -> None:
        for fd in self._pipe:
            os.close(fd)


def _woken(_signum: int, _frame: object) -> None:
    """Nothing to do: the signal's byte on the wake-up fd has already ended the agent's wait."""


class WakeableSleep:
    """A parked rank's sleep: a context in which ``sleep(seconds)`` ends early when woken, and says so."""

    def __enter__(self) -> WakeableSleep:
        self._before = signal.pthread_sigmask(signal.SIG_BLOCK, {WAKE_SIGNAL})
        return self

    def __call__(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when a wake ended it (or was already pending)."""
        return signal.sigtimedwait({WAKE_SIGNAL}, max(0.0, seconds)) is not None

    def __exit__(self, *exc: object) -> None:
        while signal.sigtimedwait({WAKE_SIGNAL}, 0) is not None:  # none left pending for later
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, self._before)
