"""How a run stops early, on every rank: the stop signals, the request they set, the guard of their handlers.

Every rank of an MPI run (agents and parked ranks too) imports this module, not
the master's: it is kept to the standard library and :mod:`mpilauncher.errors`.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import TYPE_CHECKING

from mpilauncher.errors import EXIT_SIGNAL_BASE, EXIT_STOPPED

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)
"""The signals that stop a run cleanly (exit status 128+N), whichever rank they reach.

What the starters do with them, found by experiment (MPICH 5.0 hydra from the ``mpich`` wheel,
Slurm 22.05 with proctrack/linuxproc, Open MPI 5.0 with PRRTE) and in their sources and manuals:

hydra (``mpiexec``)
    catches SIGINT, SIGQUIT, SIGTERM, SIGUSR1 and SIGALRM and forwards each once to every rank;
    a second SIGINT is "force abort": SIGKILL to every rank.  SIGHUP is not caught: mpiexec dies
    at once and its proxies kill the ranks.  Each rank runs in a session of its own (as does its
    ``hydra_pmi_proxy``), so a terminal's Ctrl-C reaches only mpiexec, which forwards it.  A rank
    that dies of a signal makes hydra SIGKILL all the others ("BAD TERMINATION"), and mpiexec's
    exit status is the bitwise OR of every rank's wait status (``-print-all-exitcodes`` lists
    them): hence every rank must live through the signal and exit with rank 0's status.
``srun``
    a first Ctrl-C only prints the tasks' states; a second within a second sends SIGINT to every
    task and at once SIGKILL ("forcing job termination").  SIGTERM, SIGHUP and SIGQUIT to srun
    also mean SIGKILL to every task.  Other signals (SIGUSR1...) are forwarded as they are, so
    ``kill -USR1 <srun>`` or ``scancel --signal=INT JOB`` stop an interactive run cleanly.
    ``scancel JOB`` and the time limit send SIGCONT and SIGTERM to every process of every step,
    the tasks included (Slurm tracks the whole process tree, sessions do not hide from it), and
    SIGKILL ``KillWait`` seconds later (slurm.conf; 30 s by default): the launcher must be done
    by then, so ``--grace`` must stay well under it.  srun itself, signalled with the batch
    shell, asks for SIGKILL of its step too, but that does not reach the step of a job that is
    already ending (seen: the launcher still finishes cleanly, well within KillWait).
    ``scancel --signal=S JOB`` signals every process of the steps (not the batch shell);
    ``--batch`` (and ``#SBATCH --signal=B:S@T``) only the batch shell, which passes it on when
    the job script starts srun with ``exec``; a plain shell dies of SIGUSR1, the job ends and its
    steps get SIGTERM as under ``scancel``.
Open MPI's ``mpirun`` (prterun)
    forwards SIGUSR1 and SIGUSR2; on SIGINT or SIGTERM it ends the job itself: SIGTERM to every
    rank, SIGKILL about a second later, and it exits with status 1 at once, without the ranks'
    last output.  The launcher saves its state if it is done before the SIGKILL; if not, the
    journal holds the truth, as after ``kill -9``.

The executor processes (and the watchdog) ignore these signals: rank 0 has the tasks stopped
through them.  Tasks run in sessions of their own, so only Slurm's signals reach them directly.
"""


#: Stop signals that came while no run's guard held them (see :func:`hold_stop_signals`), first first.
PENDING: list[int] = []


def _hold(signum: int, _frame: object) -> None:
    PENDING.append(signum)


def hold_stop_signals() -> None:
    """The command line's own handler of the stop signals, from its first instant to its exit.

    Why: between the process's start and the run's :class:`SignalGuard` (the imports, reading the
    commandlines, taking the sweep's lock), and after the guard is gone (the final statistics, the
    lock released), a stop signal did what it does by default: Ctrl-C a traceback, SIGTERM a silent
    death, exit 143, with the lock of a sweep that had completed still there (found by a user walk:
    4 of 15 SIGTERMs sent as the statistics were printed).  Held here instead: one that comes before
    the guard is acted on as soon as the guard is in place (the run stops at once, as for any stop),
    and one that comes after is said by the command line (see :func:`take_pending`)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _hold)


def release_stop_signals() -> None:
    """The stop signals back to Python's defaults (a subcommand that reads a sweep is simply interrupted)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
    PENDING.clear()


def start_mpi(world: Callable[[], T]) -> T:
    """``world()`` (MPI_Init) with the stop signals at their default action: a rank signalled while MPI
    starts ends at once, by the signal, as does one that held a stop signal before it.

    Why: a signal handler runs between the interpreter's bytecodes, and MPI_Init is one call that
    returns only once every rank has called it.  A rank that held Ctrl-C there waited for good for
    ranks that never came (found by a user walk: Ctrl-C 0.1 s after ``mpiexec -n 3``; two ranks died
    of it in their imports and the third spun in MPI_Init for 20 minutes, mpiexec waiting on it).
    Nothing has started before MPI has: a rank ended there loses nothing, and the starter ends the
    job on a rank's death by a signal.  The handlers in place before are back once MPI has started."""
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    if PENDING:  # (held since the process began: acted on now, as it would have been had it come now)
        signal.raise_signal(PENDING[0])
    try:
        return world()
    finally:
        for signum, handler in before.items():
            if handler is not None:  # (None: a handler set outside Python, which cannot be put back)
                signal.signal(signum, handler)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def take_pending() -> list[int]:
    """The stop signals held since the last look, and none held any more."""
    taken = PENDING[:]
    PENDING.clear()
    return taken


class StopRequest:
    """Why the run must end early: a signal (set from its handler, or passed on by another rank) or a deadline.

    The loop checks it every turn; a deadline (``--max-runtime``, or the
    Slurm job's end less a margin) also bounds how long the loop sleeps.
    Every rank of an MPI run holds one from its start: a signal handler only
    sets :attr:`signum` (no MPI call, no I/O), the rank's loop acts on it.
    """

    def __init__(self, deadline: float | None = None, deadline_reason: str = "", deadline_name: str = "") -> None:
        self.signum: int | None = None
        self.origin = ""  # where a signal passed on by another rank arrived, e.g. "rank 2 on c102"
        self.deadline = deadline  # time.monotonic() value
        self.deadline_reason = deadline_reason  # why the run stops there: "reached --max-runtime of 60 s"
        self.deadline_name = deadline_name or "the deadline"  # what it is: "--max-runtime", "the job's time limit"
        self.expired = False

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum

    def relayed(self, signum: int, origin: str) -> None:
        """Another rank was signalled: stop as if the signal had reached this one (the first signal counts)."""
        if self.signum is None:
            self.signum, self.origin = signum, origin

    def limit(self, deadline: float | None, reason: str, name: str = "") -> None:
        """Set the deadline once the run's limits are known (the handler may already be in place)."""
        self.deadline, self.deadline_reason = deadline, reason
        self.deadline_name = name or "the deadline"

    def check(self, now: float) -> bool:
        if self.deadline is not None and now >= self.deadline:
            self.expired = True
        return self.signum is not None or self.expired

    def seconds_left(self, now: float) -> float:
        return float("inf") if self.deadline is None else max(0.0, self.deadline - now)

    @property
    def reason(self) -> str | None:
        if self.signum is not None:
            where = f" (received by {self.origin})" if self.origin else ""
            return f"stopped by {signal_name(self.signum)}{where}"
        return self.deadline_reason if self.expired else None

    @property
    def exit_status(self) -> int:
        return EXIT_SIGNAL_BASE + self.signum if self.signum is not None else EXIT_STOPPED

    @property
    def signalled_by_user(self) -> bool:
        """Stopped by Ctrl-C, SIGTERM or SIGHUP: someone ended the run (``scancel``), as opposed to a
        deadline or the time limit's early warning (SIGUSR1): no continuation is wanted then."""
        return self.signum is not None and self.signum != signal.SIGUSR1


class SignalGuard:
    """Stop signals only record themselves in ``stop``; the loop acts on them.  Restored afterwards.

    A handler must not do MPI calls or I/O (it runs between any two bytecodes,
    perhaps inside an MPI call's Python wrapper): it sets the flag, and the
    master's loop, or an agent's or parked rank's, acts on it within one turn.
    ``wake`` (rank 0's transport) gets the read end of a wake-up pipe, so that
    a signal ends the master's wait at once instead of after ``--delay``.

    ``then_ignore`` (MPI ranks): once a stop signal has been acted on, further
    stop signals are ignored instead of restored to their default, which
    would kill the rank in MPI_Finalize after the state was saved and make the
    starter report a crash.  Starters do repeat themselves: ``srun`` answers a
    second Ctrl-C with SIGINT, then SIGTERM, to every task, and a batch shell
    that is signalled with its step forwards its copy through ``srun``.
    """

    def __init__(self, stop: StopRequest, wake=None, then_ignore: bool = False) -> None:
        self.active = threading.current_thread() is threading.main_thread()
        self.stop, self.wake, self.then_ignore = stop, wake, then_ignore
        self._previous: dict[int, object] = {}
        self._old_fd = -1
        self._pipe: tuple[int, int] | None = None

    def __enter__(self) -> SignalGuard:
        if not self.active:
            return self
        if self.wake is not None:
            self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.wake.add_wake_fd(self._pipe[0])
            self._old_fd = signal.set_wakeup_fd(self._pipe[1])
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self.stop)
        for signum in take_pending():  # (came before the guard: see hold_stop_signals)
            self.stop(signum, None)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        ignore = self.then_ignore and self.stop.signum is not None
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_IGN if ignore else handler)
        if self._pipe is not None:
            signal.set_wakeup_fd(self._old_fd)
            for fd in self._pipe:
                os.close(fd)
